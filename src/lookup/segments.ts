// The read path: user key → live segment ids. Synchronous, straight from the
// memory map; one reusable output array per worker, no per-lookup objects.
import type { Database } from 'lmdb';
import type { Store } from '../store/env.js';
import { liveSegments, nextExpiry, HEADER_BYTES } from '../store/members.js';

/** More than any real profile holds; a value with more pairs is truncated. */
const MAX_SEGMENTS_PER_USER = 65_536;

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

  /** `filterStats` counts negatives / true positives / false positives (for the measured FP rate). */
  constructor(
    private readonly store: Store,
    private readonly filterStats = new Float64Array(3),
  ) {}

  /** Until unpin(), every find reads the generation active now (a batch answers from one data set). */
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
   * maybe known — `find` it with `screened`.
   */
  screen(b: Uint8Array, start: number, end: number): boolean {
    const filter = this.filter;
    if (filter === null || filter.mayContainAscii(b, start, end)) return true;
    this.filterStats[FILTER_NEGATIVE]!++;
    return false;
  }

  /**
   * Number of live segments of `uid` written into `this.ids`, or -1 when the
   * user is unknown (so callers can count hits and misses). `screened`: the
   * filter passed it already (`screen`).
   */
  find(uid: string, nowSec: number, screened = false): number {
    const filter = this.filter;
    if (!screened && filter !== null && !filter.mayContain(uid)) {
      this.filterStats[FILTER_NEGATIVE]!++;
      this.filtered = true;
      this.value = null;
      return -1;
    }
    this.filtered = false;
    const buf = (this.pinned ?? this.store.members).getBinaryFast(uid) as Buffer | undefined;
    this.value = buf ?? null;
    // No value, or a tombstone (header only): an unknown user.
    if (buf === undefined || buf.length <= HEADER_BYTES) {
      if (filter !== null) this.filterStats[FILTER_FALSE_POSITIVE]!++;
      return -1;
    }
    if (filter !== null) this.filterStats[FILTER_TRUE_POSITIVE]!++;
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
