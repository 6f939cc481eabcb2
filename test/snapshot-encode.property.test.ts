// The snapshot loader's fast encoder must give exactly what the writer's
// general path gives for a new user (sorted, last duplicate wins, expired dropped).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeFresh, sortByUid } from '../src/loader/snapshot.js';
import { nextMembers } from '../src/loader/writer.js';
import { encodeMembers } from '../src/store/members.js';

describe('encodeFresh', () => {
  it('matches encodeMembers(nextMembers(new user)) for any add/replace record', () => {
    const now = 1_800_000_000;
    const out = Buffer.alloc(4 + 8 * 64);
    fc.assert(
      fc.property(
        fc.constantFrom('add' as const, 'replace' as const),
        fc.array(fc.record({ id: fc.integer({ min: 0, max: 12 }), ttl: fc.constantFrom(0, 1, 50, 100_000) }), { maxLength: 70 }),
        fc.integer({ min: now - 200, max: now + 10 }),
        (op, segs, ts) => {
          const ch = { op, uid: 'u', ids: segs.map((s) => s.id), ttls: segs.map((s) => s.ttl), ts };
          const len = encodeFresh(ch, now, out);
          if (segs.length > 64) return expect(len).toBe(-1);
          expect(Buffer.from(out.subarray(0, len))).toEqual(encodeMembers(ts, nextMembers(undefined, ch, now)));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('sortByUid', () => {
  it('orders like the members db (UTF-8 bytes) and keeps records of one uid in file order', () => {
    const uid = fc.oneof(fc.string({ minLength: 1, maxLength: 4 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 3 }), fc.constantFrom('a', 'ab', 'b', 'é', '\u{1F600}', '\uE000'));
    fc.assert(
      fc.property(fc.array(uid, { maxLength: 200 }), (uids) => {
        const recs = uids.map((u, i) => ({ op: 'add' as const, uid: u, ids: [], ttls: [], ts: i }));
        const byBytes = (a: { uid: string }, b: { uid: string }) => Buffer.compare(Buffer.from(a.uid), Buffer.from(b.uid));
        const got = sortByUid(recs, byBytes);
        expect(got.map((r) => r.ts)).toEqual([...recs].sort(byBytes).map((r) => r.ts));
      }),
      { numRuns: 1000 },
    );
  });
});
