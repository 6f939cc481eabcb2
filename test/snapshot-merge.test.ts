// The snapshot loader in-process on a real LMDB env, for what the server
// tests cannot time: users a privacy rule excludes are never brought back,
// and a write made during the load by another writer of members (an ID-graph
// merge, say) is carried into the new generation even when its ts is older.
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { SnapshotLoader } from '../src/loader/snapshot.js';
import { decodeMembers, encodeMembers } from '../src/store/members.js';
import { tempDir, feedLine } from './helpers/server.js';

const dir = tempDir();
const store = openStore(dir);
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const T0 = Math.floor(Date.now() / 1000) - 10_000;
const ids = (uid: string) => {
  const b = store.members.getBinaryFast(uid) as Buffer | undefined;
  return b === undefined ? null : decodeMembers(b).members.map((m) => m.id);
};
const opts = (extra = {}) => ({ checkpointKey: 'ckpt:test', batchSize: 1000, maxUidBytes: 128, maxLineBytes: 1 << 20, ...extra });

describe('snapshot merge', () => {
  it('skips excluded users and carries writes other writers made during the load', async () => {
    const writer = new Writer(store);
    writer.apply(
      [
        { op: 'add', uid: 'opted-out', ids: [1], ttls: [0], ts: T0 },
        { op: 'add', uid: 'merged', ids: [1], ttls: [0], ts: T0 },
      ],
      T0 + 1,
    );
    const file = join(tempDir(), 'a.snapshot.ndjson');
    // 150k filler users: two merge transactions, so a write lands between them.
    const filler = Array.from({ length: 150_000 }, (_, i) => feedLine({ op: 'add', uid: `f${String(i).padStart(6, '0')}`, segments: [5], ts: T0 + 10 })).join('');
    writeFileSync(file, filler + [
      feedLine({ op: 'add', uid: 'opted-out', segments: [2], ts: T0 + 10 }),
      feedLine({ op: 'add', uid: 'never-stored-excluded', segments: [2], ts: T0 + 10 }),
      feedLine({ op: 'add', uid: 'merged', segments: [3], ts: T0 + 10 }),
    ].join(''));
    const loader = new SnapshotLoader(store, writer, { excluded: (uid) => uid === 'opted-out' || uid === 'never-stored-excluded' });
    let wrote = false;
    const s = await loader.load(file, opts({
      onProgress: (p: { applied: number }) => {
        if (wrote || p.applied === 0) return; // the merge has begun
        wrote = true;
        // What an ID-graph merge does: rewrites a user's members outside apply(), with an older ts.
        store.env.transactionSync(() => {
          store.members.putSync('merged', encodeMembers(T0, [{ id: 1, expiresAt: 0 }, { id: 9, expiresAt: 0 }]));
          writer.dirty?.touch('merged');
        });
      },
    }));
    loader.stop();
    expect(wrote).toBe(true);
    expect(s.applied).toBe(150_001);
    expect(ids('opted-out')).toEqual([1]); // kept as stored, not the snapshot's [2]
    expect(ids('never-stored-excluded')).toBe(null);
    expect(ids('merged')).toEqual([1, 9]);
    expect(ids('f000000')).toEqual([5]);
    expect(store.counts.get(1)).toBe(2);
    expect(store.counts.get(9)).toBe(1);
    expect(store.counts.get(2)).toBe(undefined);
    expect(store.counts.get(5)).toBe(150_000);
  });
});
