// A blocked Bloom filter over shared memory: the known-users filter in front
// of every lookup. Each key maps to one 512-bit block (one cache line) and sets
// k bits inside it, so a check touches one cache line and costs one string hash.
//
// Why hand-written rather than the `bloom-filters` package: measured with
// `npm run bench:micro` on this machine, the package's BloomFilter.has costs
// ≈ 3–5 µs per check (XXH64 over a re-encoded string, k separate probes) —
// more than the LMDB get (≈ 2 µs) it exists to avoid. This filter checks in
// ≈ 60–90 ns (≤ 5% of an LMDB get). Segment exports (segment-export.ts) ship
// this same filter in a documented JSON format that a dependency-free reader
// checks (examples/segment-bloom-reader.mjs), so segd has no runtime use for
// the package: it is a dev dependency, for bench:micro's comparison only.
//
// Concurrency: the bits live in a SharedArrayBuffer. Only the loader thread
// sets bits (Atomics.or), always before the LMDB commit that makes the user
// visible; lookup workers read them with plain loads and take no lock. Plain
// loads are enough: bits only ever go from 0 to 1, an aligned 32-bit load
// cannot tear, and a worker that sees the user in LMDB has synchronised with
// the commit through LMDB's own reader-table/meta-page barriers, which come
// after the Atomics.or. (Atomics.load measured 15–30 ns vs 4–7 ns per probe
// here; with k = 7 that is most of a check.) Bits are never cleared, so
// deletions leave the filter stale in the safe direction.

export const BLOCK_BITS = 512;
const BLOCK_WORDS = BLOCK_BITS / 32;

export interface BloomParams {
  /** Number of 512-bit blocks. */
  blocks: number;
  /** Bits set per key, 1..16. */
  k: number;
  /** Keys it was sized for at its target false-positive rate. */
  capacity: number;
  /** Target false-positive rate at capacity. */
  fpRate: number;
}

/**
 * Expected false-positive rate of a blocked filter holding `n` keys: keys per
 * block are Poisson(λ = n / blocks); a block holding j keys answers a stranger
 * "maybe" with probability (1 − (1 − 1/512)^(k·j))^k.
 */
function expectedFpRate(blocks: number, k: number, n: number): number {
  const lambda = n / blocks;
  const hi = Math.ceil(lambda + 12 * Math.sqrt(lambda) + 12);
  let p = Math.exp(-lambda); // Poisson(0)
  let sum = 0;
  for (let j = 0; j <= hi; j++) {
    if (j > 0) p *= lambda / j;
    sum += p * Math.pow(1 - Math.pow(1 - 1 / BLOCK_BITS, k * j), k);
  }
  return sum;
}

/**
 * The smallest filter (and its best k) whose expected rate at `capacity` keys
 * meets `fpRate`. Blocked filters need more bits per key than classic ones,
 * and more so at low rates (≈ +10% at 1%, ≈ +30% at 0.1%), so this searches
 * rather than applying the classic formula.
 */
export function sizeFor(capacity: number, fpRate: number): BloomParams {
  const n = Math.max(1, capacity);
  let bitsPerKey = -Math.log(fpRate) / (Math.LN2 * Math.LN2);
  for (;;) {
    const blocks = Math.max(1, Math.ceil((n * bitsPerKey) / BLOCK_BITS));
    let best = { k: 1, rate: Infinity };
    for (let k = 1; k <= 16; k++) {
      const rate = expectedFpRate(blocks, k, n);
      if (rate < best.rate) best = { k, rate };
    }
    if (best.rate <= fpRate || bitsPerKey > 64) return { blocks, k: best.k, capacity: n, fpRate };
    bitsPerKey *= 1.03;
  }
}

/**
 * Two independent 32-bit hashes of a string's UTF-16 units in one pass
 * (FNV-1a style multiply, murmur3 finaliser). Written into `out`.
 */
function hash2(s: string, out: Uint32Array): void {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
  }
  finish2(h1, h2, s.length, out);
}

/**
 * hash2 of the string whose UTF-16 units are the bytes `b[start, end)`: the
 * same hash for ASCII bytes, so a batch screens uids straight from the
 * request's bytes without making strings of the unknown ones.
 */
function hash2Bytes(b: Uint8Array, start: number, end: number, out: Uint32Array): void {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
  }
  finish2(h1, h2, end - start, out);
}

function finish2(h1: number, h2: number, length: number, out: Uint32Array): void {
  h1 ^= length;
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
  h1 = Math.imul(h1 ^ (h1 >>> 13), 0xc2b2ae35);
  h1 ^= h1 >>> 16;
  h2 = Math.imul(h2 ^ (h2 >>> 15), 0x2c1b3c6d);
  h2 = Math.imul(h2 ^ (h2 >>> 12), 0x297a2d39);
  h2 ^= h2 >>> 15;
  out[0] = h1;
  out[1] = h2;
}

function mix(a: number): number {
  a = Math.imul(a ^ (a >>> 16), 0x7feb352d);
  a = Math.imul(a ^ (a >>> 15), 0x846ca68b);
  return a ^ (a >>> 16);
}

export class BlockedBloom {
  readonly words: Int32Array;
  private readonly h = new Uint32Array(2);

  constructor(
    readonly params: BloomParams,
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer((params.blocks * BLOCK_BITS) / 8),
  ) {
    if (buffer.byteLength !== (params.blocks * BLOCK_BITS) / 8) {
      throw new Error(`bloom buffer is ${buffer.byteLength} bytes, params need ${(params.blocks * BLOCK_BITS) / 8}`);
    }
    this.words = new Int32Array(buffer);
  }

  add(key: string): void {
    hash2(key, this.h);
    this.probe(true);
  }

  /** false = definitely not added; true = probably added. */
  mayContain(key: string): boolean {
    hash2(key, this.h);
    return this.probe(false);
  }

  /**
   * mayContain of the key whose chars are the ASCII bytes `b[start, end)`
   * (the caller checked they are ASCII: other bytes are not the key's chars).
   */
  mayContainAscii(b: Uint8Array, start: number, end: number): boolean {
    hash2Bytes(b, start, end, this.h);
    return this.probe(false);
  }

  /**
   * The k bits of the key hashed into `h`: set them (`set`), or check them.
   * One loop for both so they cannot drift apart; measured no slower than
   * two copies (bench:micro).
   */
  private probe(set: boolean): boolean {
    const { words, h } = this;
    // fastrange: a uniform block index without a division.
    const base = Math.floor((h[0]! * this.params.blocks) / 0x1_0000_0000) * BLOCK_WORDS;
    // Three 9-bit positions per mixed 32-bit word. (Double hashing, even the
    // "enhanced" kind, measured 1.5× the modelled false-positive rate here.)
    let w = h[1]!;
    for (let i = 0, used = 0; i < this.params.k; i++, used++) {
      if (used === 3) {
        w = mix((w + 0x9e3779b9) | 0);
        used = 0;
      }
      const bit = (w >>> (used * 9)) & 511;
      const at = base + (bit >>> 5);
      const mask = 1 << (bit & 31);
      if (set) Atomics.or(words, at, mask);
      else if ((words[at]! & mask) === 0) return false;
    }
    return true;
  }

  /** Share of bits set (a full filter's false-positive rate rises with it). */
  fillRatio(): number {
    let set = 0;
    for (let i = 0; i < this.words.length; i++) {
      let v = this.words[i]! >>> 0;
      v -= (v >>> 1) & 0x55555555;
      v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
      set += Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
    }
    return set / (this.words.length * 32);
  }
}
