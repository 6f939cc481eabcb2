// The read path: user key → live segment ids. Synchronous, straight from the
// memory map; one reusable output array per worker, no per-lookup objects.
import type { Database } from 'lmdb';
import type { GetOptions, Store } from '../store/env.js';
import { liveSegments, nextExpiry, HEADER_BYTES } from '../store/members.js';

/** More than any real profile holds; a value with more pairs is truncated. */
const MAX_SEGMENTS_PER_USER = 65_536;

const NO_BYTES = new Uint8Array(0);

/** lmdb-js's getBinaryFast with its options (missing from its type). */
interface FastGet {
  getBinaryFast(key: unknown, options: GetOptions): Buffer | undefined;
}

/** Slots of the filter outcome counters. */
const FILTER_NEGATIVE = 0;
const FILTER_TRUE_POSITIVE = 1;
const FILTER_FALSE_POSITIVE = 2;

/** The known-users filter (filters/blocked-bloom.ts), as the read path asks it. */
interface KnownUsersFilter {
  /** False: the user is certainly unknown. True: maybe known. */
  mayContain(uid: string): boolean;
  /** mayContain of the uid whose chars are the ASCII bytes `b[start, end)`. */
  mayContainAscii(b: Uint8Array, start: number, end: number): boolean;
}

export class SegmentLookup {
  /** Filled by `find`; valid until the next call. */
  readonly ids = new Uint32Array(MAX_SEGMENTS_PER_USER);
  /** The known-users filter; null = none usable yet (every lookup reads LMDB). */
  filter: KnownUsersFilter | null = null;
  /** Whether the last `find` was answered by the filter alone ("definitely unknown"). */
  filtered = false;
  /** The value the last `find` read (valid until the next LMDB get), or null. */
  private value: Buffer | null = null;
  /** Set by pin(): the generation every find reads until unpin(). */
  private pinned: Database<Buffer, string> | null = null;
  /**
   * Per generation, the same database read by a key given as bytes: its key
   * writer copies `keySource[keyStart, keyEnd)` (set just before the get)
   * where lmdb-js would write a string key. A plain ASCII uid's bytes are
   * the key ordered-binary writes for its string (no escape below 0x20), so
   * `findAscii` makes no string and runs no string key writer.
   */
  private readonly byBytes: readonly [Database<Buffer, number>, Database<Buffer, number>];
  private keySource: Uint8Array = new Uint8Array(0);
  private keyStart = 0;
  private keyEnd = 0;

  /** `filterStats` counts negatives / true positives / false positives (for the measured FP rate). */
  constructor(
    private readonly store: Store,
    private readonly filterStats = new Float64Array(3),
  ) {
    const keyEncoder = {
      writeKey: (_key: unknown, target: Uint8Array, start: number): number => {
        const src = this.keySource;
        const end = this.keyEnd;
        let p = start;
        // A byte loop: a uid is a few dozen bytes, where set() of a subarray costs an object and a native call.
        for (let i = this.keyStart; i < end; i++) target[p++] = src[i]!;
        // Zero-padded past its end, as ordered-binary's null termination leaves a string key:
        // lmdb-js's key compare (compareFast) reads the key a whole 32-bit word at a time.
        target[p] = 0;
        target[p + 1] = 0;
        target[p + 2] = 0;
        target[p + 3] = 0;
        return p;
      },
      readKey: (b: Uint8Array, start: number, end: number): Uint8Array => b.subarray(start, end),
    };
    // keyEncoder: lmdb-js's documented custom key encoding (missing from its DatabaseOptions type).
    const open = (db: Database<Buffer, string>) =>
      store.env.openDB<Buffer, number>({
        name: (db as unknown as { name: string }).name,
        encoding: 'binary',
        keyEncoder,
      } as { name: string; encoding: 'binary' });
    this.byBytes = [open(store.generations[0]), open(store.generations[1])];
  }

  /**
   * Until unpin(), every find reads the generation active now (a batch
   * answers from one data set). Unpin in the same turn: a pinned find reads
   * through the store's read transaction without renewing it.
   */
  pin(): void {
    this.pinned = this.store.members;
  }

  unpin(): void {
    this.pinned = null;
  }

  /**
   * The filter's word on the uid whose chars are the ASCII bytes
   * `b[start, end)`, before any string of it is made: false, certainly
   * unknown (counted as the filter's negative, as `find` counts it); true,
   * maybe known — `findAscii` it.
   */
  screen(b: Uint8Array, start: number, end: number): boolean {
    const filter = this.filter;
    if (filter === null || filter.mayContainAscii(b, start, end)) return true;
    this.filterStats[FILTER_NEGATIVE]!++;
    return false;
  }

  /**
   * Number of live segments of `uid` written into `this.ids`, or -1 when the
   * user is unknown (so callers can count hits and misses).
   */
  find(uid: string, nowSec: number): number {
    const filter = this.filter;
    if (filter !== null && !filter.mayContain(uid)) {
      this.filterStats[FILTER_NEGATIVE]!++;
      this.filtered = true;
      this.value = null;
      return -1;
    }
    this.filtered = false;
    const db = (this.pinned ?? this.store.members) as unknown as FastGet;
    return this.found(db.getBinaryFast(uid, this.store.reading), nowSec);
  }

  /**
   * `find` of the uid whose chars are the plain ASCII bytes `b[start, end)`
   * (printable, not `"` or `\\`: codec/uid-list.ts), which `screen` passed:
   * the same answer and counts, with no string made.
   */
  findAscii(b: Uint8Array, start: number, end: number, nowSec: number): number {
    this.filtered = false;
    const db = this.pinned ?? this.store.members;
    this.keySource = b;
    this.keyStart = start;
    this.keyEnd = end;
    const byBytes = this.byBytes[db === this.store.generations[0] ? 0 : 1] as unknown as FastGet;
    const buf = byBytes.getBinaryFast(0, this.store.reading);
    this.keySource = NO_BYTES;
    return this.found(buf, nowSec);
  }

  /** The answer of a get's value (`find`): the live segments, or -1 for an unknown user. */
  private found(buf: Buffer | undefined, nowSec: number): number {
    this.value = buf ?? null;
    // No value, or a tombstone (header only): an unknown user.
    if (buf === undefined || buf.length <= HEADER_BYTES) {
      if (this.filter !== null) this.filterStats[FILTER_FALSE_POSITIVE]!++;
      return -1;
    }
    if (this.filter !== null) this.filterStats[FILTER_TRUE_POSITIVE]!++;
    return liveSegments(buf, nowSec, this.ids);
  }

  /**
   * The second from which the last find's answer, read at `nowSec`, may
   * differ (0: only a commit changes it). Only before the next LMDB get: the
   * value is lmdb-js's reused buffer.
   */
  nextChange(nowSec: number): number {
    return this.value === null ? 0 : nextExpiry(this.value, nowSec);
  }
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000); // not `| 0`: that goes negative in 2038
}

/** Wall-clock ms less performance.now(), and the performance.now() at which it is read again. */
let wallOffsetMs = 0;
let offsetUntil = -Infinity;

/**
 * `nowSeconds()` for `perfMs`, a performance.now() the caller has just
 * taken: a route that times itself reads one clock instead of two (Date.now()
 * ≈ 45 ns a call here; `npm run bench:micro`, "route clocks"). The offset to
 * the wall clock is read again once a second, so a wall-clock step is seen
 * within a second, and the answer trails the wall clock by at most 1 ms
 * (Date.now()'s whole ms) plus the caller's delay since `perfMs`.
 */
export function secondsAt(perfMs: number): number {
  if (perfMs >= offsetUntil) {
    wallOffsetMs = Date.now() - perfMs;
    offsetUntil = perfMs + 1000;
  }
  return Math.floor((perfMs + wallOffsetMs) / 1000);
}
