// The user keys a load test asks for, drawn from the data set the target
// holds without reading it: `segd gen` makes user i's key a pure function of
// (seed, i), so users i < N are known and users N ≤ i < 2N are unknown keys of
// the same shapes (docs/design.md: match rates of 30–60% are normal).
//
// Known users are drawn by Zipf rank, and ranks are scattered over 0..N-1 by a
// fixed bijection so the hot users are not simply the first ones in the feed.
// Unknown users are drawn uniformly: a miss rarely repeats in real traffic.
import { Zipf, uidFor } from '../gen/synthetic.js';

export interface KeyMixOptions {
  /** Generator seed of the data set (`segd gen --seed`). */
  seed: number;
  /** Users in the data set (`segd gen --users`). */
  users: number;
  /** Share of draws for known users, 0..1. */
  hitRatio: number;
  /** Zipf exponent of the known users' popularity (0 = uniform). */
  zipf: number;
  /** How many keys to draw. */
  count: number;
}

export interface KeyMix {
  uids: string[];
  /** Per draw: the user index i (known when i < users). */
  index: number[];
  knownShare: number;
  distinct: number;
  /** Share of all draws taken by the single most drawn key. */
  topKeyShare: number;
}

/** mulberry32: a small seeded PRNG, so a run's requests are the same every time. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Zipf tables above 10M ranks cost more memory than they add skew. */
const MAX_ZIPF_RANKS = 10_000_000;
/** A prime above any N allowed, so i ↦ i·A mod N is a bijection of 0..N-1. */
const SCATTER = 2_147_483_647n;

export function sampleKeys(o: KeyMixOptions): KeyMix {
  if (!(o.users >= 1)) throw new Error('the data set needs at least one user');
  const rnd = prng(o.seed ^ 0xbe4c);
  const zipf = o.hitRatio > 0 ? new Zipf(Math.min(o.users, MAX_ZIPF_RANKS), o.zipf) : null;
  const N = BigInt(o.users);
  const uids: string[] = new Array(o.count);
  const index: number[] = new Array(o.count);
  const counts = new Map<number, number>();
  let known = 0;
  for (let k = 0; k < o.count; k++) {
    let i: number;
    if (zipf && rnd() < o.hitRatio) {
      i = Number((BigInt(zipf.rank(rnd())) * SCATTER) % N);
      known++;
    } else {
      i = o.users + Math.floor(rnd() * o.users);
    }
    index[k] = i;
    uids[k] = uidFor(o.seed, i);
    counts.set(i, (counts.get(i) ?? 0) + 1);
  }
  let top = 0;
  for (const c of counts.values()) if (c > top) top = c;
  return {
    uids,
    index,
    knownShare: known / Math.max(1, o.count),
    distinct: counts.size,
    topKeyShare: top / Math.max(1, o.count),
  };
}
