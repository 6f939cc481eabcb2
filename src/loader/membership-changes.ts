// Feed changes applied to the store: a batch of changes is one transaction,
// with the source's checkpoint, so a crash leaves the store and the checkpoint
// agreeing. The loop runs once per record of every import: it allocates
// nothing per record beyond the value it writes (loader/member-set.ts).
import { performance } from 'node:perf_hooks';
import type { Store } from '../store/env.js';
import { encodePairs } from '../store/members.js';
import { MemberWatch } from '../store/member-watch.js';
import type { GraphWriter } from '../identity/graph-writer.js';
import type { SuppressedUsers } from '../privacy/suppressions.js';
import type { Change } from './records.js';
import type { Transactions } from './transactions.js';
import type { SegmentCounts } from './segment-counts.js';
import type { ExpiryWatch } from './sweep.js';
import { SetEdit } from './member-set.js';

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

export interface ChangeHooks {
  /** A user key gets its first membership; called inside the transaction, before commit. */
  onNewUser?: (uid: string) => void;
  /** After each committed batch, with the seconds it took. */
  afterBatch?: (seconds: number) => void;
}

/** meta key: ts of the snapshot the active generation came from. */
export const SNAPSHOT_TS_KEY = 'snapshotTs';

export class MembershipChanges {
  /**
   * The ts of the snapshot the active generation was loaded from (meta
   * `snapshotTs`): a change older than it is already reflected in that
   * snapshot (or superseded), so it is stale, whoever it names.
   */
  floorTs: number;

  /** The user being changed, before and after (reused from record to record). */
  private readonly edit = new SetEdit();

  constructor(
    private readonly store: Store,
    private readonly tx: Transactions,
    private readonly counts: SegmentCounts,
    private readonly graph: GraphWriter,
    private readonly suppressed: SuppressedUsers,
    private readonly expiry: ExpiryWatch,
    /** How long a tombstone (a user whose set became empty) is kept. */
    private readonly tombstoneSeconds: number,
    private readonly hooks: ChangeHooks,
  ) {
    this.floorTs = (store.meta.get(SNAPSHOT_TS_KEY) as number | undefined) ?? 0;
  }

  /** Applies `changes` and writes `checkpoint`, atomically. Synchronous: runs on the loader thread. */
  apply(changes: readonly Change[], nowSec: number, checkpoint?: Checkpoint): BatchResult {
    return this.applyParts([{ changes, checkpoint }], nowSec)[0]!;
  }

  /**
   * Applies several batches in one transaction (one commit, one sync to
   * disk), each in order with its own result and checkpoint: a group commit
   * of pushes that arrived together. Atomic as a whole.
   */
  applyParts(
    parts: ReadonlyArray<{ changes: readonly Change[]; checkpoint?: Checkpoint }>,
    nowSec: number,
  ): BatchResult[] {
    const { store, graph, suppressed, counts, tx, hooks, edit } = this;
    const { members, meta } = store;
    const ordinalRoom = MemberWatch.keepsOrdinals(store);
    const results: BatchResult[] = parts.map(() => ({ applied: 0, stale: 0, memberships: 0 }));
    const t0 = performance.now();
    let records = 0;
    for (const p of parts) records += p.changes.length;

    // Merges inside this batch add their count changes to it (MemberEdits).
    counts.begin();
    try {
      tx.commit(() => {
        let nextExpiry = Infinity;
        for (let part = 0; part < parts.length; part++) {
          const { changes, checkpoint } = parts[part]!;
          const result = results[part]!;
          for (let ch of changes) {
            if (ch.op === 'match') {
              if (graph.match(ch.key!, ch.uid, nowSec)) result.applied++;
              else result.stale++;
              continue;
            }
            // Changes for a uid merged into another profile go to that profile.
            if (graph.merges !== 0) {
              const to = graph.profileOf(ch.uid);
              if (to !== ch.uid) ch = { ...ch, uid: to };
            }
            if (suppressed.size !== 0 && suppressed.isSuppressed(ch.uid, nowSec)) {
              result.stale++;
              continue;
            }
            if (ch.ts < this.floorTs) {
              result.stale++;
              continue;
            }
            // Zero-copy read: decoded before the next get reuses the buffer.
            const oldBuf = members.getBinaryFast(ch.uid) as Buffer | undefined;
            edit.load(oldBuf);
            if (edit.had && ch.ts < edit.updatedAt) {
              result.stale++;
              continue;
            }
            // Only changes that will be written (after the suppressed and stale checks), redirected to their profile.
            tx.dirty?.record(ch, oldBuf);
            edit.apply(ch, nowSec);
            // A repeat (an exposure pixel's browser seen again) that would only
            // push expiries out a little is confirmed without a write: a write
            // rewrites a leaf page of the B-tree, ≈ 20 µs at 1M users.
            if (ch.refresh !== undefined && ch.op === 'add' && edit.sameWithin(ch.refresh)) {
              result.applied++;
              continue;
            }
            result.memberships += edit.diff(counts);
            const updatedAt = Math.max(ch.ts, edit.updatedAt);
            if (edit.n === 0) {
              // A tombstone, not a removal: it keeps updatedAt, so an older change
              // arriving late cannot bring the user back. Swept after the retention.
              members.putSync(ch.uid, encodePairs(updatedAt, edit.ids, edit.exps, 0, false));
              const gone = updatedAt + this.tombstoneSeconds;
              if (gone < nextExpiry) nextExpiry = gone;
            } else {
              // New, or back from a tombstone: the known-users filter must know it.
              if (edit.nb === 0) hooks.onNewUser?.(ch.uid);
              const next = edit.nextExpiry();
              if (next < nextExpiry) nextExpiry = next;
              members.putSync(ch.uid, encodePairs(updatedAt, edit.ids, edit.exps, edit.n, ordinalRoom));
            }
            result.applied++;
          }
          if (checkpoint) {
            const v =
              typeof checkpoint.value === 'function'
                ? (checkpoint.value as (r: BatchResult) => unknown)(result)
                : checkpoint.value;
            meta.putSync(checkpoint.key, v);
          }
        }
        this.expiry.lower(nextExpiry);
        counts.write();
        meta.putSync('writes', ((meta.get('writes') as number | undefined) ?? 0) + 1);
        meta.putSync('lastCommitAt', Date.now());
      }, records);
    } finally {
      counts.end();
    }
    // Only what committed reaches the cache (a failed transaction throws above).
    counts.committed();
    hooks.afterBatch?.((performance.now() - t0) / 1000);
    return results;
  }
}
