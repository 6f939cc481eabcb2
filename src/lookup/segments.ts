// The read path: user key → live segment ids. Synchronous, straight from the
// memory map; one reusable output array per worker, no per-lookup objects.
import type { Store } from '../store/env.js';
import { liveSegments } from '../store/members.js';

/** More than any real profile holds; a value with more pairs is truncated. */
export const MAX_SEGMENTS_PER_USER = 65_536;

export class SegmentLookup {
  /** Filled by `find`; valid until the next call. */
  readonly ids = new Uint32Array(MAX_SEGMENTS_PER_USER);

  constructor(private readonly store: Store) {}

  /**
   * Number of live segments of `uid` written into `this.ids`, or -1 when the
   * user is unknown (so callers can count hits and misses).
   */
  find(uid: string, nowSec: number): number {
    const buf = this.store.members.getBinaryFast(uid) as Buffer | undefined;
    if (buf === undefined) return -1;
    return liveSegments(buf, nowSec, this.ids);
  }
}

export function nowSeconds(): number {
  return (Date.now() / 1000) | 0;
}
