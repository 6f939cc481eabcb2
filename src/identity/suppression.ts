// Suppressions: users and ids whose data must not come back. Stored in the
// `optout` db keyed by segd uid (a user) or id key (keys.ts: a partner id,
// device id… of a deleted profile), so neither a later membership feed nor a
// later match can recreate them.
//
//   opt-out    for good (until = 0): the user asked not to be tracked
//   deletion   until now + SEGD_DELETION_TOMBSTONE_DAYS: long enough for any
//              upstream snapshot or delta taken before the deletion to have
//              been replayed (the members db's own 7-day tombstones are far
//              too short for monthly snapshots)
export type SuppressionReason = 'optout' | 'deletion';

export interface Suppression {
  /** Unix seconds it was recorded. */
  at: number;
  /** Unix seconds it lapses; 0 = never. */
  until: number;
  reason: SuppressionReason;
}

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

/** One entry of the audit log (`audit` db, append-only, keyed by sequence). Ids are kept only as digests. */
export interface AuditEntry {
  seq: number;
  /** Unix milliseconds. */
  at: number;
  action: 'optout' | 'delete';
  /** What the request named: the key's kind and source, and a SHA-256 prefix of the full key. */
  requested: { kind: string; digest: string };
  /** Whether the key resolved to a stored profile. */
  found: boolean;
  /** SHA-256 prefix of the profile's segd uid (when found). */
  uidDigest: string | null;
  /** Linked ids removed (partner ids, device ids, merged uids). */
  ids: number;
  /** Whether memberships were removed. */
  memberships: boolean;
  /** When the tombstone lapses (unix s; 0 = never). */
  until: number;
  /** Who asked: an admin key digest, or "cookie" for a browser opt-out. */
  by: string;
}

/** Suppressed users held in memory at most; past it, the rest are read from the store. */
export const MAX_SUPPRESSED_IN_MEMORY = 200_000;

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

  constructor(private readonly db: { get(key: string): unknown }, private readonly cap = MAX_SUPPRESSED_IN_MEMORY) {}

  /** Nonzero when any user may be suppressed (callers skip the check at 0). */
  get size(): number {
    return this.mem.size === 0 && this.spilled ? 1 : this.mem.size;
  }

  /** True while every suppression is held in memory. */
  get complete(): boolean {
    return !this.spilled;
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

  delete(uid: string): void {
    this.mem.delete(uid);
  }

  /** Users held in memory (all of them while `complete`). */
  keys(): IterableIterator<string> {
    return this.mem.keys();
  }

  isSuppressed(uid: string, nowSec: number): boolean {
    const until = this.mem.get(uid);
    if (until !== undefined) return until > nowSec;
    return this.spilled && isActive(this.db.get(uid) as Suppression | undefined, nowSec);
  }
}
