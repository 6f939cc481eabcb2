// A lookup worker reloads the registry when the supervisor says it changed,
// and must then read the change: lmdb-js's own read transaction (the one
// getRange uses) lives until a setTimeout(0) fires, so a worker that read
// anything earlier in the same event-loop turn (a request's member count)
// holds a snapshot from before the supervisor's commit. Here the worker
// reads, the supervisor commits a new segment meanwhile, and the worker
// reloads in the same synchronous turn — the narrowest form of that race.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { startStoreWorker, type StoreWorker } from './helpers/store-worker.js';
import type { Store } from '../src/store/env.js';
import { applyRegistryOp } from '../src/partners/admin.js';

// The worker runs the built modules (`npm run build`), as the server's workers do.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { openStore } = await import(workerData.env);
  const { Registry } = await import(workerData.registry);
  const { cells, flags } = workerData;
  const store = openStore(workerData.dir, {
    readOnly: true,
    generationCell: { cells, index: 0 },
    commitCell: { cells, index: 1 },
  });
  const registry = Registry.load(store);
  parentPort.on('message', (id) => {
    if (id === null) return void store.close().then(() => parentPort.postMessage('closed'));
    // A read through lmdb-js's own transaction, as a request's member count is.
    store.segments.get(id);
    parentPort.postMessage('read');
    // The supervisor commits and tells this worker, all before this turn ends.
    Atomics.wait(flags, 0, 0);
    Atomics.store(flags, 0, 0);
    registry.reload();
    parentPort.postMessage(registry.segment(id) !== undefined);
  });
  parentPort.postMessage('ready');
})();
`;

describe("a worker's registry reload", () => {
  const flags = new Int32Array(new SharedArrayBuffer(4));
  let sw: StoreWorker | undefined;
  let store: Store;
  let worker: Worker;

  beforeAll(async () => {
    sw = await startStoreWorker(
      'segd-registry-reload-',
      WORKER,
      { env: 'store/env.js', registry: 'partners/registry.js' },
      { flags },
    );
    ({ store, worker } = sw);
  });
  afterAll(async () => {
    await sw?.stop();
  });

  it('reads a segment committed after its last read in the same turn', async () => {
    const missed: number[] = [];
    for (let id = 1; id <= 50; id++) {
      worker.postMessage(id);
      // The worker has read (its snapshot is from before this commit), and waits.
      expect((await once(worker, 'message'))[0]).toBe('read');
      const answer = once(worker, 'message');
      const r = applyRegistryOp(store, {
        kind: 'putSegment',
        id,
        body: { name: `s${id}`, provider: 'test', segtax: 600, dataType: 'first', partners: [] },
      });
      expect(r.ok).toBe(true);
      Atomics.store(flags, 0, 1);
      Atomics.notify(flags, 0);
      if (!((await answer)[0] as boolean)) missed.push(id);
    }
    expect(missed).toEqual([]);
  });
});
