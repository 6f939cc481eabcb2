// SegmentLookup.findAscii (a uid read from a request's bytes, no string made)
// answers exactly as find of that uid's string: the same count, the same ids,
// the same filter counts, for known and unknown uids of any plain length, in
// any order of reads by string and by bytes (a short key read right after a
// long one is where a key left unpadded in lmdb-js's shared key buffer would
// compare wrong). In process, real LMDB.
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import fc from 'fast-check';
import { tempDir } from './helpers/server.js';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import type { Change } from '../src/loader/records.js';
import { SegmentLookup } from '../src/lookup/segments.js';
import { BlockedBloom, sizeFor } from '../src/filters/blocked-bloom.js';

const T0 = 1_900_000_000;
/** Printable ASCII other than `"` and `\`: the uids codec/uid-list.ts hands over as bytes. */
const plainChar = fc.integer({ min: 0x20, max: 0x7e }).filter((c) => c !== 0x22 && c !== 0x5c);
const plainUid = fc
  .array(plainChar, { minLength: 1, maxLength: 70 })
  .map((cs) => String.fromCharCode(...cs))
  .filter((s) => s.charCodeAt(0) >= 28);

describe('findAscii', () => {
  const dir = tempDir();
  const store = openStore(dir);
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const writer = new Writer(store);

  it('answers as find of the same uid, in any order of reads (real LMDB)', () => {
    let known = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(plainUid, { minLength: 1, maxLength: 30 }),
        fc.array(fc.tuple(fc.nat(), fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 60 }),
        fc.boolean(),
        (uids, reads, filtered) => {
          // Every other uid written; prefixes and extensions of written ones read too.
          const written = uids.filter((_, i) => i % 2 === 0);
          const changes: Change[] = written.map((uid, i) => ({
            op: 'replace',
            uid,
            ids: [i + 1, 1000 + i],
            ttls: [0, i % 3 === 0 ? 60 : 0],
            ts: T0,
          }));
          writer.apply(changes, T0);
          const candidates = [
            ...uids,
            ...uids.map((u) => u.slice(0, -1)).filter((u) => u !== ''),
            ...uids.map((u) => u + 'x'),
          ];
          const a = new SegmentLookup(store, new Float64Array(3));
          const b = new SegmentLookup(store, new Float64Array(3));
          if (filtered) {
            const filter = new BlockedBloom(sizeFor(1000, 0.01));
            for (const u of written) filter.add(u);
            a.filter = b.filter = filter;
          }
          const body = Buffer.from(JSON.stringify(candidates));
          // Where each candidate's bytes are in the body (between its quotes).
          const at: number[] = [];
          let p = 0;
          for (const c of candidates) {
            p = body.indexOf(`"${c}"`, p, 'latin1') + 1;
            at.push(p);
            p += c.length + 1;
          }
          for (const [k, pinned, dirty] of reads) {
            const i = k % candidates.length;
            const uid = candidates[i]!;
            const now = T0 + (k % 2) * 120; // past the 60 s TTLs every other read
            if (pinned) a.pin();
            const want = b.find(uid, now);
            const wantIds = Array.from(b.ids.subarray(0, Math.max(0, want)));
            // A long key read by string just before, leaving its bytes in lmdb-js's shared key buffer.
            if (dirty) b.find('z'.repeat(80), now);
            const got = a.screen(body, at[i]!, at[i]! + uid.length)
              ? a.findAscii(body, at[i]!, at[i]! + uid.length, now)
              : -1;
            a.unpin();
            expect(got).toBe(want);
            expect(Array.from(a.ids.subarray(0, Math.max(0, got)))).toEqual(wantIds);
            if (want >= 0) known++;
          }
        },
      ),
      { numRuns: 150 },
    );
    // The property saw hits, not only misses.
    expect(known).toBeGreaterThan(100);
  });
});
