// The single writer of the store, composed of its rooms: transactions and the
// store-full state (transactions.ts), feed changes (membership-changes.ts),
// merges and deletions of memberships (member-edits.ts), segment counts
// (segment-counts.ts), the TTL sweep's writes (sweep.ts), the ID graph's
// writes (identity/graph-writer.ts) and the suppressed users
// (privacy/suppressions.ts). Every source hands it batches of changes; each
// batch is one LMDB transaction that also carries the source's checkpoint, so
// a crash leaves the store and the checkpoint agreeing (docs/design.md).
import type { Store } from '../store/env.js';
import type { StallReason } from '../store/write-failure.js';
import { GraphWriter } from '../identity/graph-writer.js';
import { SuppressedUsers } from '../privacy/suppressions.js';
import type { ForgetWrites } from '../privacy/forget.js';
import type { Change } from './records.js';
import { Transactions, type ChangeLog } from './transactions.js';
import { SegmentCounts } from './segment-counts.js';
import { MemberEdits } from './member-edits.js';
import { MembershipChanges, type BatchResult, type ChangeHooks, type Checkpoint } from './membership-changes.js';
import { ExpiryWatch, removeExpired, type SweepResult, type SweepWrites } from './sweep.js';

export interface WriterHooks extends ChangeHooks {
  /** Tombstone retention (default 7 days). */
  tombstoneSeconds?: number;
  /** The store stopped taking writes (full), or took one again (null). Called on each change of state. */
  onStall?: (reason: StallReason | null, err?: unknown) => void;
  /** Most suppressed users held in memory (default MAX_SUPPRESSED_IN_MEMORY); the rest are read from the store. */
  suppressedInMemory?: number;
  /** Most ids one profile links (identity/graph-writer.ts; default 200). */
  maxIdsPerProfile?: number;
}

const DEFAULT_TOMBSTONE_SECONDS = 7 * 86_400;

export class Writer implements ForgetWrites, SweepWrites {
  /** How long a tombstone (a user whose set became empty) is kept: the window in which late, older changes are recognised. */
  readonly tombstoneSeconds: number;

  /** When the next TTL sweep can find anything to remove. */
  readonly expiry = new ExpiryWatch();

  /**
   * Users whose data must not come back (opt-out, deletion), persisted in the
   * `optout` db; every change for such a user is skipped (counted stale).
   */
  readonly suppressed: SuppressedUsers;

  /** The ID graph's writes (match changes, merges) share this writer's transactions. */
  readonly graph: GraphWriter;

  private readonly tx: Transactions;
  private readonly counts: SegmentCounts;
  private readonly edits: MemberEdits;
  private readonly changes: MembershipChanges;

  constructor(
    private readonly store: Store,
    private readonly hooks: WriterHooks = {},
  ) {
    this.tombstoneSeconds = hooks.tombstoneSeconds ?? DEFAULT_TOMBSTONE_SECONDS;
    this.tx = new Transactions(store, hooks.onStall);
    this.counts = new SegmentCounts(store.counts);
    this.edits = new MemberEdits(store, this.tx, this.counts, hooks.onNewUser);
    this.suppressed = new SuppressedUsers(store.optout, hooks.suppressedInMemory);
    this.suppressed.load(Math.floor(Date.now() / 1000));
    this.graph = new GraphWriter(store, this.edits, this.suppressed, hooks.maxIdsPerProfile);
    this.changes = new MembershipChanges(
      store,
      this.tx,
      this.counts,
      this.graph,
      this.suppressed,
      this.expiry,
      this.tombstoneSeconds,
      hooks,
    );
  }

  /** Set while the store cannot take writes (full); cleared by the next commit. */
  get stalled(): StallReason | null {
    return this.tx.stalled;
  }

  /** While a snapshot loads: every change committed meanwhile, replayed onto the new generation at the flip. */
  get dirty(): ChangeLog | null {
    return this.tx.dirty;
  }

  set dirty(log: ChangeLog | null) {
    this.tx.dirty = log;
  }

  /** The ts of the snapshot the active generation was loaded from: changes older than it are stale. */
  get floorTs(): number {
    return this.changes.floorTs;
  }

  isSuppressed(uid: string, nowSec: number): boolean {
    return this.suppressed.isSuppressed(uid, nowSec);
  }

  /**
   * Runs one transaction. A store that is full throws StoreFullError (the
   * transaction, checkpoint included, is not applied) and marks the writer
   * stalled until a later commit succeeds.
   */
  commit<T>(fn: () => T): T {
    return this.tx.commit(fn);
  }

  /** Applies `changes` and writes `checkpoint`, atomically. Synchronous: runs on the loader thread. */
  apply(changes: readonly Change[], nowSec: number, checkpoint?: Checkpoint): BatchResult {
    return this.changes.apply(changes, nowSec, checkpoint);
  }

  /** Several batches in one transaction, each with its own result and checkpoint (a group commit). */
  applyParts(
    parts: ReadonlyArray<{ changes: readonly Change[]; checkpoint?: Checkpoint }>,
    nowSec: number,
  ): BatchResult[] {
    return this.changes.applyParts(parts, nowSec);
  }

  /** A user key lookups must find (a snapshot's new user, a merged uid): tells the known-users filter. */
  markKnown(uid: string): void {
    this.edits.markKnown(uid);
  }

  /** Inside a transaction: removes `uid`'s memberships whatever their ts (deletion). True if it had any. */
  removeMembers(uid: string): boolean {
    return this.edits.remove(uid);
  }

  /** Removes the expired memberships of `uids` (found by the sweeper's scan) in one small transaction. */
  sweep(uids: readonly string[], nowSec: number): SweepResult {
    return removeExpired(this.store, this.tx, this.counts, this.tombstoneSeconds, uids, nowSec);
  }

  /** After a snapshot became the active generation (committed): what this writer cached is of the old one. */
  swapped(floorTs: number, seconds: number): void {
    this.changes.floorTs = floorTs;
    this.counts.clear();
    this.expiry.next = 0;
    this.hooks.afterBatch?.(seconds);
  }
}
