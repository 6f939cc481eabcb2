// The ID graph writer on a real LMDB env, against its invariants: any
// sequence of matches (partner ids, device ids, login ids that merge
// devices), membership changes, opt-outs and deletions, cut into any batches,
// leaves a graph where every id and link agree, merges never chain, nothing
// points at or holds data for a suppressed user, and segment counts match the
// memberships stored.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import { pino } from 'pino';
import { Writer, type WriterHooks } from '../src/loader/writer.js';
import { KnownUsers, FILTER_FILE } from '../src/filters/known-users.js';
import { loadFilter } from '../src/filters/persist.js';
import type { BlockedBloom } from '../src/filters/blocked-bloom.js';
import { IdGraph } from '../src/identity/graph.js';
import { aliasKey, idKey, kindOf, SEP, type IdKind } from '../src/identity/graph-keys.js';
import { decodeMembers } from '../src/store/members.js';
import type { Change } from '../src/loader/records.js';
import { forgetting, tempStore } from './helpers/store.js';

const store = tempStore();

const NOW = 2_000_000_000;
const uids = ['u1', 'u2', 'u3', 'u4', 'u5'];
type Step =
  | { t: 'match'; kind: IdKind; id: string; uid: string }
  | { t: 'add'; uid: string; seg: number }
  | { t: 'forget'; uid?: string; key?: string; reason: 'optout' | 'deletion' };

const keyOf = (kind: IdKind, id: string) => idKey(kind, kind === 'p' ? 'dsp' : kind === 'login' ? 'email' : '', id);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('match' as const),
      kind: fc.constantFrom<IdKind>('p', 'ifa', 'login', 'login'),
      id: fc.constantFrom('a', 'b', 'c'),
      uid: fc.constantFrom(...uids),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('add' as const),
      uid: fc.constantFrom(...uids),
      seg: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('forget' as const),
      uid: fc.constantFrom(...uids),
      reason: fc.constantFrom<'optout' | 'deletion'>('optout', 'deletion'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('forget' as const),
      key: fc.constantFrom('a', 'b').map((id) => keyOf('p', id)),
      reason: fc.constant<'deletion'>('deletion'),
    }),
  },
);

function reset(): void {
  store.env.transactionSync(() => {
    for (const db of [store.members, store.counts, store.idmap, store.links, store.optout, store.syncs, store.audit])
      db.clearSync();
  });
}

function run(steps: Step[], cut: number, hooks: WriterHooks = {}): Writer {
  const writer = new Writer(store, hooks);
  let batch: Change[] = [];
  const flush = () => {
    if (batch.length) writer.apply(batch, NOW);
    batch = [];
  };
  for (const s of steps) {
    if (s.t === 'match') batch.push({ op: 'match', uid: s.uid, ids: [], ttls: [], ts: NOW, key: keyOf(s.kind, s.id) });
    else if (s.t === 'add') batch.push({ op: 'add', uid: s.uid, ids: [s.seg], ttls: [0], ts: NOW });
    else {
      flush();
      forgetting(store, writer).forget(
        s.uid !== undefined ? { uid: s.uid } : { key: s.key! },
        s.reason,
        NOW,
        s.reason === 'optout' ? 0 : NOW + 1000,
        'test',
      );
    }
    if (batch.length >= cut) flush();
  }
  flush();
  return writer;
}

describe('ID graph writer', () => {
  it('keeps ids, links, merges, suppressions and counts consistent', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 40 }), fc.integer({ min: 1, max: 8 }), (steps, cut) => {
        reset();
        const writer = run(steps, cut);
        const graph = new IdGraph(store);
        const suppressed = (u: string) => writer.isSuppressed(u, NOW);
        const idmap = [...store.idmap.getRange({})].map(({ key, value }) => [key as string, value as string] as const);
        for (const [k, u] of idmap) {
          // No chains: a key's target is never itself merged into another profile.
          expect(store.idmap.get(aliasKey(u))).toBeUndefined();
          expect(suppressed(u)).toBe(false);
          expect(graph.links(u)).toContain(k);
          if (kindOf(k) === 'uid') expect(graph.profileOf(k.slice(k.lastIndexOf(SEP) + 1))).toBe(u);
        }
        // Every link (one key per profile and id: `uid \x1e idkey`) points back.
        for (const key of store.links.getKeys({})) {
          const [u, k] = (key as string).split('\x1e') as [string, string];
          expect(store.idmap.get(k)).toBe(u);
        }
        // Every uid that matched a login id still standing resolves to its owner.
        for (const s of steps) {
          if (s.t !== 'match' || s.kind !== 'login') continue;
          const owner = store.idmap.get(keyOf('login', s.id));
          if (owner !== undefined && !suppressed(s.uid)) expect(graph.profileOf(s.uid)).toBe(owner);
        }
        // Counts are exactly the stored memberships; suppressed users hold none.
        const counted = new Map<number, number>();
        for (const { key, value } of store.members.getRange({})) {
          const ms = decodeMembers(value as Buffer).members;
          if (suppressed(key as string)) expect(ms).toEqual([]);
          for (const m of ms) counted.set(m.id, (counted.get(m.id) ?? 0) + 1);
        }
        const stored = new Map(
          [...store.counts.getRange({})].map(({ key, value }) => [key as number, value as number]),
        );
        expect(stored).toEqual(counted);
        // What the writer keeps in memory agrees with the store (a restart rebuilds the same).
        const again = new Writer(store);
        expect([...again.graph.mergedUids()].sort()).toEqual([...writer.graph.mergedUids()].sort());
        expect([...again.suppressed.keys()].sort()).toEqual([...writer.suppressed.keys()].sort());
      }),
      { numRuns: 500 },
    );
  });
  it('the known-users filter never says no to a key of the graph: as the writer links it, rebuilt from the store, and saved', async () => {
    const known = new KnownUsers(
      store,
      { expectedUsers: 64, fpRate: 0.01, saveEveryMs: 3_600_000 },
      pino({ level: 'silent' }),
    );
    // The id a lookup asks the filter for: a merged uid by itself, any other key as it is.
    const asked = (k: string) => (kindOf(k) === 'uid' ? k.slice(k.lastIndexOf(SEP) + 1) : k);
    const probes = ['a', 'b', 'c', 'never'].flatMap((id) =>
      (['p', 'ifa', 'login'] as const).map((kind) => keyOf(kind, id)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 40 }), fc.integer({ min: 1, max: 8 }), async (steps, cut) => {
        reset();
        await known.rebuild(); // on the empty graph: what follows reaches it only through the writer
        const live = known.current!;
        run(steps, cut, { onNewUser: known.onNewUser });
        const keys = [...store.idmap.getKeys({})] as string[];
        const plain = new IdGraph(store);
        const check = (filter: BlockedBloom) => {
          for (const k of keys) expect([k, filter.mayContain(asked(k))]).toEqual([k, true]);
          // Resolving an id through the filter answers as reading it from LMDB does
          // (merged uids are found by profileOf, which reads LMDB).
          const gated = new IdGraph(store);
          gated.filter = filter;
          for (const k of [...keys, ...probes])
            if (kindOf(k) !== 'uid') expect([k, gated.resolveKey(k)]).toEqual([k, plain.resolveKey(k)]);
        };
        check(live);
        await known.rebuild();
        expect(known.current).not.toBe(live);
        check(known.current!);
        check((await loadFilter(join(store.path, FILTER_FILE))).filter);
      }),
      { numRuns: 100 },
    );
    await known.close();
  });
});
