// A deterministic synthetic audience: user i's key and segments are pure
// functions of (seed, i), so tests, benchmarks and load tests share one data
// set without shipping it, and a load generator can draw known keys (i < N)
// and unknown ones of the same shape (i ≥ N) without reading the feed.
//
// Shape, loosely after real DMP exports: two key styles (22-char cookie ids
// and UUIDv4s), 1–30 segments per user with most users in few, segment
// popularity Zipf-like over a taxonomy, and some memberships with TTLs.

export interface SyntheticOptions {
  seed: number;
  /** Size of the segment taxonomy; ids are 1000 … 1000+taxonomy-1. */
  taxonomy: number;
  /** Share of memberships that carry a TTL. */
  ttlShare: number;
}

export const DEFAULT_SYNTHETIC: SyntheticOptions = { seed: 1, taxonomy: 5000, ttlShare: 0.2 };
export const FIRST_SEGMENT_ID = 1000;

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const HEX = '0123456789abcdef';

/** splitmix32-style mixing: a fast, well-spread hash of (seed, i, salt). */
function mix(a: number): number {
  a = (a + 0x9e3779b9) | 0;
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
  a = Math.imul(a ^ (a >>> 13), 0xc2b2ae35);
  return (a ^ (a >>> 16)) >>> 0;
}

/** A small PRNG stream for one user. */
class Rng {
  private s: number;
  constructor(seed: number, i: number, salt: number) {
    this.s = mix(mix(seed ^ salt) ^ mix(i) ^ Math.floor(i / 0x1_0000_0000));
  }
  next(): number {
    this.s = mix(this.s);
    return this.s;
  }
  float(): number {
    return this.next() / 0x1_0000_0000;
  }
}

export function uidFor(seed: number, i: number): string {
  const r = new Rng(seed, i, 0x5eed);
  let s = '';
  if (r.next() % 10 < 6) {
    for (let k = 0; k < 22; k++) s += B62[r.next() % 62];
    return s;
  }
  for (let k = 0; k < 32; k++) {
    if (k === 8 || k === 12 || k === 16 || k === 20) s += '-';
    if (k === 12) s += '4';
    else if (k === 16) s += HEX[8 + (r.next() % 4)];
    else s += HEX[r.next() % 16];
  }
  return s;
}

/**
 * Zipf(s≈1) sampler over ranks 0..n-1 by inverse CDF on a precomputed table:
 * O(log n) per draw, no allocation.
 */
export class Zipf {
  private readonly cdf: Float64Array;
  constructor(
    readonly n: number,
    s = 1.0,
  ) {
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) this.cdf[k] = sum += 1 / Math.pow(k + 1, s);
    for (let k = 0; k < n; k++) this.cdf[k]! /= sum;
  }
  rank(u: number): number {
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export interface SyntheticUser {
  uid: string;
  segments: Array<number | { id: number; ttl: number }>;
}

export class Synthetic {
  private readonly zipf: Zipf;
  constructor(readonly opts: SyntheticOptions = DEFAULT_SYNTHETIC) {
    this.zipf = new Zipf(opts.taxonomy);
  }

  user(i: number): SyntheticUser {
    const r = new Rng(this.opts.seed, i, 0x5e65);
    // 1..30 segments, skewed low: most users are in a handful.
    const count = 1 + Math.min(29, Math.floor(-Math.log(1 - r.float()) * 5));
    const seen = new Set<number>();
    const segments: SyntheticUser['segments'] = [];
    for (let tries = 0; segments.length < count && tries < count * 4; tries++) {
      const id = FIRST_SEGMENT_ID + this.zipf.rank(r.float());
      if (seen.has(id)) continue;
      seen.add(id);
      if (r.float() < this.opts.ttlShare) segments.push({ id, ttl: 86_400 * (1 + (r.next() % 90)) });
      else segments.push(id);
    }
    return { uid: uidFor(this.opts.seed, i), segments };
  }

  /** One feed line (with its newline) for user i; ts 0 = none (the loader stamps the apply time). */
  line(i: number, ts: number): string {
    const u = this.user(i);
    return `{"op":"add","uid":"${u.uid}","segments":${JSON.stringify(u.segments)}${ts ? `,"ts":${ts}` : ''}}\n`;
  }
}

/** Writes users 0..users-1 as feed lines to `stream` in 1 MB chunks, honouring backpressure. */
export async function writeSyntheticFeed(
  stream: NodeJS.WritableStream,
  gen: Synthetic,
  users: number,
  ts: number,
  onProgress: (written: number) => void = () => {},
): Promise<void> {
  let chunk = '';
  for (let i = 0; i < users; i++) {
    chunk += gen.line(i, ts);
    if (chunk.length > 1 << 20 || i === users - 1) {
      if (!stream.write(chunk)) await new Promise((r) => stream.once('drain', r));
      chunk = '';
      onProgress(i + 1);
    }
  }
}
