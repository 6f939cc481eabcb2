// The insights index against a brute-force scan of LMDB, on a real env: after
// any sequence of feed batches (adds, removes, replaces, deletes, TTLs), TTL
// sweeps, privacy deletions, ID-graph merges, transactions that fail, snapshot
// swaps (the new generation indexed as it is appended, with changes committed
// during the load replayed at the flip, or the load failing inside its merge
// or its flip) and restarts, every segment's bitmap holds exactly the ordinals of the
// users the store lists in it, in both generations, and its size equals the
// segment count the writer keeps.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { SnapshotLoader } from '../src/loader/snapshot.js';
import { NO_ORDINAL, decodeMembers, encodeMembers, ordinalOf } from '../src/store/members.js';
import { InsightsIndex } from '../src/insights/insights-index.js';
import { loadIndex, saveIndex } from '../src/insights/persist.js';
import { InsightsQueries } from '../src/insights/queries.js';
import type { Change } from '../src/loader/records.js';
import { partnerKey } from '../src/identity/graph-keys.js';
import { tempDir } from './helpers/server.js';
import { forgetting } from './helpers/store.js';
import { changeArb as changeArbOf } from './helpers/changes.js';

const NOW = Math.floor(Date.now() / 1000) - 1000;
const UIDS = ['u1', 'u2', 'u3', 'u4', 'ü5', 'u6'];
const uidArb = fc.constantFrom(...UIDS);
const segArb = fc.integer({ min: 0, max: 5 }).map((n) => (n === 5 ? 0xffff_ffff : n));
const changeArb = changeArbOf({
  uids: UIDS,
  segments: 5,
  ops: ['add', 'add', 'remove', 'replace', 'delete'],
  ttls: [0, 0, 5, 500],
  maxSegments: 4,
  now: NOW,
  spread: 20,
});

type Step =
  | { kind: 'batch'; changes: Change[] }
  | { kind: 'sweep'; after: number }
  | { kind: 'forget'; uid: string }
  | { kind: 'merge'; from: string; into: string }
  | { kind: 'fail'; changes: Change[] }
  | { kind: 'snapshot'; users: Array<[string, number[]]>; during: Change[]; failAt: number }
  | { kind: 'restart'; stale: Stale };

/**
 * How a restart finds the store: as saved; changed after the save (indexed);
 * changed by a writer without the index (as `segd import` is: a user added,
 * one rewritten, one removed, so values without an ordinal); a user's value
 * copied whole to another uid behind the index's back (two values, one
 * ordinal); or after a crash (no saved file at all).
 */
type Stale = 'no' | 'indexed' | 'offline' | 'copied' | 'crash';

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .array(changeArb, { minLength: 1, maxLength: 8 })
      .map((changes) => ({ kind: 'batch' as const, changes })),
  },
  { weight: 1, arbitrary: fc.constantFrom(10, 1000).map((after) => ({ kind: 'sweep' as const, after })) },
  { weight: 1, arbitrary: uidArb.map((uid) => ({ kind: 'forget' as const, uid })) },
  { weight: 1, arbitrary: fc.tuple(uidArb, uidArb).map(([from, into]) => ({ kind: 'merge' as const, from, into })) },
  {
    weight: 1,
    arbitrary: fc
      .array(changeArb, { minLength: 1, maxLength: 4 })
      .map((changes) => ({ kind: 'fail' as const, changes })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({
        users: fc.array(fc.tuple(uidArb, fc.array(segArb, { maxLength: 3 })), { minLength: 1, maxLength: 5 }),
        /** Changes committed to the active generation while the load runs (replayed at the flip). */
        during: fc.array(changeArb, { maxLength: 4 }),
        /** The load fails at this user the merge or the flip reaches (-1: it does not fail). */
        failAt: fc.integer({ min: -1, max: 8 }),
      })
      .map((s) => ({ kind: 'snapshot' as const, ...s })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<Stale>('no', 'indexed', 'offline', 'copied', 'crash')
      .map((stale) => ({ kind: 'restart' as const, stale })),
  },
);

/** Every generation's bitmaps equal what a scan of its members db finds, and sizes equal the writer's counts. */
function check(store: Store, index: InsightsIndex): void {
  for (let g = 0; g < 2; g++) {
    const gi = index.generations[g]!;
    gi.settle();
    const want = new Map<number, number[]>();
    const users: number[] = [];
    for (const { key, value } of store.generations[g]!.getRange()) {
      const ids = decodeMembers(value).members.map((m) => m.id);
      const ord = ordinalOf(value);
      if (ids.length === 0) {
        expect(ord, `user ${key} without memberships has no ordinal`).toBe(NO_ORDINAL);
        continue;
      }
      expect(ord, `user ${key} has an ordinal`).not.toBe(NO_ORDINAL);
      users.push(ord);
      for (const id of ids) {
        let l = want.get(id);
        if (!l) want.set(id, (l = []));
        l.push(ord);
      }
    }
    users.sort((a, b) => a - b);
    expect(new Set(users).size, 'ordinals are distinct').toBe(users.length);
    expect(gi.users.toArray()).toEqual(users);
    // Dense: no ordinal at or past the number of ordinals ever handed out, none past the users' count after a rebuild.
    for (const u of users) expect(u).toBeLessThan(gi.next);
    const got = new Map<number, number[]>();
    for (const [id, bm] of gi.segments) got.set(id, bm.toArray());
    for (const l of want.values()) l.sort((a, b) => a - b);
    expect(got).toEqual(want);
    expect(gi.broken).toBe(false);
  }
  const counts = new Map<number, number>();
  for (const { key, value } of store.counts.getRange()) counts.set(key, value);
  const q = new InsightsQueries(() => index.active);
  for (const [id, c] of counts) expect(q.size(id).size).toBe(c);
  for (const [id, bm] of index.active.segments) expect(counts.get(id)).toBe(bm.size);
}

class LoadFailed extends Error {}

describe('insights index', () => {
  it('equals a scan of LMDB after any changes, sweeps, deletions, failed transactions, snapshot swaps and restarts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 12 }), async (steps) => {
        const dir = tempDir();
        let store = openStore(dir);
        let index = new InsightsIndex(store);
        let writer = new Writer(store);
        // A snapshot step's failure: thrown from the check of the n-th user its load reaches, inside a transaction.
        let failIn = -1;
        const excluded = () => {
          if (failIn >= 0 && failIn-- === 0) throw new LoadFailed();
          return false;
        };
        let snapshots = new SnapshotLoader(store, writer, { excluded });
        let snapTs = NOW - 10;
        try {
          for (const step of steps) {
            switch (step.kind) {
              case 'batch':
                writer.apply(step.changes, NOW);
                break;
              case 'sweep':
                writer.sweep(UIDS, NOW + step.after);
                break;
              case 'forget':
                forgetting(store, writer).run({ target: { uid: step.uid }, reason: 'deletion', by: 'test' });
                break;
              case 'merge':
                // A cookie-sync match naming a second uid for one key: the graph merges the two profiles.
                writer.apply(
                  [
                    {
                      op: 'match',
                      uid: step.into,
                      key: partnerKey('px', `k-${step.from}`),
                      ids: [],
                      ttls: [],
                      ts: NOW,
                    },
                    {
                      op: 'match',
                      uid: step.from,
                      key: partnerKey('px', `k-${step.from}`),
                      ids: [],
                      ttls: [],
                      ts: NOW,
                    },
                  ],
                  NOW,
                );
                break;
              case 'fail':
                // Committed but not yet in the bitmaps when the next transaction fails.
                writer.apply(step.changes.slice(0, 1), NOW);
                expect(() =>
                  writer.commit(() => {
                    for (const uid of UIDS.slice(0, 3)) writer.removeMembers(uid);
                    // A user written twice in one transaction: its first change reaches the bitmaps before the abort.
                    store.members.putSync('u1', encodeMembers(NOW, [{ id: 4, expiresAt: 0 }]));
                    writer.removeMembers('u1');
                    // A user given an ordinal the transaction has not written yet (written at its end): forgotten.
                    store.members.putSync('u2', encodeMembers(NOW, [{ id: 3, expiresAt: 0 }]));
                    throw new Error('abort');
                  }),
                ).toThrow('abort');
                writer.apply(step.changes, NOW);
                break;
              case 'snapshot': {
                const file = join(dir, `s${snapTs}.snapshot.ndjson`);
                writeFileSync(
                  file,
                  step.users
                    .map(([uid, segments]) => JSON.stringify({ op: 'add', uid, segments, ts: snapTs }) + '\n')
                    .join(''),
                );
                failIn = step.failAt;
                let during = step.during;
                const loaded = await snapshots
                  .load(file, {
                    checkpointKey: 'ckpt:test',
                    batchSize: 1000,
                    maxUidBytes: 128,
                    maxLineBytes: 1 << 20,
                    // Between the merge's transactions (after its one here), before the flip.
                    onProgress: () => {
                      if (during.length > 0) writer.apply(during, NOW);
                      during = [];
                    },
                  })
                  .then(
                    () => true,
                    (err: unknown) => {
                      if (!(err instanceof LoadFailed)) throw err;
                      return false;
                    },
                  );
                // Failed exactly when asked to and reached: a load that was not failed completed.
                expect(loaded || step.failAt >= 0).toBe(true);
                failIn = -1;
                snapshots.stop();
                snapTs++;
                break;
              }
              case 'restart': {
                const path = join(dir, 'insights.bin');
                if (step.stale === 'crash') rmSync(path, { force: true });
                else await saveIndex(path, index.state());
                // A change after the save, indexed, or made by a writer without the index (as `segd import` is).
                if (step.stale === 'indexed')
                  writer.apply([{ op: 'add', uid: 'late', ids: [100 + snapTs++], ttls: [0], ts: NOW }], NOW);
                snapshots.stop();
                await store.close();
                // Whether the store moved on from the saved index.
                let moved = step.stale !== 'no';
                if (step.stale === 'offline' || step.stale === 'copied') {
                  const bare = openStore(dir);
                  const w = new Writer(bare);
                  if (step.stale === 'offline') {
                    const [first, second] = [...bare.members.getKeys()].filter((k) => k !== 'late');
                    w.apply(
                      [
                        { op: 'add', uid: 'late', ids: [100 + snapTs++], ttls: [0], ts: NOW },
                        ...(first ? [{ op: 'add' as const, uid: first, ids: [7], ttls: [0], ts: NOW + 30 }] : []),
                        ...(second ? [{ op: 'delete' as const, uid: second, ids: [], ttls: [], ts: NOW + 30 }] : []),
                      ],
                      NOW,
                    );
                  } else {
                    const from = [...bare.members.getRange()].find((e) => ordinalOf(e.value) !== NO_ORDINAL);
                    moved = from !== undefined;
                    // Counted, and the store's write sequence moved, as any writer does.
                    if (from)
                      w.commit(() => {
                        bare.members.putSync(`copy-${from.key}`, from.value);
                        for (const m of decodeMembers(from.value).members)
                          bare.counts.putSync(m.id, ((bare.counts.get(m.id) as number | undefined) ?? 0) + 1);
                        bare.meta.putSync('writes', ((bare.meta.get('writes') as number | undefined) ?? 0) + 1);
                      });
                  }
                  await bare.close();
                }
                store = openStore(dir);
                index = new InsightsIndex(store, step.stale === 'crash' ? null : await loadIndex(path));
                expect(index.rebuilt).toBe(moved);
                writer = new Writer(store);
                snapshots = new SnapshotLoader(store, writer, { excluded });
                snapshots.clearInactive();
                break;
              }
            }
            check(store, index);
          }
        } finally {
          snapshots.stop();
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 80 },
    );
  });
});
