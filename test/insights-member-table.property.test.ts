// A rebuild's bulk load against the plain rule it implements: users added in
// order, the first to carry an ordinal keeps it (a later one is refused and
// adds nothing), and every segment's bitmap holds exactly the kept ordinals of
// its members — whatever the order of the ordinals, for segments small enough
// for a plain sort and large enough for the radix sort (in one pass and in
// several), for segment ids in its table and past it, and whatever the hint of
// each segment's size says (right, too small, too large, none).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemberTable } from '../src/insights/member-table.js';
import { newBitmap, type Bitmap } from '../src/insights/generation-index.js';

const segArb = fc.constantFrom(0, 1, 2, 3, 1000, 65_535, 65_536, 0xffff_ffff);
const userArb = (maxOrd: number) =>
  fc.tuple(
    fc.integer({ min: 0, max: maxOrd }),
    fc.uniqueArray(segArb, { minLength: 1, maxLength: 5 }).map((ids) => ids.sort((a, b) => a - b)),
  );

describe('member table', () => {
  it('builds exactly the bitmaps of the users it kept', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(40, 1500, 70_000).chain((maxOrd) => fc.array(userArb(maxOrd), { maxLength: 900, size: 'max' })),
        fc.array(fc.tuple(segArb, fc.integer({ min: 0, max: 400 })), { maxLength: 8 }),
        (users, sizes) => {
          const table = new MemberTable(sizes);
          const kept = new Map<number, number[]>();
          for (const [ord, ids] of users) {
            const fresh = !kept.has(ord);
            expect(table.add(ord, Uint32Array.from(ids), ids.length)).toBe(fresh);
            if (fresh) kept.set(ord, ids);
          }
          // Segments a caller's map holds already are added to, not replaced.
          const pre = newBitmap();
          pre.add(0x7fff_0000);
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
          want.set(3, [...(want.get(3) ?? []), 0x7fff_0000]);
          for (const l of want.values()) l.sort((a, b) => a - b);
          expect(all.toArray()).toEqual([...kept.keys()].sort((a, b) => a - b));
          const got = new Map<number, number[]>();
          for (const [id, bm] of segments) got.set(id, bm.toArray());
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('gives each bitmap its ordinals ascending, in one call (the fast way into Roaring)', () => {
    for (const max of [100, 3000, 70_000, 10_000_000]) {
      const table = new MemberTable([[1, 500]]);
      for (let i = 0; i < 20_000; i++) table.add(Math.floor(Math.random() * max), Uint32Array.of(1, 2, 70_000), 3);
      const calls: number[][] = [];
      const spy = () => {
        const bm = newBitmap();
        bm.addMany = (a: Iterable<number>) => {
          calls.push([...a]);
          return bm;
        };
        return bm;
      };
      table.build(newBitmap(), new Map(), spy as () => Bitmap);
      expect(calls).toHaveLength(3);
      for (const c of calls) expect(c).toEqual([...c].sort((a, b) => a - b));
    }
  });
});
