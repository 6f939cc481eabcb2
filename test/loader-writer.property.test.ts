// The writer against a plain model, on a real LMDB env: any sequence of
// add/remove/replace/delete changes (with TTLs and out-of-order timestamps),
// cut into any batches, leaves exactly the memberships and per-segment counts
// the model predicts, and lookups return exactly the live ones. Adds may carry
// `refresh` (the exposure pixel's): a repeat that only moves expiries out by
// less than it is not written, so the user's ts and expiries stay as stored.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Writer } from '../src/loader/writer.js';
import { SegmentLookup } from '../src/lookup/segments.js';
import type { Change } from '../src/loader/records.js';
import { tempStore } from './helpers/store.js';
import { changeArb as changeArbOf } from './helpers/changes.js';

const store = tempStore();

const NOW = 2_000_000_000;
const changeArb = fc
  .tuple(
    changeArbOf({
      uids: ['u1', 'u2', 'u3', 'ü4'],
      segments: 6,
      ops: ['add', 'remove', 'replace', 'delete'],
      ttls: [0, 0, 5, 100],
      maxSegments: 5,
      now: NOW,
      spread: 50,
    }),
    fc.constantFrom(undefined, undefined, 0, 3, 60),
  )
  .map(([ch, refresh]): Change => (refresh === undefined || ch.op !== 'add' ? ch : { ...ch, refresh }));

/** An add with `refresh` that leaves every stored pair in place, expiries moved out by less than it. */
function refreshOnly(before: Map<number, number>, after: Map<number, number>, refresh: number): boolean {
  if (before.size !== after.size) return false;
  for (const [id, b] of before) {
    const a = after.get(id);
    if (a === undefined) return false;
    if (a !== b && (a === 0 || b === 0 || a < b || a - b >= refresh)) return false;
  }
  return true;
}

/** The model: per user, updatedAt and id → expiresAt. */
function model(changes: Change[]) {
  const users = new Map<string, { ts: number; m: Map<number, number> }>();
  for (const ch of changes) {
    const u = users.get(ch.uid);
    if (u && ch.ts < u.ts) continue;
    const m = new Map<number, number>();
    if (u && ch.op !== 'replace' && ch.op !== 'delete')
      for (const [id, exp] of u.m) if (exp === 0 || exp > NOW) m.set(id, exp);
    if (ch.op === 'remove') for (const id of ch.ids) m.delete(id);
    if (ch.op === 'add' || ch.op === 'replace') {
      ch.ids.forEach((id, i) => {
        const exp = ch.ttls[i] ? ch.ts + ch.ttls[i]! : 0;
        if (exp !== 0 && exp <= NOW) m.delete(id);
        else m.set(id, exp);
      });
    }
    if (u && ch.refresh !== undefined && refreshOnly(u.m, m, ch.refresh)) continue;
    // An emptied user stays as a tombstone: its ts still orders later changes.
    users.set(ch.uid, { ts: Math.max(ch.ts, u?.ts ?? 0), m });
  }
  return users;
}

describe('writer', () => {
  it('matches the model for any change sequence and batching', () => {
    const lookup = new SegmentLookup(store);
    fc.assert(
      fc.property(fc.array(changeArb, { maxLength: 40 }), fc.integer({ min: 1, max: 10 }), (changes, batch) => {
        store.env.transactionSync(() => {
          for (const k of store.members.getKeys()) store.members.removeSync(k);
          for (const k of store.counts.getKeys()) store.counts.removeSync(k);
        });
        const writer = new Writer(store); // the db was reset behind any earlier writer's back
        for (let i = 0; i < changes.length; i += batch) writer.apply(changes.slice(i, i + batch), NOW);
        const want = model(changes);
        const counts = new Map<number, number>();
        for (const uid of ['u1', 'u2', 'u3', 'ü4']) {
          const u = want.get(uid);
          const n = lookup.find(uid, NOW + 10); // +10 s: TTL-5 memberships lapse
          const live = u
            ? [...u.m]
                .filter(([, e]) => e === 0 || e > NOW + 10)
                .map(([id]) => id)
                .sort((a, b) => a - b)
            : [];
          expect(n < 0 ? [] : Array.from(lookup.ids.subarray(0, n))).toEqual(live);
          expect(n < 0).toBe(!u || u.m.size === 0); // a tombstone reads as unknown
          if (u) for (const id of u.m.keys()) counts.set(id, (counts.get(id) ?? 0) + 1);
        }
        const stored = new Map<number, number>();
        for (const { key, value } of store.counts.getRange()) stored.set(key, value);
        expect(stored).toEqual(counts);
      }),
      { numRuns: 300 },
    );
  });
});
