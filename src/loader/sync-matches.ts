// Cookie-sync matches (partner id → segd uid), the workers' match queues
// drained into the writer by the ID graph's linking rules
// (identity/graph-writer.ts). The batches that arrive while a commit runs are
// applied together in the next one (group-commit.ts), each answered on its own.
import type { MatchItem } from '../identity/match-queue.js';
import { nowSeconds } from '../lookup/segments.js';
import { groupCommitted } from './group-commit.js';
import type { Change } from './records.js';
import type { Writer } from './writer.js';

interface MatchOutcome {
  applied: number;
  stale: number;
  rejected: number;
}

export class SyncMatches {
  private readonly commit: (items: readonly MatchItem[]) => Promise<{ applied: number; refused: number }>;

  constructor(writer: Writer, onBatch?: (outcome: MatchOutcome) => void) {
    this.commit = groupCommitted((batches: ReadonlyArray<readonly MatchItem[]>) => {
      const now = nowSeconds();
      const parts = batches.map((items) => ({
        changes: items.map((m): Change => ({ op: 'match', uid: m.uid, ids: [], ttls: [], ts: now, key: m.key })),
      }));
      return writer.applyParts(parts, now).map((r) => {
        onBatch?.({ applied: r.applied, stale: r.stale, rejected: 0 });
        return { applied: r.applied, refused: r.stale };
      });
    });
  }

  /** One batch of matches, durable when this resolves; refused ones name a suppressed user, a tombstoned id or a full profile. */
  apply(items: readonly MatchItem[]): Promise<{ applied: number; refused: number }> {
    return this.commit(items);
  }
}
