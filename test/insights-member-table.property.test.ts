// A rebuild's bulk load against the plain rule it implements: users added in
// order, the first to carry an ordinal keeps it (a later one is refused and
// adds nothing), and every segment's bitmap holds exactly the kept ordinals of
// its members — whatever the order of the ordinals, however many windows the
// build takes, for segment ids in its table and past it.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemberTable } from '../src/insights/member-table.js';
import { newBitmap, type Bitmap } from '../src/insights/generation-index.js';

const segArb = fc.constantFrom(0, 1, 2, 3, 1000, 65_535, 65_536, 0xffff_ffff);
const userArb = fc.tuple(
  fc.integer({ min: 0, max: 80 }),
  fc.uniqueArray(segArb, { minLength: 1, maxLength: 5 }).map((ids) => ids.sort((a, b) => a - b)),
);

describe('member table', () => {
  it('builds exactly the bitmaps of the users it kept', () => {
    fc.assert(
      fc.property(fc.array(userArb, { maxLength: 60 }), fc.integer({ min: 1, max: 40 }), (users, window) => {
        const table = new MemberTable(window);
        const kept = new Map<number, number[]>();
        for (const [ord, ids] of users) {
          const fresh = !kept.has(ord);
          expect(table.add(ord, Uint32Array.from(ids), ids.length)).toBe(fresh);
          if (fresh) kept.set(ord, ids);
        }
        // Segments a caller's map holds already are added to, not replaced.
        const pre = newBitmap();
        pre.add(1000);
        const segments = new Map<number, Bitmap>([[3, pre]]);
        const all = newBitmap();
        table.build(all, segments, newBitmap);

        const want = new Map<number, number[]>();
        for (const [ord, ids] of kept)
          for (const id of ids) {
            let l = want.get(id);
            if (!l) want.set(id, (l = []));
            l.push(ord);
          }
        want.set(3, [...(want.get(3) ?? []), 1000]);
        for (const l of want.values()) l.sort((a, b) => a - b);
        expect(all.toArray()).toEqual([...kept.keys()].sort((a, b) => a - b));
        const got = new Map<number, number[]>();
        for (const [id, bm] of segments) got.set(id, bm.toArray());
        expect(got).toEqual(want);
      }),
      { numRuns: 300 },
    );
  });
});
