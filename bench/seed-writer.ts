// Synthetic users written into a store through the one Writer, in batches of
// 20,000: the data set the in-process benches measure against.
import type { Writer } from '../src/loader/writer.js';
import type { Change } from '../src/loader/records.js';
import { Synthetic, DEFAULT_SYNTHETIC, FIRST_SEGMENT_ID, uidFor } from '../src/gen/synthetic.js';
import { nowSeconds } from '../src/lookup/segments.js';

const BATCH = 20_000;
/** The synthetic taxonomy's size (segment ids from FIRST_SEGMENT_ID). */
export const TAXONOMY = 5000;

/** Writes users 0 … users−1; `onUser` sees each uid, `onBatch` how many are written so far. */
export function seedSynthetic(
  writer: Writer,
  users: number,
  hooks: { onUser?: (uid: string) => void; onBatch?: (done: number) => void } = {},
): void {
  const syn = new Synthetic(DEFAULT_SYNTHETIC);
  const now = nowSeconds();
  for (let i = 0; i < users; i += BATCH) {
    const batch: Change[] = [];
    const end = Math.min(users, i + BATCH);
    for (let j = i; j < end; j++) {
      const u = syn.user(j);
      hooks.onUser?.(u.uid);
      batch.push({
        op: 'add',
        uid: u.uid,
        ts: now,
        ids: u.segments.map((s) => (typeof s === 'number' ? s : s.id)),
        ttls: u.segments.map((s) => (typeof s === 'number' ? 0 : s.ttl)),
      });
    }
    writer.apply(batch, now);
    hooks.onBatch?.(end);
  }
}

/**
 * Push-shaped records, as the stream publisher's: an add of two random
 * segments for a random one of the seeded users 0 … users−1.
 */
export function pushShapedRecords(n: number, users: number, rnd: () => number): Change[] {
  const now = nowSeconds();
  return Array.from({ length: n }, () => ({
    op: 'add' as const,
    uid: uidFor(DEFAULT_SYNTHETIC.seed, Math.floor(rnd() * users)),
    ts: now,
    ids: [FIRST_SEGMENT_ID + Math.floor(rnd() * TAXONOMY), FIRST_SEGMENT_ID + Math.floor(rnd() * TAXONOMY)],
    ttls: [0, 0],
  }));
}
