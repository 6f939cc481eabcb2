// One generation's index against a plain model of what it keeps: users'
// segment sets changed in transactions that commit or roll back, the bitmaps
// brought up to date at any point (inside an open transaction too, or by a
// commit past the settle threshold), ordinals handed out and given back, the
// generation emptied whole; users added by appends (a snapshot's load into an
// empty generation, which hands ordinals out in order), then changed as usual.
// After each settle every segment's bitmap holds exactly the ordinals of the
// committed users in it, `users` every committed user's ordinal, and each
// segment's updatedAt is the time of the last commit that changed its members.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GenerationIndex } from '../src/insights/generation-index.js';
import { NO_ORDINAL } from '../src/store/members.js';

// Ids in the slot table and past it (the exposure range, the largest id).
const SEGS = [0, 1, 2, 70_000, 0xf000_0001, 0xffff_ffff];
const USERS = 5;

const changeArb = fc.record({
  user: fc.integer({ min: 0, max: USERS - 1 }),
  segs: fc.subarray(SEGS),
  /** Below the run's append odds: an append when the user has no segment (skipped otherwise). */
  roll: fc.integer({ min: 0, max: 9 }),
});
const txArb = fc.record({
  /** The generation emptied before the transaction (rarely). */
  clear: fc.integer({ min: 0, max: 7 }).map((n) => n === 0),
  changes: fc.array(changeArb, { minLength: 1, maxLength: 6 }),
  /** Settle after this many of the transaction's changes (past its end: none inside it). */
  settleInside: fc.integer({ min: 0, max: 8 }),
  commit: fc.boolean(),
  settleAfter: fc.boolean(),
});

describe('generation index', () => {
  it('keeps exactly the committed memberships, whenever it settles', () => {
    let appended = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(1, 4, 1 << 20),
        fc.constantFrom(0, 5, 9),
        fc.array(txArb, { minLength: 1, maxLength: 10 }),
        (settleAt, appendOdds, txs) => {
          const gi = new GenerationIndex(settleAt);
          // Committed state: each user's segments (ascending) and ordinal; each segment's last change.
          let sets: number[][] = Array.from({ length: USERS }, () => []);
          let ords: number[] = Array.from({ length: USERS }, () => NO_ORDINAL);
          // Ordinals are dense: the smallest given back is handed out next, else the lowest never handed out.
          let next = 0;
          let free: number[] = [];
          const updatedAt = new Map<number, number>();
          const check = () => {
            gi.settle();
            const want = new Map<number, number[]>();
            const users: number[] = [];
            sets.forEach((segs, u) => {
              if (segs.length === 0) return expect(ords[u]).toBe(NO_ORDINAL);
              users.push(ords[u]!);
              for (const id of segs) want.set(id, [...(want.get(id) ?? []), ords[u]!]);
            });
            expect(new Set(users).size).toBe(users.length);
            for (const o of users) expect(o).toBeLessThan(gi.next);
            expect(gi.users.toArray()).toEqual(users.sort((a, b) => a - b));
            const got = new Map<number, number[]>();
            for (const [id, bm] of gi.segments) got.set(id, bm.toArray());
            for (const l of want.values()) l.sort((a, b) => a - b);
            expect(got).toEqual(want);
            expect(gi.updatedAt).toEqual(updatedAt);
          };
          txs.forEach((tx, t) => {
            if (tx.clear) {
              gi.clear();
              sets = sets.map(() => []);
              ords = ords.map(() => NO_ORDINAL);
              next = 0;
              free = [];
              updatedAt.clear();
            }
            const txSets = sets.map((s) => [...s]);
            const txOrds = [...ords];
            let txNext = next;
            const txFree = [...free];
            const touched = new Set<number>();
            tx.changes.forEach((ch, k) => {
              if (k === tx.settleInside) check();
              const before = Uint32Array.from(txSets[ch.user]!);
              const after = Uint32Array.from(ch.segs);
              const append = ch.roll < appendOdds;
              if (append && before.length > 0) return;
              for (const id of SEGS) if (before.includes(id) !== after.includes(id)) touched.add(id);
              let want = txOrds[ch.user]!;
              if (before.length === 0 && after.length > 0) {
                txFree.sort((a, b) => a - b);
                want = txFree.length > 0 ? txFree.shift()! : txNext++;
              } else if (before.length > 0 && after.length === 0) {
                txFree.push(want);
                want = NO_ORDINAL;
              }
              txOrds[ch.user] = gi.change(txOrds[ch.user]!, before, before.length, after, after.length, append);
              expect(txOrds[ch.user]).toBe(want);
              if (append && after.length > 0) appended++;
              txSets[ch.user] = [...ch.segs];
            });
            if (tx.commit) {
              gi.commit(1000 + t);
              sets = txSets;
              ords = txOrds;
              next = txNext;
              free = txFree;
              for (const id of touched) updatedAt.set(id, 1000 + t);
            } else gi.rollback();
            if (tx.settleAfter) check();
          });
          check();
        },
      ),
      { numRuns: 600 },
    );
    // The runs reached the append path often (a run of its own may have no append).
    expect(appended).toBeGreaterThan(300);
  });
});
