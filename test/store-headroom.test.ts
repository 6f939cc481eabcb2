// The writable map's room (store/headroom.ts) on a real LMDB file: the last
// used page read from the meta before LMDB opens it agrees with LMDB's own,
// a reopened store has its room allocated before it writes, and a batch's
// records widen the room ahead of the transaction.
import { describe, expect, it } from 'vitest';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/server.js';
import { openStore, type Store } from '../src/store/env.js';
import { usedBytes, PAGES_PER_RECORD } from '../src/store/headroom.js';

const MIB = 2 ** 20;
const HEADROOM = 4 * MIB;

const lmdbUsed = (store: Store) => {
  const s = store.env.getStats() as { lastPageNumber: number; pageSize: number };
  return (s.lastPageNumber + 1) * s.pageSize;
};
/** Bytes of disk the file holds (allocated blocks, in or past its size). */
const onDisk = (file: string) => statSync(file).blocks * 512;

describe('a writable map with its room allocated', () => {
  it('reads the last used page as LMDB does, and allocates the room before any write', async () => {
    const dir = tempDir('segd-headroom-');
    const file = join(dir, 'data.mdb');
    try {
      let store = openStore(dir, { writemap: { headroom: HEADROOM } });
      store.env.transactionSync(() => {
        for (let i = 0; i < 20_000; i++) store.members.putSync(`user-${i}`, Buffer.alloc(60, i & 0xff));
      });
      const used = lmdbUsed(store);
      expect(used).toBeGreaterThan(2 * MIB);
      expect(onDisk(file)).toBeGreaterThanOrEqual(used + HEADROOM);
      // A batch's records: 8 KiB each of room past the used pages, on top of the headroom.
      store.prepareWrite(1000);
      expect(onDisk(file)).toBeGreaterThanOrEqual(lmdbUsed(store) + HEADROOM + 1000 * PAGES_PER_RECORD * 4096);
      await store.close();

      expect(usedBytes(file)).toBe(used);
      // Reopened: the file is cut to the map size, which keeps the room.
      store = openStore(dir, { writemap: { headroom: HEADROOM } });
      expect(statSync(file).size).toBeGreaterThanOrEqual(used + HEADROOM);
      expect(onDisk(file)).toBeGreaterThanOrEqual(used + HEADROOM);
      expect(store.members.get('user-19999')).toEqual(Buffer.alloc(60, 19999 & 0xff));
      store.meta.putSync('after-reopen', 1);
      expect(usedBytes(file)).toBe(lmdbUsed(store));
      await store.close();
      expect(usedBytes(join(dir, 'absent.mdb'))).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
