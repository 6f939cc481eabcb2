// The snapshot loader's compact records: the fast encoder must give exactly
// what the writer's general path gives for a new user (sorted, last duplicate
// wins, expired dropped), records must come back as they went in, and the
// bucketed sort must order like the members db (UTF-8 bytes), stably.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SnapshotRecords, sortedOrder, FAST_PAIRS } from '../src/loader/snapshot-records.js';
import { nextMembers } from '../src/loader/member-set.js';
import { encodeMembers } from '../src/store/members.js';
import { OPS } from '../src/loader/records.js';

describe('SnapshotRecords', () => {
  it('keeps records as given, and encodeFresh matches encodeMembers(nextMembers(new user))', () => {
    const now = 1_800_000_000;
    const out = Buffer.alloc(4 + 8 * FAST_PAIRS);
    const rec = fc.record({
      op: fc.constantFrom(...OPS),
      uid: fc.string({ minLength: 1, maxLength: 8 }),
      // size 'max': fast-check's default keeps arrays near 10 long, and the path past FAST_PAIRS (64) needs more.
      segs: fc.array(fc.record({ id: fc.integer({ min: 0, max: 80 }), ttl: fc.constantFrom(0, 1, 50, 100_000) }), {
        maxLength: 70,
        size: 'max',
      }),
      ts: fc.integer({ min: now - 200, max: now + 10 }),
    });
    fc.assert(
      fc.property(fc.array(rec, { minLength: 1, maxLength: 40 }), (list) => {
        const recs = new SnapshotRecords();
        const changes = list.map((r) => ({
          op: r.op,
          uid: r.uid,
          ids: r.segs.map((x) => x.id),
          ttls: r.segs.map((x) => x.ttl),
          ts: r.ts,
        }));
        for (const ch of changes) recs.push(ch);
        changes.forEach((ch, i) => {
          expect(recs.change(i)).toEqual(ch);
          const len = recs.encodeFresh(i, now, out);
          if ((ch.op !== 'add' && ch.op !== 'replace') || ch.ids.length > FAST_PAIRS) expect(len).toBe(-1);
          else expect(Buffer.from(out.subarray(0, len))).toEqual(encodeMembers(ch.ts, nextMembers(undefined, ch, now)));
        });
      }),
      { numRuns: 500 },
    );
  });
});

describe('SnapshotRecords growth', () => {
  it('keeps every record across the growth of its arrays', () => {
    const recs = new SnapshotRecords();
    const N = 5000; // past the initial 1,024 records and 65,536 pair slots
    for (let i = 0; i < N; i++)
      recs.push({
        op: 'add',
        uid: `u${i}`,
        ids: Array.from({ length: 20 }, (_, k) => i + k),
        ttls: Array(20).fill(i % 7),
        ts: 1_000_000 + i,
      });
    expect(recs.length).toBe(N);
    for (const i of [0, 1023, 1024, 3276, 3277, N - 1]) {
      expect(recs.change(i)).toEqual({
        op: 'add',
        uid: `u${i}`,
        ids: Array.from({ length: 20 }, (_, k) => i + k),
        ttls: Array(20).fill(i % 7),
        ts: 1_000_000 + i,
      });
    }
  });
});

describe('sortedOrder', () => {
  it('orders like the members db (UTF-8 bytes) and keeps records of one uid in file order', () => {
    const uid = fc.oneof(
      fc.string({ minLength: 1, maxLength: 4 }),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 3 }),
      fc.constantFrom('a', 'ab', 'b', 'é', '\u{1F600}', '\uE000'),
    );
    fc.assert(
      fc.property(fc.array(uid, { maxLength: 200, size: 'max' }), (uids) => {
        const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
        const want = uids
          .map((u, i) => ({ u, i }))
          .sort((a, b) => byBytes(a.u, b.u) || a.i - b.i)
          .map((x) => x.i);
        expect([...sortedOrder(uids, byBytes)]).toEqual(want);
      }),
      { numRuns: 1000 },
    );
  });
});
