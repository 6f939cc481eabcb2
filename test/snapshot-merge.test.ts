// The snapshot loader in-process on a real LMDB env, for what the server
// tests cannot time: users a privacy rule excludes are never brought back,
// and a write made during the load by another writer of members (an ID-graph
// merge, a privacy deletion) is carried into the new generation even when its
// ts is older.
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { SnapshotLoader } from '../src/loader/snapshot.js';
import { decodeMembers, encodeMembers } from '../src/store/members.js';
import { encodeGraphKey } from '../src/identity/graph-keys.js';
import type { Change } from '../src/loader/records.js';
import { tempDir, feedLine } from './helpers/server.js';
import { forgetting } from './helpers/store.js';

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
const opts = (extra = {}) => ({
  checkpointKey: 'ckpt:test',
  batchSize: 1000,
  maxUidBytes: 128,
  maxLineBytes: 1 << 20,
  ...extra,
});

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
    const filler = Array.from({ length: 150_000 }, (_, i) =>
      feedLine({ op: 'add', uid: `f${String(i).padStart(6, '0')}`, segments: [5], ts: T0 + 10 }),
    ).join('');
    writeFileSync(
      file,
      filler +
        [
          feedLine({ op: 'add', uid: 'opted-out', segments: [2], ts: T0 + 10 }),
          feedLine({ op: 'add', uid: 'never-stored-excluded', segments: [2], ts: T0 + 10 }),
          feedLine({ op: 'add', uid: 'merged', segments: [3], ts: T0 + 10 }),
        ].join(''),
    );
    const loader = new SnapshotLoader(store, writer, {
      excluded: (uid) => uid === 'opted-out' || uid === 'never-stored-excluded',
    });
    let wrote = false;
    const s = await loader.load(
      file,
      opts({
        onProgress: (p: { applied: number }) => {
          if (wrote || p.applied === 0) return; // the merge has begun
          wrote = true;
          // What an ID-graph merge does: rewrites a user's members outside apply(), with an older ts.
          store.env.transactionSync(() => {
            store.members.putSync(
              'merged',
              encodeMembers(T0, [
                { id: 1, expiresAt: 0 },
                { id: 9, expiresAt: 0 },
              ]),
            );
            writer.dirty?.touch('merged');
          });
        },
      }),
    );
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

  it('an ID-graph merge and privacy deletions committed during the load survive the flip', async () => {
    const writer = new Writer(store);
    // After the first test's snapshot (ts T0 + 10): older changes would be stale.
    const put = (uid: string, id: number): Change => ({ op: 'add', uid, ids: [id], ttls: [0], ts: T0 + 12 });
    // g- keys sort before the filler (merged in the first transaction), z- keys after it (the second).
    writer.apply([put('g-dev-a', 11), put('g-dev-b', 12), put('g-forgotten', 13), put('z-forgotten', 14)], T0 + 13);
    const file = join(tempDir(), 'b.snapshot.ndjson');
    const filler = Array.from({ length: 150_000 }, (_, i) =>
      feedLine({ op: 'add', uid: `h${String(i).padStart(6, '0')}`, segments: [5], ts: T0 + 20 }),
    ).join('');
    writeFileSync(
      file,
      filler +
        ['g-dev-a', 'g-dev-b', 'g-forgotten', 'z-forgotten']
          .map((uid) => feedLine({ op: 'add', uid, segments: [20], ts: T0 + 20 }))
          .join(''),
    );
    const login = encodeGraphKey({ login: 'c'.repeat(64) }, 128) as string;
    const match = (uid: string): Change => ({ op: 'match', uid, ids: [], ttls: [], ts: T0 + 30, key: login });
    const loader = new SnapshotLoader(store, writer);
    let during: { merged: number[] | null; gone: number[] | null } | null = null;
    await loader.load(
      file,
      opts({
        checkpointKey: 'ckpt:test2',
        onProgress: (p: { applied: number }) => {
          if (during || p.applied === 0) return; // the first merge transaction has committed
          // A second device logs in with the first one's login id: g-dev-b is merged into g-dev-a.
          writer.apply([match('g-dev-a'), match('g-dev-b')], T0 + 30);
          forgetting(store, writer).forget({ uid: 'g-forgotten' }, 'deletion', T0 + 30, 0, 'test');
          forgetting(store, writer).forget({ uid: 'z-forgotten' }, 'optout', T0 + 30, 0, 'test');
          during = { merged: ids('g-dev-a'), gone: ids('g-dev-b') };
        },
      }),
    );
    loader.stop();
    expect(during).toEqual({ merged: [11, 12], gone: null });
    // Without the writer marking them dirty, the new generation would hold the snapshot's
    // [20] for all four (merged in before these writes).
    expect(ids('g-dev-a')).toEqual([11, 12]);
    expect(ids('g-dev-b')).toBe(null);
    expect(ids('g-forgotten')).toBe(null);
    expect(ids('z-forgotten')).toBe(null);
    expect(ids('h000000')).toEqual([5]);
    // Counts agree with what the new generation holds.
    const recount = new Map<number, number>();
    for (const { value } of store.members.getRange())
      for (const m of decodeMembers(value as Buffer).members) recount.set(m.id, (recount.get(m.id) ?? 0) + 1);
    expect(Object.fromEntries([...store.counts.getRange()].map(({ key, value }) => [key, value]))).toEqual(
      Object.fromEntries(recount),
    );
    expect(recount.get(20)).toBe(undefined);
  });

  it('a record for a device uid merged into another profile is loaded into that profile', async () => {
    const writer = new Writer(store);
    const login = encodeGraphKey({ login: 'd'.repeat(64) }, 128) as string;
    const ts = T0 + 25; // after the previous test's snapshot (T0 + 20)
    writer.apply(
      [
        { op: 'add', uid: 'm-dev-x', ids: [31], ttls: [0], ts },
        { op: 'add', uid: 'm-dev-y', ids: [32], ttls: [0], ts },
        { op: 'match', uid: 'm-dev-y', ids: [], ttls: [], ts, key: login },
        { op: 'match', uid: 'm-dev-x', ids: [], ttls: [], ts, key: login }, // m-dev-x merged into m-dev-y
      ],
      ts + 1,
    );
    expect([ids('m-dev-x'), ids('m-dev-y')]).toEqual([null, [31, 32]]);
    const file = join(tempDir(), 'c.snapshot.ndjson');
    writeFileSync(
      file,
      [
        feedLine({ op: 'add', uid: 'm-dev-x', segments: [33], ts: T0 + 40 }),
        feedLine({ op: 'add', uid: 'm-dev-y', segments: [34], ts: T0 + 40 }),
      ].join(''),
    );
    const loader = new SnapshotLoader(store, writer);
    await loader.load(file, opts({ checkpointKey: 'ckpt:test3' }));
    loader.stop();
    expect(ids('m-dev-x')).toBe(null);
    expect(ids('m-dev-y')).toEqual([33, 34]);
    expect([store.counts.get(33), store.counts.get(34), store.counts.get(31)]).toEqual([1, 1, undefined]);
  });
});
