// Suppressions: users and ids whose data must not come back. Stored in the
// `optout` db keyed by segd uid (a user) or id key (identity/keys.ts: a
// partner id, device id… of a deleted profile), so neither a later membership
// feed nor a later match can recreate them.
//
//   opt-out    for good (until = 0): the user asked not to be tracked
//   deletion   until now + SEGD_DELETION_TOMBSTONE_DAYS: long enough for any
//              upstream snapshot or delta taken before the deletion to have
//              been replayed (the members db's own 7-day tombstones are far
//              too short for monthly snapshots)
import type { Database } from 'lmdb';

export type SuppressionReason = 'optout' | 'deletion';

export interface Suppression {
  /** Unix seconds it was recorded. */
  at: number;
  /** Unix seconds it lapses; 0 = never. */
  until: number;
  reason: SuppressionReason;
}

/** A stored suppression still in force at `nowSec`. */
export function isActive(s: Suppression | undefined, nowSec: number): boolean {
  return s !== undefined && (s.until === 0 || s.until > nowSec);
}

/**
 * Of a stored suppression and a new one, the one to keep: the one that lasts
 * longer (0 = never lapses). A deletion after an opt-out must not turn the
 * opt-out's "never" into a date.
 */
export function stronger(had: Suppression | undefined, next: Suppression, nowSec: number): Suppression {
  if (!isActive(had, nowSec)) return next;
  if (had!.until === 0) return had!;
  return next.until === 0 || next.until > had!.until ? next : had!;
}

/** Suppressed users held in memory at most; past it, the rest are read from the store. */
const MAX_SUPPRESSED_IN_MEMORY = 200_000;

/**
 * The suppressed users (segd uid → until, unix s; Infinity = for good), as
 * every change checks them. Up to `cap` are kept in memory (≈ 100 bytes
 * each), so an import pays a Map lookup, not a read; past the cap the store
 * (`optout` db) is the list and each check of a user not in memory is one
 * LMDB get. Bounded whatever the number of opt-outs, and a restart loads at
 * most `cap` of them.
 */
export class SuppressedUsers {
  private readonly mem = new Map<string, number>();
  /** Some active suppressions are only in the store. */
  private spilled = false;

  constructor(
    private readonly db: Database<unknown, string>,
    private readonly cap = MAX_SUPPRESSED_IN_MEMORY,
  ) {}

  /** Loads the stored suppressions of users (called once at start; at most `cap`, the rest stay in the store). */
  load(nowSec: number): number {
    let n = 0;
    for (const { key, value } of this.db.getRange({ snapshot: false })) {
      const k = key as string;
      const s = value as Suppression;
      // Id keys (identity/keys.ts) hold \x1f; a segd uid never does.
      if (k.includes('\x1f') || !isActive(s, nowSec)) continue;
      if (!this.set(k, s.until === 0 ? Infinity : s.until)) break;
      n++;
    }
    return n;
  }

  /** Nonzero when any user may be suppressed (callers skip the check at 0). */
  get size(): number {
    return this.mem.size === 0 && this.spilled ? 1 : this.mem.size;
  }

  /** After a committed suppression (or at load): false when it was left to the store (memory full). */
  set(uid: string, until: number): boolean {
    if (this.mem.has(uid) || this.mem.size < this.cap) {
      this.mem.set(uid, until);
      return true;
    }
    this.spilled = true;
    return false;
  }

  /** Users held in memory (all of them while nothing spilled to the store). */
  keys(): IterableIterator<string> {
    return this.mem.keys();
  }

  isSuppressed(uid: string, nowSec: number): boolean {
    const until = this.mem.get(uid);
    if (until !== undefined) return until > nowSec;
    return this.spilled && isActive(this.db.get(uid) as Suppression | undefined, nowSec);
  }

  /** Whether an id key (a partner id, device id… of a deleted profile) is tombstoned. */
  isSuppressedId(key: string, nowSec: number): boolean {
    return isActive(this.db.get(key) as Suppression | undefined, nowSec);
  }

  /** Removes suppressions past their `until`, in one transaction run by `commit`; returns how many. */
  expire(nowSec: number, commit: (fn: () => void) => void): number {
    const old: string[] = [];
    for (const { key, value } of this.db.getRange({ snapshot: false })) {
      if (!isActive(value as Suppression, nowSec)) old.push(key as string);
    }
    if (old.length) {
      commit(() => old.forEach((k) => this.db.removeSync(k)));
      for (const k of old) this.mem.delete(k);
    }
    return old.length;
  }
}
