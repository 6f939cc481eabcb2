// The single writer of memberships. Every source hands it batches of changes;
// each batch is one LMDB transaction that also carries the source's checkpoint,
// so a crash leaves the store and the checkpoint agreeing (DESIGN.md).
import type { Store } from '../store/env.js';
import { decodeMembers, encodeMembers, isValidMembersValue, type Membership } from '../store/members.js';
import type { Change } from './records.js';
import { StoreFullError, stallReason, type StallReason } from '../store/write-failure.js';
import { GraphWriter } from '../identity/graph-writer.js';
import { SuppressedUsers } from '../identity/suppression.js';

export interface Checkpoint {
  key: string;
  /** The value, or a function of the batch's result (evaluated inside the transaction). */
  value: unknown;
}

export interface BatchResult {
  /** Changes that altered (or confirmed) the stored state. */
  applied: number;
  /** Changes older than what the store already holds for that user: skipped. */
  stale: number;
  /** Memberships added + removed across the batch. */
  memberships: number;
}

export interface WriterHooks {
  /** A user key gets its first membership; called inside the transaction, before commit. */
  onNewUser?: (uid: string) => void;
  /** After each committed batch, with the seconds it took. */
  afterBatch?: (seconds: number) => void;
  /** Tombstone retention (default 7 days). */
  tombstoneSeconds?: number;
  /** The store stopped taking writes (full), or took one again (null). Called on each change of state. */
  onStall?: (reason: StallReason | null, err?: unknown) => void;
  /** Most suppressed users held in memory (default MAX_SUPPRESSED_IN_MEMORY); the rest are read from the store. */
  suppressedInMemory?: number;
  /** Most ids one profile links (identity/graph-writer.ts; default 200). */
  maxIdsPerProfile?: number;
}

export const DEFAULT_TOMBSTONE_SECONDS = 7 * 86_400;
/** meta key: ts of the snapshot the active generation came from. */
export const SNAPSHOT_TS_KEY = 'snapshotTs';
const MAX_CACHED_COUNTS = 200_000;

export class Writer {
  /**
   * Earliest expiry (unix s) of any stored membership, as far as this writer
   * knows: 0 = unknown (a sweep must look), Infinity = nothing expires. The
   * sweeper sets it after each pass; every write with a TTL lowers it.
   */
  nextExpiry = 0;

  /** Segment counts as stored: the writer is their only writer, so a cache saves a get per segment per batch. */
  private readonly countCache = new Map<number, number>();

  /** How long a tombstone (a user whose set became empty) is kept: the window in which late, older changes are recognised. */
  readonly tombstoneSeconds: number;

  /**
   * The ts of the snapshot the active generation was loaded from (meta
   * `snapshotTs`): a change older than it is already reflected in that
   * snapshot (or superseded), so it is stale, whoever it names.
   */
  floorTs: number;

  /** While a snapshot loads: every change committed meanwhile, replayed onto the new generation at the flip. */
  dirty: ChangeLog | null = null;

  /**
   * Users whose data must not come back (opt-out, deletion): uid → until
   * (unix s; Infinity = for good). Kept by the ID graph writer, persisted in
   * the `optout` db; every change for such a user is skipped (counted stale).
   * Bounded in memory (identity/suppression.ts).
   */
  readonly suppressed: SuppressedUsers;

  /** The ID graph's writes (match changes, merges, opt-out, deletion) share this writer's transactions. */
  readonly graph: GraphWriter;

  constructor(private readonly store: Store, private readonly hooks: WriterHooks = {}) {
    this.tombstoneSeconds = hooks.tombstoneSeconds ?? DEFAULT_TOMBSTONE_SECONDS;
    this.floorTs = (store.meta.get(SNAPSHOT_TS_KEY) as number | undefined) ?? 0;
    this.suppressed = new SuppressedUsers(store.optout, hooks.suppressedInMemory);
    this.graph = new GraphWriter(store, this, hooks.maxIdsPerProfile);
    this.graph.loadSuppressed(Math.floor(Date.now() / 1000));
  }

  isSuppressed(uid: string, nowSec: number): boolean {
    return this.suppressed.isSuppressed(uid, nowSec);
  }

  /** Set while the store cannot take writes (full); cleared by the next commit. */
  stalled: StallReason | null = null;

  /**
   * Runs one transaction. A store that is full throws StoreFullError (the
   * transaction, checkpoint included, is not applied) and marks the writer
   * stalled until a later commit succeeds.
   */
  commit<T>(fn: () => T): T {
    let out: T;
    const log = this.dirty;
    log?.begin();
    try {
      out = this.store.env.transactionSync(fn);
    } catch (err) {
      log?.abort(); // nothing of it committed: nothing of it to replay
      const reason = stallReason(err, this.store.path);
      if (reason === null) throw err;
      if (this.stalled !== reason) {
        this.stalled = reason;
        this.hooks.onStall?.(reason, err);
      }
      throw new StoreFullError(reason, err);
    }
    if (this.stalled !== null) {
      this.stalled = null;
      this.hooks.onStall?.(null);
    }
    return out;
  }

  /** A user key lookups must find (a snapshot's new user, a merged uid): tells the known-users filter. */
  markKnown(uid: string): void {
    this.hooks.onNewUser?.(uid);
  }

  /** After a snapshot became the active generation (committed): what this writer cached is of the old one. */
  swapped(floorTs: number, seconds: number): void {
    this.floorTs = floorTs;
    this.countCache.clear();
    this.nextExpiry = 0;
    this.hooks.afterBatch?.(seconds);
  }

  /** Inside a transaction: removes `uid`'s memberships whatever their ts (deletion). True if it had any. */
  removeMembers(uid: string): boolean {
    const buf = this.store.members.getBinaryFast(uid) as Buffer | undefined;
    if (buf === undefined) return false;
    const had = isValidMembersValue(buf) ? decodeMembers(buf).members : [];
    // Not a Change: a loading snapshot copies this user's (now absent) value at its flip.
    this.dirty?.touch(uid);
    this.store.members.removeSync(uid);
    this.writeCountsNow(had.map((m) => [m.id, -1]));
    return had.length > 0;
  }

  /** Inside a transaction: `from`'s memberships join `into`'s (union; the later expiry wins, 0 = never); `from`'s are removed. */
  mergeMembers(from: string, into: string): void {
    const { members } = this.store;
    const read = (u: string) => {
      const b = members.getBinaryFast(u) as Buffer | undefined;
      return b !== undefined && isValidMembersValue(b) ? decodeMembers(b) : undefined;
    };
    const a = read(from);
    if (!a) return;
    const b = read(into);
    const exp = new Map<number, number>();
    for (const m of b?.members ?? []) exp.set(m.id, m.expiresAt);
    for (const m of a.members) {
      const e = exp.get(m.id);
      exp.set(m.id, e === undefined ? m.expiresAt : e === 0 || m.expiresAt === 0 ? 0 : Math.max(e, m.expiresAt));
    }
    const merged = [...exp].map(([id, expiresAt]) => ({ id, expiresAt })).sort((x, y) => x.id - y.id);
    const delta: Array<[number, number]> = [];
    for (const m of a.members) delta.push([m.id, -1]);
    for (const m of b?.members ?? []) delta.push([m.id, -1]);
    for (const m of merged) delta.push([m.id, +1]);
    // Not a Change: a loading snapshot copies both users' values at its flip.
    this.dirty?.touch(from);
    this.dirty?.touch(into);
    members.removeSync(from);
    if (merged.length > 0 && (!b || b.members.length === 0)) this.hooks.onNewUser?.(into);
    members.putSync(into, encodeMembers(Math.max(a.updatedAt, b?.updatedAt ?? 0), merged));
    this.writeCountsNow(delta);
  }

  /** The count deltas of the batch being applied (null outside `apply`). */
  private batchDelta: Map<number, number> | null = null;

  /**
   * Count changes of merges and privacy actions: inside a batch they join the
   * batch's deltas (written once at its end); outside, they are written
   * through and the cache dropped.
   */
  private writeCountsNow(delta: Array<[number, number]>): void {
    if (delta.length === 0) return;
    const pending = this.batchDelta;
    if (pending !== null) {
      for (const [id, d] of delta) pending.set(id, (pending.get(id) ?? 0) + d);
      return;
    }
    const sum = new Map<number, number>();
    for (const [id, d] of delta) sum.set(id, (sum.get(id) ?? 0) + d);
    this.countCache.clear();
    this.putCounts(sum, new Map());
  }

  /** After a commit: remember what was written. Bounded: feeds choose segment ids, and this is only a cache. */
  private cacheCounts(committed: Map<number, number>): void {
    if (this.countCache.size + committed.size > MAX_CACHED_COUNTS) this.countCache.clear();
    for (const [id, c] of committed) this.countCache.set(id, c);
  }

  /** Inside a transaction: applies count deltas; `committed` collects the new values for the cache. */
  private putCounts(delta: Map<number, number>, committed: Map<number, number>): void {
    const { counts } = this.store;
    for (const [id, d] of delta) {
      if (d === 0) continue;
      const c = (this.countCache.get(id) ?? ((counts.get(id) as number | undefined) ?? 0)) + d;
      committed.set(id, c);
      if (c > 0) counts.putSync(id, c);
      else counts.removeSync(id);
    }
  }

  /**
   * Removes expired memberships of `uids` (found by the sweeper's scan) in one
   * small transaction. Each value is re-read here, so a change committed since
   * the scan is respected; updatedAt is kept (expiry is not a newer change).
   */
  sweep(uids: readonly string[], nowSec: number): SweepResult {
    const { members, meta } = this.store;
    const out: SweepResult = { users: 0, removed: 0 };
    const newCounts = new Map<number, number>();
    this.commit(() => {
      const delta = new Map<number, number>();
      for (const uid of uids) {
        const buf = members.getBinaryFast(uid) as Buffer | undefined;
        if (buf === undefined || !isValidMembersValue(buf)) continue;
        const { updatedAt, members: ms } = decodeMembers(buf);
        if (ms.length === 0) {
          if (updatedAt + this.tombstoneSeconds <= nowSec) {
            members.removeSync(uid);
            out.users++;
          }
          continue;
        }
        const live = ms.filter((m) => m.expiresAt === 0 || m.expiresAt > nowSec);
        if (live.length === ms.length) continue;
        for (const m of ms) if (!(m.expiresAt === 0 || m.expiresAt > nowSec)) delta.set(m.id, (delta.get(m.id) ?? 0) - 1);
        out.removed += ms.length - live.length;
        out.users++;
        // Expiry is not a change: a user it empties is removed, not tombstoned.
        if (live.length === 0) members.removeSync(uid);
        else members.putSync(uid, encodeMembers(updatedAt, live));
      }
      this.putCounts(delta, newCounts);
      if (out.users > 0) meta.putSync('writes', ((meta.get('writes') as number | undefined) ?? 0) + 1);
    });
    this.cacheCounts(newCounts);
    return out;
  }

  /** Applies `changes` and writes `checkpoint`, atomically. Synchronous: runs on the loader thread. */
  apply(changes: readonly Change[], nowSec: number, checkpoint?: Checkpoint): BatchResult {
    const { members, meta } = this.store;
    const result: BatchResult = { applied: 0, stale: 0, memberships: 0 };
    const countDelta = new Map<number, number>();
    const bump = (id: number, d: number) => countDelta.set(id, (countDelta.get(id) ?? 0) + d);
    const newCounts = new Map<number, number>();
    const t0 = performance.now();

    // Merges inside this batch add their count changes here (writeCountsNow).
    this.batchDelta = countDelta;
    try {
      this.commit(() => {
        for (let ch of changes) {
          if (ch.op === 'match') {
            if (this.graph.match(ch.key!, ch.uid, nowSec)) result.applied++;
            else result.stale++;
            continue;
          }
          // Changes for a uid merged into another profile go to that profile.
          if (this.graph.merged.size !== 0) {
            const to = this.graph.profileOf(ch.uid);
            if (to !== ch.uid) ch = { ...ch, uid: to };
          }
          if (this.suppressed.size !== 0 && this.isSuppressed(ch.uid, nowSec)) {
            result.stale++;
            continue;
          }
          if (ch.ts < this.floorTs) {
            result.stale++;
            continue;
          }
          // Zero-copy read: decoded before the next get reuses the buffer.
          const oldBuf = members.getBinaryFast(ch.uid) as Buffer | undefined;
          let old: { updatedAt: number; members: Membership[] } | undefined;
          if (oldBuf !== undefined && isValidMembersValue(oldBuf)) old = decodeMembers(oldBuf);
          if (old && ch.ts < old.updatedAt) {
            result.stale++;
            continue;
          }
          // Only changes that will be written (after the suppressed and stale checks), redirected to their profile.
          this.dirty?.record(ch, oldBuf);
          const next = nextMembers(old?.members, ch, nowSec);
          // Count diff: every stored pair counts, expired-but-unswept included.
          if (old) for (const m of old.members) bump(m.id, -1);
          for (const m of next) bump(m.id, +1);
          result.memberships += changedCount(old?.members, next);
          const updatedAt = Math.max(ch.ts, old?.updatedAt ?? 0);
          if (next.length === 0) {
            // A tombstone, not a removal: it keeps updatedAt, so an older change
            // arriving late cannot bring the user back. Swept after the retention.
            members.putSync(ch.uid, encodeMembers(updatedAt, next));
            const gone = updatedAt + this.tombstoneSeconds;
            if (gone < this.nextExpiry) this.nextExpiry = gone;
          } else {
            // New, or back from a tombstone: the known-users filter must know it.
            if (!old || old.members.length === 0) this.hooks.onNewUser?.(ch.uid);
            for (const m of next) if (m.expiresAt !== 0 && m.expiresAt < this.nextExpiry) this.nextExpiry = m.expiresAt;
            members.putSync(ch.uid, encodeMembers(updatedAt, next));
          }
          result.applied++;
        }
        this.putCounts(countDelta, newCounts);
        if (checkpoint) {
          const v = typeof checkpoint.value === 'function' ? (checkpoint.value as (r: BatchResult) => unknown)(result) : checkpoint.value;
          meta.putSync(checkpoint.key, v);
        }
        meta.putSync('writes', ((meta.get('writes') as number | undefined) ?? 0) + 1);
        meta.putSync('lastCommitAt', Date.now());
      });
    } finally {
      this.batchDelta = null;
    }
    // Only what committed reaches the cache (a failed transaction throws above).
    this.cacheCounts(newCounts);
    this.hooks.afterBatch?.((performance.now() - t0) / 1000);
    return result;
  }
}

/** Where a loading snapshot collects the changes committed meanwhile. */
export interface ChangeLog {
  /** A transaction starts: what it records is kept only if it commits. */
  begin(): void;
  /** `before`: the stored value the change applies to (valid only during the call). */
  record(ch: Change, before: Buffer | undefined): void;
  /**
   * A user's members written other than by a Change (any writer of `members`
   * outside apply/sweep, e.g. ID-graph merges or privacy deletions, must call
   * this while a snapshot loads): its stored value is carried into the new generation.
   */
  touch(uid: string): void;
  /** The transaction since begin() did not commit. */
  abort(): void;
}

export interface SweepResult {
  users: number;
  removed: number;
}

/** The user's membership set after `ch`, sorted by id, expired pairs dropped. */
export function nextMembers(old: readonly Membership[] | undefined, ch: Change, nowSec: number): Membership[] {
  if (ch.op === 'delete') return [];
  if (old === undefined && ch.op !== 'remove') return freshMembers(ch, nowSec);
  const map = new Map<number, number>();
  if (old && ch.op !== 'replace') {
    for (const m of old) if (m.expiresAt === 0 || m.expiresAt > nowSec) map.set(m.id, m.expiresAt);
  }
  if (ch.op === 'remove') {
    for (const id of ch.ids) map.delete(id);
  } else {
    for (let i = 0; i < ch.ids.length; i++) {
      const ttl = ch.ttls[i] ?? 0;
      const exp = ttl === 0 ? 0 : ch.ts + ttl;
      // A TTL already past when applied (old ts + short ttl) adds nothing.
      if (exp !== 0 && exp <= nowSec) map.delete(ch.ids[i]!);
      else map.set(ch.ids[i]!, exp);
    }
  }
  const out: Membership[] = [];
  for (const [id, expiresAt] of map) out.push({ id, expiresAt });
  out.sort((a, b) => a.id - b.id);
  return out;
}

/** A new user's set: the common case of a snapshot import, without a Map. */
function freshMembers(ch: Change, nowSec: number): Membership[] {
  const out: Membership[] = [];
  for (let i = 0; i < ch.ids.length; i++) {
    const ttl = ch.ttls[i] ?? 0;
    const exp = ttl === 0 ? 0 : ch.ts + ttl;
    out.push({ id: ch.ids[i]!, expiresAt: exp });
  }
  out.sort((a, b) => a.id - b.id); // stable: duplicates keep record order
  // Duplicates in one record: the last one wins, then expired ones go, as in the Map path.
  let w = 0;
  for (let r = 0; r < out.length; r++) {
    if (w > 0 && out[w - 1]!.id === out[r]!.id) out[w - 1] = out[r]!;
    else out[w++] = out[r]!;
  }
  out.length = w;
  return out.filter((m) => m.expiresAt === 0 || m.expiresAt > nowSec);
}

function changedCount(old: readonly Membership[] | undefined, next: readonly Membership[]): number {
  if (!old) return next.length;
  const before = new Set(old.map((m) => m.id));
  let n = 0;
  for (const m of next) if (!before.delete(m.id)) n++;
  return n + before.size;
}
