// Feed changes for property tests: add/remove/replace/delete of a few users
// and segments (the top id included), with TTLs and out-of-order timestamps.
import fc from 'fast-check';
import type { Change } from '../../src/loader/records.js';

export function changeArb(o: {
  uids: readonly string[];
  /** Segment ids 0..segments-1, and 0xffffffff. */
  segments: number;
  ops: ReadonlyArray<Change['op']>;
  ttls: readonly number[];
  maxSegments: number;
  /** Timestamps from now - spread to now. */
  now: number;
  spread: number;
}): fc.Arbitrary<Change> {
  const segArb = fc.integer({ min: 0, max: o.segments }).map((n) => (n === o.segments ? 0xffff_ffff : n));
  return fc
    .record({
      op: fc.constantFrom(...o.ops),
      uid: fc.constantFrom(...o.uids),
      segs: fc.array(fc.tuple(segArb, fc.constantFrom(...o.ttls)), { maxLength: o.maxSegments }),
      ts: fc.integer({ min: o.now - o.spread, max: o.now }),
    })
    .map(({ op, uid, segs, ts }) => ({
      op,
      uid,
      ids: segs.map((s) => s[0]),
      ttls: op === 'delete' ? [] : segs.map((s) => s[1]),
      ts,
    }));
}
