// A store and a worker thread sharing it as the server's lookup workers do:
// the writer's env on this thread, the worker opening the same path
// read-only with the same shared cells (generation, commit counter). The
// worker runs `script` (eval'd) over the built modules (`npm run build`),
// named in its workerData as file URLs; it answers 'ready' once open and,
// given null, closes its store and answers 'closed'.
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { tempDir } from './server.js';
import { openStore, type Store } from '../../src/store/env.js';

const DIST = join(import.meta.dirname, '../../dist/src');

export interface StoreWorker {
  dir: string;
  store: Store;
  worker: Worker;
  /** Closes the worker's store, then the worker, then this store; removes the directory. */
  stop(): Promise<void>;
}

/** `modules`: workerData name → module path under dist/src (e.g. { env: 'store/env.js' }); `extra` goes into workerData as it is. */
export async function startStoreWorker(
  prefix: string,
  script: string,
  modules: Record<string, string>,
  extra: Record<string, unknown> = {},
): Promise<StoreWorker> {
  const dir = tempDir(prefix);
  const cells = new Int32Array(new SharedArrayBuffer(8));
  const store = openStore(dir, { generationCell: { cells, index: 0 }, commitCell: { cells, index: 1 } });
  const urls = Object.fromEntries(Object.entries(modules).map(([k, p]) => [k, pathToFileURL(join(DIST, p)).href]));
  const worker = new Worker(script, { eval: true, workerData: { dir, cells, ...urls, ...extra } });
  const ready = (await once(worker, 'message'))[0] as unknown;
  if (ready !== 'ready') throw new Error(`store worker answered ${String(ready)}, not ready`);
  return {
    dir,
    store,
    worker,
    async stop() {
      worker.postMessage(null);
      await once(worker, 'message');
      await worker.terminate();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
