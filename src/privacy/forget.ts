// Opt-out and deletion: a profile's memberships and every id it links
// removed, the uid, its merged uids and every id tombstoned, and the action
// audited — in one transaction, so a full disk leaves nothing half done.
//
//   opt-out    tombstone for good (until = 0)
//   deletion   tombstone for SEGD_DELETION_TOMBSTONE_DAYS
//
// A key or uid with nothing stored is tombstoned all the same (its data may
// still be on its way from upstream).
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { StoreFullError, type StallReason } from '../store/write-failure.js';
import { stronger, type Suppression, type SuppressedUsers, type SuppressionReason } from './suppressions.js';
import { appendAudit, digest } from './audit.js';

export interface ForgetTarget {
  /** A segd uid (resolved through merges), or */
  uid?: string;
  /** an id key (identity/keys.ts). */
  key?: string;
}

export interface ForgetRequest {
  target: ForgetTarget;
  reason: SuppressionReason;
  /** Who asked (an admin key digest, or "cookie"): for the audit log. */
  by: string;
}

export interface ForgetResult {
  found: boolean;
  /** The profile removed (null when nothing was stored for the key). */
  uid: string | null;
  /** Linked ids removed. */
  ids: number;
  memberships: boolean;
  /** When the tombstone lapses (unix s; 0 = never). */
  until: number;
  auditSeq: number;
}

/** A privacy action's answer: done, or nothing stored because the store is full (retry later). */
export type ForgetAnswer = ForgetResult | { full: StallReason };

/** What a profile leaves behind in the ID graph when it is forgotten. */
export interface Profile {
  /** The profile `target` named (through merges); null when its key named none. */
  uid: string | null;
  /** The id keys it links. */
  linked: string[];
  /** Its segd uid and the uids merged into it (empty when uid is null). */
  users: string[];
}

export interface Unlinked {
  /** The profile `target` named (through merges); null when its key named none. */
  uid: string | null;
  /** How many ids the profile linked. */
  linked: number;
  /** Ids that no longer resolve (the linked ones and the target's key), merged uids apart. */
  ids: string[];
  /** Segd uids that were merged into the profile: forgotten with it. */
  merged: string[];
}

/** What forgetting needs of the ID graph (identity/graph-writer.ts). */
export interface ProfileGraph {
  /** The profile `target` names, read before anything is unlinked. */
  profile(target: ForgetTarget): Profile;
  /** Inside a transaction: that profile leaves the graph (its ids, links and sync times). */
  unlink(target: ForgetTarget, p: Profile): Unlinked;
  /** After the transaction that unlinked `u` committed. */
  unlinked(u: Unlinked): void;
  /** An id key's kind and source, for the audit log. */
  describe(key: string): string;
}

/** What forgetting needs of the one writer (loader/writer.ts). */
export interface ForgetWrites {
  /** Runs `fn` in one transaction; throws StoreFullError when the store cannot take it. */
  commit<T>(fn: () => T): T;
  /** Inside a transaction: removes `uid`'s memberships whatever their ts. True if it had any. */
  removeMembers(uid: string): boolean;
}

export interface ForgetOptions {
  /** How long a deletion's tombstone lasts. */
  deletionTombstoneDays: number;
  log: Logger;
  /** After each action carried out. */
  onAction?: (action: 'optout' | 'delete') => void;
}

export class Forget {
  constructor(
    private readonly store: Store,
    private readonly writes: ForgetWrites,
    private readonly graph: ProfileGraph,
    private readonly suppressed: SuppressedUsers,
    private readonly opts: ForgetOptions,
  ) {}

  /** Opt-out (tombstone for good) or deletion (tombstone for SEGD_DELETION_TOMBSTONE_DAYS), audited. */
  run(req: ForgetRequest): ForgetAnswer {
    const nowSec = Math.floor(Date.now() / 1000);
    const until = req.reason === 'optout' ? 0 : nowSec + this.opts.deletionTombstoneDays * 86_400;
    let r: ForgetResult;
    try {
      r = this.forget(req.target, req.reason, nowSec, until, req.by);
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err;
      return { full: err.reason };
    }
    this.opts.onAction?.(req.reason === 'optout' ? 'optout' : 'delete');
    this.opts.log.info(
      { action: req.reason, found: r.found, ids: r.ids, memberships: r.memberships, audit: r.auditSeq },
      'privacy action applied',
    );
    return r;
  }

  /**
   * In one transaction: removes the profile's memberships and every linked
   * id, tombstones the uid, its merged uids and every id until `until`
   * (0 = for good), and appends an audit entry.
   */
  forget(target: ForgetTarget, reason: SuppressionReason, nowSec: number, until: number, by: string): ForgetResult {
    const { optout } = this.store;
    let result!: ForgetResult;
    let unlinked!: Unlinked;
    // Applied to the in-memory set only once the transaction committed (it may fail: a full disk).
    const suppressed = new Map<string, number>();
    const kept = new Map<string, number>();
    // Never shortens a tombstone already there (an opt-out's "never" stays "never").
    const tombstone = (k: string, tomb: Suppression): number => {
      const had = optout.get(k) as Suppression | undefined;
      const keep = stronger(had, tomb, nowSec);
      if (keep !== had) optout.putSync(k, keep);
      return keep.until;
    };
    this.writes.commit(() => {
      // Memberships go before the links: the removal each destination is owed
      // is queued while the user's ids there (a partner uid, an ifa) can still
      // be read (outbound/outbox.ts).
      const p = this.graph.profile(target);
      let memberships = false;
      for (const uid of p.users) memberships = this.writes.removeMembers(uid) || memberships;
      const u = (unlinked = this.graph.unlink(target, p));
      const tomb: Suppression = { at: nowSec, until, reason };
      for (const k of u.ids) kept.set(k, tombstone(k, tomb));
      const users = u.uid !== null ? [u.uid, ...u.merged] : u.merged;
      for (const uid of users) suppressed.set(uid, tombstone(uid, tomb));
      // What the answer and the audit report: the profile's tombstone as it now stands.
      const lasts = users.length ? suppressed.get(users[0]!)! : (kept.get(target.key!) ?? until);
      const requested = target.key ?? target.uid!;
      const found = target.key !== undefined ? u.uid !== null : u.linked > 0 || memberships;
      const seq = appendAudit(this.store, {
        at: Date.now(),
        action: reason === 'optout' ? 'optout' : 'delete',
        requested: {
          kind: target.key !== undefined ? this.graph.describe(target.key) : 'uid',
          digest: digest(requested),
        },
        found,
        uidDigest: u.uid !== null ? digest(u.uid) : null,
        ids: u.linked,
        memberships,
        until: lasts,
        by,
      });
      result = { found, uid: found ? u.uid : null, ids: u.linked, memberships, until: lasts, auditSeq: seq };
    });
    this.graph.unlinked(unlinked);
    for (const [u, t] of suppressed) this.suppressed.set(u, t === 0 ? Infinity : t);
    return result;
  }
}
