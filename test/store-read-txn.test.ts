// A lookup worker's own read transaction (Store.reading, store/env.ts) on a
// real LMDB env shared by two threads, as the server shares it: a commit on
// the writer's thread is read by the worker's next lookup, though its
// transaction was live at the snapshot before; and a worker that stops
// reading holds no snapshot for longer than READ_HOLD_MS (its reader slot
// leaves the old transaction id), so the writer can reuse freed pages.
// (That lmdb-js's own reads beside it, ranges included, keep seeing commits
// is checked by identity-graph.property.test.ts.)
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { startStoreWorker, type StoreWorker } from './helpers/store-worker.js';
import { READ_HOLD_MS, type Store } from '../src/store/env.js';
import { encodeMembers } from '../src/store/members.js';

// The worker runs the built modules (`npm run build`), as the server's workers do.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { openStore } = await import(workerData.env);
  const { SegmentLookup } = await import(workerData.segments);
  const { cells } = workerData;
  const store = openStore(workerData.dir, {
    readOnly: true,
    generationCell: { cells, index: 0 },
    commitCell: { cells, index: 1 },
  });
  const lookup = new SegmentLookup(store);
  parentPort.on('message', (uid) => {
    if (uid === null) return void store.close().then(() => parentPort.postMessage('closed'));
    parentPort.postMessage(lookup.find(uid, 0));
  });
  parentPort.postMessage('ready');
})();
`;

/** The transaction ids of the reader slots holding a snapshot (a reset slot shows `-`). */
const heldTxnIds = (store: Store) =>
  store.env
    .readerList()
    .split('\n')
    .map((l) => /^\s*\d+\s+\S+\s+(\d+)\s*$/.exec(l)?.[1])
    .filter((t): t is string => t !== undefined)
    .map(Number);
const lastTxnId = (store: Store) => (store.env.getStats() as { lastTxnId: number }).lastTxnId;

describe("a lookup worker's read transaction", () => {
  let sw: StoreWorker | undefined;
  let store: Store;
  let worker: Worker;
  const find = async (uid: string) => {
    worker.postMessage(uid);
    return (await once(worker, 'message'))[0] as number;
  };
  const add = (uid: string) =>
    store.env.transactionSync(() => store.members.putSync(uid, encodeMembers(1, [{ id: 7, expiresAt: 0 }])));

  beforeAll(async () => {
    sw = await startStoreWorker('segd-read-txn-', WORKER, { env: 'store/env.js', segments: 'lookup/segments.js' });
    ({ store, worker } = sw);
  });
  afterAll(async () => {
    await sw?.stop();
  });

  it("reads a commit on the writer's thread with its next lookup", async () => {
    const missed: string[] = [];
    for (let i = 0; i < 200; i++) {
      const uid = `fresh-${i}`;
      // Read just before the commit: the worker's transaction is live at the snapshot without the user.
      expect(await find(uid)).toBe(-1);
      add(uid);
      if ((await find(uid)) !== 1) missed.push(uid);
    }
    expect(missed).toEqual([]);
  });

  it('releases its snapshot within the bound when no lookups come, and reads the last commit after', async () => {
    add('idle-0');
    expect(await find('idle-0')).toBe(1);
    const read = lastTxnId(store);
    // The worker's read pinned the snapshot it read (the main thread holds none older).
    expect(heldTxnIds(store)).toContain(read);
    add('idle-1');
    expect(lastTxnId(store)).toBeGreaterThan(read);
    // No more lookups: the slot leaves the old snapshot by itself.
    await vi.waitFor(() => expect(heldTxnIds(store)).not.toContain(read), {
      timeout: 40 * READ_HOLD_MS,
      interval: READ_HOLD_MS / 5,
    });
    expect(await find('idle-1')).toBe(1);
  });
});
