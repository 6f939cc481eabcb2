// A rebuild's bulk load: every user's segments, read in key order with the
// ordinal its value carries, gathered per segment, then each segment's
// ordinals sorted (a radix sort) and given to its bitmap in one call. Key
// order scatters the ordinals, and Roaring's addMany took 85–140 ns an
// ordinal on scattered input against 7–10 ns on ascending input (1M–6M
// ordinals over 10M); at 10M users, sorting and adding took 1.8 s of CPU,
// against 6 s for reading the users back in ordinal order.
//
// The ordinals are gathered into one array, a region per segment sized by the
// store's segment counts: at 10M users that took 1.7 s of CPU against 4 s for
// an array per segment grown as it filled (a pointer chase and a growth copy
// per segment, cache misses across thousands of arrays).
//
// Memory while it runs: 4 bytes per membership (the gathered ordinals), one
// bit per ordinal up to the highest, and the largest segment's sort buffer.
import roaring from 'roaring';
import { SegmentSlots } from './segment-slots.js';

type Bitmap = InstanceType<typeof roaring.RoaringBitmap32>;

/** Bits per radix pass, at most (a count array of 2^12 stays in the L1 cache): ordinals below 2^24 take two passes. */
const MAX_DIGIT = 12;
/** Segments with fewer members than this are sorted by the engine's sort instead. */
const RADIX_FROM = 256;

export class MemberTable {
  private readonly slots = new SegmentSlots();
  /** Slots below this have a region of `flat`: [start, end), filled up to `pos`. */
  private readonly hinted: number;
  private flat: Uint32Array;
  private readonly start: Uint32Array;
  private readonly pos: Uint32Array;
  private readonly end: Uint32Array;
  /** Per slot: the ordinals past its region (or of a segment without one), and how many. */
  private readonly spilled: Array<Uint32Array | undefined> = [];
  private readonly spilledLen: number[] = [];
  /** One bit per ordinal some user added has. */
  private seen = new Uint32Array(1 << 11);
  private maxOrd = -1;

  /**
   * `sizes`: segment id → how many members it is expected to have (a hint:
   * the store's segment counts). Each gets a region of one array, so adding
   * a member is a store and a bump; a segment past its hint, or without
   * one, grows an array of its own.
   */
  constructor(sizes: Iterable<readonly [number, number]> = []) {
    const want: number[] = [];
    for (const [id, n] of sizes) if (n > 0) want[this.slots.of(id)] = n;
    this.hinted = this.slots.size;
    this.start = new Uint32Array(this.hinted);
    this.end = new Uint32Array(this.hinted);
    let total = 0;
    for (let s = 0; s < this.hinted; s++) {
      this.start[s] = total;
      total += want[s]!;
      this.end[s] = total;
    }
    this.pos = this.start.slice();
    this.flat = new Uint32Array(total);
  }

  /** Adds a user with ordinal `ord` and segments `segs[0..k)`; false (nothing added) when a user added before has `ord`. */
  add(ord: number, segs: Uint32Array, k: number): boolean {
    const w = ord >>> 5;
    if (w >= this.seen.length) this.seen = grown(this.seen, w + 1);
    const bit = 1 << (ord & 31);
    if ((this.seen[w]! & bit) !== 0) return false;
    this.seen[w]! |= bit;
    if (ord > this.maxOrd) this.maxOrd = ord;
    const { flat, pos, end, hinted, slots } = this;
    for (let i = 0; i < k; i++) {
      const s = slots.of(segs[i]!);
      if (s < hinted) {
        const p = pos[s]!;
        if (p < end[s]!) {
          flat[p] = ord;
          pos[s] = p + 1;
          continue;
        }
      }
      this.spill(s, ord);
    }
    return true;
  }

  private spill(s: number, ord: number): void {
    let a = this.spilled[s];
    const n = this.spilledLen[s] ?? 0;
    if (a === undefined) this.spilled[s] = a = new Uint32Array(16);
    else if (n === a.length) this.spilled[s] = a = grown(a, n + 1);
    a[n] = ord;
    this.spilledLen[s] = n + 1;
  }

  /** Adds every user's ordinal to `users` and each to its segments' bitmaps in `segments` (made as needed). */
  build(users: Bitmap, segments: Map<number, Bitmap>, newBitmap: () => Bitmap): void {
    users.addMany(setBits(this.seen, this.maxOrd));
    const sorter = new RadixSort(this.maxOrd);
    const { ids } = this.slots;
    for (let s = 0; s < ids.length; s++) {
      let ords = s < this.hinted ? this.flat.subarray(this.start[s]!, this.pos[s]!) : EMPTY;
      const more = this.spilled[s];
      if (more !== undefined) {
        const both = new Uint32Array(ords.length + this.spilledLen[s]!);
        both.set(ords);
        both.set(more.subarray(0, this.spilledLen[s]!), ords.length);
        ords = both;
        this.spilled[s] = undefined;
      }
      if (ords.length === 0) continue;
      const id = ids[s]!;
      let bm = segments.get(id);
      if (bm === undefined) segments.set(id, (bm = newBitmap()));
      bm.addMany(sorter.sort(ords));
    }
    this.flat = EMPTY;
  }
}

const EMPTY = new Uint32Array(0);

/** LSD radix sort of arrays of values ≤ max, in as few passes of at most MAX_DIGIT bits as cover max. */
class RadixSort {
  private readonly passes: number;
  private readonly digit: number;
  private tmp = new Uint32Array(0);
  private readonly count: Uint32Array;

  constructor(max: number) {
    const bits = Math.max(1, Math.ceil(Math.log2(max + 1)));
    this.passes = Math.ceil(bits / MAX_DIGIT);
    this.digit = Math.ceil(bits / this.passes);
    this.count = new Uint32Array((1 << this.digit) + 1);
  }

  /** `a` sorted ascending: `a` itself or the sorter's buffer (valid until the next call). */
  sort(a: Uint32Array): Uint32Array {
    const n = a.length;
    if (n < RADIX_FROM) return a.sort();
    if (this.tmp.length < n) this.tmp = new Uint32Array(n);
    const mask = (1 << this.digit) - 1;
    const count = this.count;
    let src = a;
    let dst: Uint32Array = this.tmp.subarray(0, n);
    for (let p = 0, shift = 0; p < this.passes; p++, shift += this.digit) {
      count.fill(0);
      for (let i = 0; i < n; i++) count[((src[i]! >>> shift) & mask) + 1]!++;
      for (let j = 1; j <= mask + 1; j++) count[j]! += count[j - 1]!;
      for (let i = 0; i < n; i++) {
        const v = src[i]!;
        dst[count[(v >>> shift) & mask]!++] = v;
      }
      const t = src;
      src = dst;
      dst = t;
    }
    return src;
  }
}

/** The set bits of `bits` up to `max`, ascending. */
function setBits(bits: Uint32Array, max: number): Uint32Array {
  if (max < 0) return EMPTY;
  const words = Math.floor(max / 32) + 1;
  let n = 0;
  for (let w = 0; w < words; w++) n += popcount(bits[w]!);
  const out = new Uint32Array(n);
  let k = 0;
  for (let w = 0; w < words; w++) {
    // The lowest set bit, one at a time (int32 arithmetic: bit 31 is the sign).
    let x = bits[w]! | 0;
    while (x !== 0) {
      const low = x & -x;
      out[k++] = w * 32 + 31 - Math.clz32(low);
      x ^= low;
    }
  }
  return out;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x5555_5555;
  x = (x & 0x3333_3333) + ((x >>> 2) & 0x3333_3333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f_0f0f, 0x0101_0101) >>> 24) & 0xff;
}

/** A copy of `a` with room for at least `need` elements. */
function grown(a: Uint32Array, need: number): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(Math.max(need, a.length * 2));
  out.set(a);
  return out;
}
