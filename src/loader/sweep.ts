// The TTL sweep: expired memberships are never returned (checked at read
// time), but they take space and inflate segment counts until removed. The
// sweeper walks the store in key order, a chunk at a time, and removes the
// expired pairs it found in small transactions, yielding between chunks so
// lookups (other threads) and the loader (this one) never stall.
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { HEADER_BYTES, PAIR_BYTES, decodeMembers, encodeMembers, isValidMembersValue } from '../store/members.js';
import { nowSeconds } from '../lookup/segments.js';
import type { Transactions } from './transactions.js';
import type { SegmentCounts } from './segment-counts.js';
import { timeline } from '../metrics/timeline.js';

/**
 * Earliest expiry (unix s) of any stored membership, as far as the writer
 * knows: 0 = unknown (a sweep must look), Infinity = nothing expires. The
 * sweeper sets it after each pass; every write with a TTL lowers it.
 */
export class ExpiryWatch {
  next = 0;

  lower(at: number): void {
    if (at < this.next) this.next = at;
  }
}

export interface SweepResult {
  users: number;
  removed: number;
}

/** What the sweeper needs of the writer. */
export interface SweepWrites {
  readonly expiry: ExpiryWatch;
  /** How long a tombstone is kept before the sweep removes it. */
  readonly tombstoneSeconds: number;
  /** Removes the expired memberships of `uids`, in one transaction. */
  sweep(uids: readonly string[], nowSec: number): SweepResult;
}

/**
 * Removes expired memberships of `uids` (found by the sweeper's scan) in one
 * small transaction. Each value is re-read here, so a change committed since
 * the scan is respected; updatedAt is kept (expiry is not a newer change).
 */
export function removeExpired(
  store: Store,
  tx: Transactions,
  counts: SegmentCounts,
  tombstoneSeconds: number,
  uids: readonly string[],
  nowSec: number,
): SweepResult {
  const { members, meta } = store;
  const out: SweepResult = { users: 0, removed: 0 };
  counts.begin();
  try {
    tx.commit(() => {
      for (const uid of uids) {
        const buf = members.getBinaryFast(uid) as Buffer | undefined;
        if (buf === undefined || !isValidMembersValue(buf)) continue;
        const { updatedAt, members: ms } = decodeMembers(buf);
        if (ms.length === 0) {
          if (updatedAt + tombstoneSeconds <= nowSec) {
            members.removeSync(uid);
            out.users++;
          }
          continue;
        }
        const live = ms.filter((m) => m.expiresAt === 0 || m.expiresAt > nowSec);
        if (live.length === ms.length) continue;
        for (const m of ms) if (!(m.expiresAt === 0 || m.expiresAt > nowSec)) counts.add(m.id, -1);
        out.removed += ms.length - live.length;
        out.users++;
        // Expiry is not a change: a user it empties is removed, not tombstoned.
        if (live.length === 0) members.removeSync(uid);
        else members.putSync(uid, encodeMembers(updatedAt, live));
      }
      counts.write();
      if (out.users > 0) meta.putSync('writes', ((meta.get('writes') as number | undefined) ?? 0) + 1);
    });
  } finally {
    counts.end();
  }
  counts.committed();
  return out;
}

const CHUNK = 2000;

/**
 * Whether the value holds an expired pair (or is a tombstone past its
 * retention); `minLive[0]` is lowered to its earliest future expiry.
 */
function scanExpiry(buf: Buffer, now: number, minLive: Float64Array, tombstoneSeconds: number): boolean {
  if (!isValidMembersValue(buf)) return false;
  if (buf.length === HEADER_BYTES) {
    const gone = buf.readUInt32LE(0) + tombstoneSeconds;
    if (gone <= now) return true;
    if (gone < minLive[0]!) minLive[0] = gone;
    return false;
  }
  let expired = false;
  for (let off = HEADER_BYTES + 4; off < buf.length; off += PAIR_BYTES) {
    const exp = buf.readUInt32LE(off);
    if (exp === 0) continue;
    if (exp <= now) expired = true;
    else if (exp < minLive[0]!) minLive[0] = exp;
  }
  return expired;
}

export interface SweepPass {
  /** False when nothing could have expired yet (no scan was needed). */
  ran: boolean;
  scanned: number;
  users: number;
  removed: number;
  ms: number;
}

export class Sweeper {
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly writer: SweepWrites,
    private readonly log: Logger,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  /**
   * One pass over the whole store — skipped while the earliest expiry the
   * writer knows of is still ahead. The pass measures the earliest remaining
   * expiry, so the next one runs only when something can have expired.
   */
  async pass(): Promise<SweepPass> {
    const t0 = performance.now();
    const res: SweepPass = { ran: false, scanned: 0, users: 0, removed: 0, ms: 0 };
    if (nowSeconds() < this.writer.expiry.next) return res;
    res.ran = true;
    this.writer.expiry.next = Infinity; // writes during the pass lower it
    const minLive = new Float64Array([Infinity]);
    try {
      await this.scan(res, minLive);
    } catch (err) {
      this.writer.expiry.next = 0; // unknown again: the next check runs a pass
      throw err;
    }
    res.ms = performance.now() - t0;
    timeline.add('sweep', t0, res.ms, { scanned: res.scanned, removed: res.removed });
    if (res.removed || res.users) this.log.info(res, 'ttl sweep removed expired memberships');
    return res;
  }

  private async scan(res: SweepPass, minLive: Float64Array): Promise<void> {
    let start: string | undefined;
    for (;;) {
      const now = nowSeconds();
      const expired: string[] = [];
      let last: string | undefined;
      let n = 0;
      // snapshot:false and no await inside the scan: no read snapshot is pinned.
      for (const { key, value } of this.store.members.getRange({ start, snapshot: false })) {
        const uid = key as string;
        if (uid === start) continue; // the range starts at the last key of the previous chunk
        if (scanExpiry(value as Buffer, now, minLive, this.writer.tombstoneSeconds)) expired.push(uid);
        last = uid;
        if (++n === CHUNK) break;
      }
      res.scanned += n;
      if (expired.length) {
        const r = this.writer.sweep(expired, now);
        res.users += r.users;
        res.removed += r.removed;
      }
      if (this.stopped) {
        this.writer.expiry.next = 0; // unknown: the next start scans again
        break;
      }
      if (n < CHUNK || last === undefined) {
        this.writer.expiry.next = Math.min(this.writer.expiry.next, minLive[0]!);
        break;
      }
      start = last;
      await yieldToLoop();
    }
  }
}
