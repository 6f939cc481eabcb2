// Cookie-sync matches (partner id → segd uid), the workers' match queues
// drained into the writer: one transaction per batch, by the ID graph's
// linking rules (identity/graph-writer.ts).
import type { MatchItem } from '../identity/match-queue.js';
import { nowSeconds } from '../lookup/segments.js';
import type { Change } from './records.js';
import type { Writer } from './writer.js';

interface MatchOutcome {
  applied: number;
  stale: number;
  rejected: number;
}

export class SyncMatches {
  constructor(
    private readonly writer: Writer,
    private readonly onBatch?: (outcome: MatchOutcome) => void,
  ) {}

  /** One batch of matches; refused ones name a suppressed user, a tombstoned id or a full profile. */
  apply(items: readonly MatchItem[]): { applied: number; refused: number } {
    const now = nowSeconds();
    const changes: Change[] = items.map((m) => ({ op: 'match', uid: m.uid, ids: [], ttls: [], ts: now, key: m.key }));
    const r = this.writer.apply(changes, now);
    this.onBatch?.({ applied: r.applied, stale: r.stale, rejected: 0 });
    return { applied: r.applied, refused: r.stale };
  }
}
