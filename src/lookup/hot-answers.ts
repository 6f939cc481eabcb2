// The encoded answers of hot users, per worker. Lookup traffic is
// Zipf-skewed: a few thousand users take a large share of the lookups, and a
// remembered answer costs a hash of the uid and a compare where a read costs
// the known-users filter, an LMDB get, the expiry and licence filters and the
// encoding.
//
// An answer is the bytes one caller got for one user in one format, so the
// key is (licence, format, uid): a Licence object is compiled per partner and
// per registry version (licences.ts), so a changed licence is a different key
// and no caller ever gets bytes encoded for another's licence.
//
// An answer stays only as long as a read would give the same:
// - every commit and every generation flip (the two shared slots the store
//   compares before renewing a worker's read transaction, store/env.ts) ends
//   every remembered answer; they are compared on every get, so an answer is
//   never older than the last commit this worker has seen;
// - a membership's expiry changes the answer without a commit: an answer
//   stays until the earliest expiry among the user's memberships still live
//   when it was read, and from the second it was read (a clock set back
//   reads again).
//
// The layout holds no JS object per answer: a fixed-size slot of one arena
// per entry (the uid's bytes, then the answer's), a few numbers per slot in
// typed arrays, 4-way set-associative by a hash of the key; an answer not
// asked for since the last eviction in its set is the one replaced (a
// one-bit clock), and a key is kept only the second time it is read and
// only if it is asked for more often than the answer it would replace (see
// `wants`). Maps keyed by the request's fresh uid strings, tried first, cost
// about what they saved: the kept strings outlive scavenges, and comparing
// two strings of one hash lands on scattered heap.
//
// Measured (bench:micro, a GET's JS on the load tests' key mix: 60% known
// users, Zipf s=1 over 1M, 40% unknown; median of 15 paired CPU-time
// windows on a shared 2-core machine): 1.21–1.23× at 4096–65536 entries
// (1340 → 1082 ns at 16384, 40% of lookups answered here); with a commit
// every 1000 or 10000 lookups 0.98× (the cache stands aside, see
// `warmGets`); every 100000, 1.10×.
import { COMMIT_SLOT, GENERATION_SLOT } from '../shared-state.js';
import type { Licence } from './licences.js';

/** Bytes of a slot: the uid, then its answer (a JSON answer of a UUID fits with ≈ 80 segments). */
export const SLOT_BYTES = 512;
/** Slots a key may take: a set. */
const WAYS = 4;
/** Numbers kept per slot (one stride, so a set's are on two cache lines). */
const META = 8;
const HASH = 0;
const EPOCH = 1;
const TAG = 2;
/** The uid's length (low 16 bits) and the answer's (high 16 bits). */
const LENGTHS = 3;
const SINCE = 4;
const UNTIL = 5;
/** Asked for since its set last evicted an answer: 1. */
const USED = 6;
/** Formats (or any other variants of an answer) told apart; the caller numbers them 0 … VARIANTS-1. */
export const VARIANTS = 4;
/** Bits of the doorkeeper (`wants`): 8 KB, so it stays in the L1 cache. */
const DOOR_BITS_LOG2 = 16;
const DOOR_BITS = 1 << DOOR_BITS_LOG2;
/**
 * The frequency sketch (`wants`): a block of 16 byte counters per slot, a
 * key's four counters in one block (one cache line a get), each saturating
 * at 15 and all halved once the gets counted reach SKETCH_PERIOD × slots.
 */
const SKETCH_BLOCK_LOG2 = 4;
const SKETCH_MAX = 15;
const SKETCH_PERIOD = 10;
/** Licences numbered at once; past this many (registry versions piling up), every answer is dropped. */
const CALLERS = 64;

/** A second hash of a key's hash: its bits choose the key's counters within its block. */
const mix = (h: number): number => Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
/** The key's `i`-th counter (0–3) in the block at `at`: one in each quarter, chosen by two bits of `x`. */
const counter = (at: number, x: number, i: number): number => at + (i << 2) + ((x >>> (i << 1)) & 3);

const NO_KEY = new Uint8Array(0);
/** Per worker: the cache on its cells (`HotAnswers.of`). */
const SHARED = new WeakMap<Int32Array, HotAnswers>();

export class HotAnswers {
  private readonly arena: Buffer;
  private readonly meta: Uint32Array;
  /** Per slot: a view of its answer, made when it is first asked for. */
  private readonly views: (Buffer | undefined)[];
  private readonly setMask: number;
  /** A slot holds an answer only while its EPOCH is this (0: never written). */
  private epoch = 1;
  private commits: number;
  private generation: number;
  /** Licence → its number in keys. */
  private callers = new Map<Licence, number>();
  /** Gets since the last commit; whether answers are looked for and kept (see `warmGets`). */
  private gets = 0;
  private active = true;
  /**
   * Commits closer together than this many gets leave no time to fill the
   * cache: each one empties it before the answers kept pay back their
   * copies. After such a commit, gets are answered "not kept" at once, with
   * no hash and no put, until this many have gone by without one (measured,
   * bench:micro: with a commit every 1000 lookups the cache cost 18% of a
   * lookup, every 10000 6%, every 100000 it gained 7%).
   */
  private readonly warmGets: number;
  /** The doorkeeper's bits (see `wants`), and how many are set. */
  private readonly door = new Uint32Array(DOOR_BITS / 32);
  private doorSet = 0;
  /** How often keys were asked for lately (see `wants`), and the gets counted since the last halving. */
  private readonly sketch: Uint8Array;
  /** The sketch as words, for the halving. */
  private readonly sketchWords: Uint32Array;
  /** 32 − log2(slots): a hash's high bits number its block. */
  private readonly sketchShift: number;
  private sketchCounted = 0;
  /** The slot `wants` gave the last get's key (-1: none yet). */
  private lastSlot = -1;
  /**
   * The last get's key, for the put that follows a miss: the uid `lastUid`,
   * or (null) the bytes `lastKey[lastStart, lastStart + lastLength)`,
   * hashed; `pending`: a get missed and no put or other get came since.
   */
  private pending = false;
  private lastUid: string | null = null;
  /** Set by `hold`: the cells' values when the holder's snapshot was pinned. */
  private held = false;
  private heldCommits = 0;
  private heldGeneration = 0;
  private lastKey: Uint8Array = NO_KEY;
  private lastStart = 0;
  private lastLength = 0;
  private lastHash = 0;
  private lastTag = 0;

  /**
   * `cells`: the shared slots every commit and generation flip change
   * (SharedState.flags). Keeps at most `entries` answers (rounded down to a
   * power of two, at least one set), `entries × SLOT_BYTES` bytes.
   */
  constructor(
    private readonly cells: Int32Array,
    entries: number,
    /** Gets without a commit before answers are kept again (see the field); default twice the slots. */
    warmGets?: number,
  ) {
    let sets = 1;
    while (sets * 2 * WAYS <= entries) sets *= 2;
    this.setMask = sets - 1;
    this.arena = Buffer.allocUnsafeSlow(sets * WAYS * SLOT_BYTES);
    this.meta = new Uint32Array(sets * WAYS * META);
    this.views = new Array<Buffer | undefined>(sets * WAYS).fill(undefined);
    this.sketch = new Uint8Array((sets * WAYS) << SKETCH_BLOCK_LOG2);
    this.sketchWords = new Uint32Array(this.sketch.buffer);
    this.sketchShift = 32 - Math.log2(sets * WAYS);
    this.warmGets = warmGets ?? 2 * sets * WAYS;
    this.commits = Atomics.load(cells, COMMIT_SLOT);
    this.generation = Atomics.load(cells, GENERATION_SLOT);
  }

  /**
   * The worker's one cache on `cells` (the worker's SharedState.flags): the
   * GET and batch routes share their hot users' answers, which are the same
   * bytes (a batch item is a GET answer). The first caller sizes it.
   */
  static of(cells: Int32Array, entries: number): HotAnswers {
    let hot = SHARED.get(cells);
    if (hot === undefined) SHARED.set(cells, (hot = new HotAnswers(cells, entries)));
    return hot;
  }

  /** Slots (the most answers kept). */
  get capacity(): number {
    return this.views.length;
  }

  /**
   * The answer `licence` got for `uid` in `variant`, if it is still the one a
   * read at `nowSec` would give; valid until the next put.
   */
  get(licence: Licence, variant: number, uid: string, nowSec: number): Buffer | undefined {
    if (!this.open()) return undefined;
    const len = uid.length;
    if (len > SLOT_BYTES) return undefined;
    const tag = this.tagOf(licence, variant);
    // FNV-1a over the UTF-16 units (the bytes of getBytes' key); a unit past 0xff is not kept (its byte would not say it).
    // Hashed and compared from the string, not copied to bytes for one shared path: a GET's JS
    // measured 1.067x the string path's with that copy (median of 20 paired CPU-time windows).
    let h = Math.imul(0x811c9dc5 ^ tag, 0x01000193);
    for (let i = 0; i < len; i++) {
      const u = uid.charCodeAt(i);
      if (u > 0xff) return undefined;
      h = Math.imul(h ^ u, 0x01000193);
    }
    this.lastUid = uid;
    return this.find(h >>> 0, tag, len, nowSec);
  }

  /**
   * `get` of the uid whose chars are the bytes `b[start, end)` (a batch's
   * plain ASCII uid), with no string made; `b` must hold them until the put.
   */
  getBytes(licence: Licence, variant: number, b: Uint8Array, start: number, end: number, nowSec: number) {
    const len = end - start;
    if (!this.open() || len > SLOT_BYTES) return undefined;
    const tag = this.tagOf(licence, variant);
    let h = Math.imul(0x811c9dc5 ^ tag, 0x01000193);
    for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    this.lastUid = null;
    this.lastKey = b;
    this.lastStart = start;
    return this.find(h >>> 0, tag, len, nowSec);
  }

  /**
   * Until `release`, answers are looked for and kept only while nothing has
   * committed since now: a batch reads one pinned snapshot
   * (SegmentLookup.pin), so an answer it read after a commit landed would be
   * older than the commit. Called before the pin, so the snapshot is at
   * least as new as the cells read here.
   */
  hold(): void {
    this.held = true;
    this.heldCommits = Atomics.load(this.cells, COMMIT_SLOT);
    this.heldGeneration = Atomics.load(this.cells, GENERATION_SLOT);
  }

  release(): void {
    this.held = false;
  }

  /** Whether gets look for answers now: drops them all first if anything committed since the last get. */
  private open(): boolean {
    // Two Atomics.loads: the store renews the read transaction on the same test.
    const c = Atomics.load(this.cells, COMMIT_SLOT);
    const g = Atomics.load(this.cells, GENERATION_SLOT);
    if (this.held && (c !== this.heldCommits || g !== this.heldGeneration)) {
      this.pending = false;
      return false;
    }
    if (c !== this.commits || g !== this.generation) {
      this.commits = c;
      this.generation = g;
      this.dropAll();
      this.active = this.gets >= this.warmGets;
      this.gets = 0;
    }
    this.pending = false;
    const n = ++this.gets;
    if (!this.active) {
      if (n < this.warmGets) return false;
      this.active = true;
    }
    return true;
  }

  /** The slot of the key just hashed (`lastUid`, or `lastKey` from `lastStart`), if it holds a live answer. */
  private find(h: number, tag: number, len: number, nowSec: number): Buffer | undefined {
    this.pending = true;
    this.lastLength = len;
    this.lastHash = h;
    this.lastTag = tag;
    this.lastSlot = -1;
    this.count(h);
    const meta = this.meta;
    const first = (h & this.setMask) * WAYS;
    for (let s = first; s < first + WAYS; s++) {
      const m = s * META;
      if (meta[m + HASH] !== h || meta[m + EPOCH] !== this.epoch || meta[m + TAG] !== tag) continue;
      const lengths = meta[m + LENGTHS]!;
      if ((lengths & 0xffff) !== len || !this.holds(s)) continue;
      const until = meta[m + UNTIL]!;
      if (nowSec < meta[m + SINCE]! || (until !== 0 && nowSec >= until)) return undefined;
      meta[m + USED] = 1;
      this.pending = false;
      let v = this.views[s];
      if (v === undefined) {
        const at = s * SLOT_BYTES + len;
        this.views[s] = v = this.arena.subarray(at, at + (lengths >>> 16));
      }
      return v;
    }
    return undefined;
  }

  /**
   * After a get that said undefined, whether an answer for the same key
   * would be kept. Two gates, TinyLFU's (Einziger, Friedman, Manes 2017):
   * - a key is offered the second time it is read (a doorkeeper: a bit per
   *   hash, all cleared once a quarter are set), so the users read once,
   *   most of the distinct users of a Zipf mix, cost no copy;
   * - it then takes the slot the set's clock gives up only if it has been
   *   asked for more often lately than the answer there (the frequency
   *   sketch, counted on every get), so keys asked for evenly, more of
   *   them than there are slots, leave the answers kept where they are
   *   instead of replacing one another on every read.
   * Simulated on a Zipf s=1 mix of 1M users at 16384 entries, the
   * doorkeeper alone: 64.5% of known-user lookups kept against 61.6%
   * keeping every key, 0.07 copies per known-user lookup against 0.38.
   * The sketch: a batch of 12,000 users asked for evenly through 8192
   * entries cost 1.08× the CPU of no cache at all without it, 0.97× with
   * it (bench:cpu, the same rounds); on the Zipf GET mix it measured level.
   */
  wants(licence: Licence, variant: number): boolean {
    if (!this.pending || this.lastTag !== this.tagOf(licence, variant)) return false;
    const h = this.lastHash;
    const d = h >>> (32 - DOOR_BITS_LOG2);
    const word = d >>> 5;
    const bit = 1 << (d & 31);
    const door = this.door;
    if ((door[word]! & bit) === 0) {
      door[word]! |= bit;
      if (++this.doorSet >= DOOR_BITS / 4) {
        door.fill(0);
        this.doorSet = 0;
      }
      this.pending = false;
      return false;
    }
    const s = this.victim(h, this.lastLength);
    const m = s * META;
    const meta = this.meta;
    // A live answer of another key stays unless this key is asked for more often.
    if (meta[m + EPOCH] === this.epoch && meta[m + HASH] !== h && this.often(h) <= this.often(meta[m + HASH]!)) {
      this.pending = false;
      return false;
    }
    this.lastSlot = s;
    return true;
  }

  /** Counts a get of the key hashed `h` in the sketch; halves every count once a period is counted. */
  private count(h: number): void {
    const sketch = this.sketch;
    const at = this.block(h);
    const x = mix(h);
    for (let i = 0; i < 4; i++) {
      const c = counter(at, x, i);
      if (sketch[c]! < SKETCH_MAX) sketch[c]!++;
    }
    if (++this.sketchCounted >= SKETCH_PERIOD * this.views.length) {
      // Four counters a word (each ≤ 15, so no bit crosses into its neighbour):
      // 20 µs for 8192 slots' 128 KB against 69 µs a byte at a time, once every 81,920 gets.
      const words = this.sketchWords;
      for (let i = 0; i < words.length; i++) words[i] = (words[i]! >>> 1) & 0x7f7f7f7f;
      this.sketchCounted >>>= 1;
    }
  }

  /** How often the key hashed `h` was asked for lately: the least of its four counters. */
  private often(h: number): number {
    const sketch = this.sketch;
    const at = this.block(h);
    const x = mix(h);
    let least = SKETCH_MAX;
    for (let i = 0; i < 4; i++) {
      const c = sketch[counter(at, x, i)]!;
      if (c < least) least = c;
    }
    return least;
  }

  /** The key's block of counters: by the hash's high bits (its low bits choose the set). */
  private block(h: number): number {
    return (Math.imul(h, 0x9e3779b1) >>> this.sketchShift) << SKETCH_BLOCK_LOG2;
  }

  /**
   * Remembers `answer[start, end)` (copied) for the key `wants` just said
   * yes to: read at `sinceSec`, the same until `untilSec` (0: until a commit).
   */
  put(answer: Uint8Array, sinceSec: number, untilSec: number, start = 0, end = answer.length): void {
    // Only the slot `wants` admitted the key to: nothing is kept past its gates.
    const s = this.lastSlot;
    if (!this.pending || s < 0) return;
    this.pending = false;
    const len = this.lastLength;
    const n = end - start;
    if (len + n > SLOT_BYTES) return;
    const meta = this.meta;
    const m = s * META;
    meta[m + HASH] = this.lastHash;
    meta[m + EPOCH] = this.epoch;
    meta[m + TAG] = this.lastTag;
    meta[m + LENGTHS] = len | (n << 16);
    meta[m + SINCE] = sinceSec;
    meta[m + UNTIL] = untilSec;
    meta[m + USED] = 0;
    const arena = this.arena;
    const uid = this.lastUid;
    const key = this.lastKey;
    let at = s * SLOT_BYTES;
    // Byte loops: a key and a lookup answer are a few dozen bytes, where TypedArray set() costs a native call.
    if (uid !== null) for (let i = 0; i < len; i++) arena[at++] = uid.charCodeAt(i);
    else for (let i = this.lastStart; i < this.lastStart + len; i++) arena[at++] = key[i]!;
    for (let i = start; i < end; i++) arena[at++] = answer[i]!;
    this.views[s] = undefined;
  }

  /** Ends every answer kept: one step of the epoch (a full wipe when it wraps, so an old slot never matches again). */
  private dropAll(): void {
    if (this.epoch < 0xffff_ffff) {
      this.epoch++;
      return;
    }
    this.meta.fill(0);
    this.views.fill(undefined);
    this.epoch = 1;
  }

  /** The key's number: licence and variant. */
  private tagOf(licence: Licence, variant: number): number {
    let id = this.callers.get(licence);
    if (id === undefined) {
      if (this.callers.size >= CALLERS) {
        this.callers = new Map();
        this.dropAll(); // the numbers are given out again
      }
      id = this.callers.size;
      this.callers.set(licence, id);
    }
    return id * VARIANTS + variant;
  }

  /** Whether slot `s` holds the last get's key (its length already compared). */
  private holds(s: number): boolean {
    const arena = this.arena;
    const uid = this.lastUid;
    const len = this.lastLength;
    if (uid !== null) {
      const at = s * SLOT_BYTES;
      for (let i = 0; i < len; i++) if (arena[at + i] !== uid.charCodeAt(i)) return false;
      return true;
    }
    const key = this.lastKey;
    const d = s * SLOT_BYTES - this.lastStart;
    for (let i = this.lastStart; i < this.lastStart + len; i++) if (arena[d + i] !== key[i]) return false;
    return true;
  }

  /**
   * The slot a new answer takes in its set: the key's own (an expired
   * answer), an empty one, else the first not asked for since the set last
   * evicted (clearing the marks of those passed over, so each gets one more
   * round).
   */
  private victim(h: number, len: number): number {
    const meta = this.meta;
    const first = (h & this.setMask) * WAYS;
    let empty = -1;
    for (let s = first; s < first + WAYS; s++) {
      const m = s * META;
      if (meta[m + EPOCH] !== this.epoch) {
        if (empty < 0) empty = s;
      } else if (
        meta[m + HASH] === h &&
        meta[m + TAG] === this.lastTag &&
        (meta[m + LENGTHS]! & 0xffff) === len &&
        this.holds(s)
      )
        return s;
    }
    if (empty >= 0) return empty;
    for (let s = first; s < first + WAYS; s++) {
      if (meta[s * META + USED] === 0) return s;
      meta[s * META + USED] = 0;
    }
    return first;
  }
}
