// The insights index of a running node: opened from its saved file when that
// matches the store (rebuilt from a scan otherwise), saved every
// SEGD_INSIGHTS_SAVE_MS when it changed and at shutdown, and the queries the
// lookup workers send to this (the writer's) thread answered here, between
// the writer's transactions, never on a lookup worker's loop.
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { timeline } from '../metrics/timeline.js';
import { INSIGHTS_SEQ_KEY, InsightsIndex } from './insights-index.js';
import { IndexFileError, loadIndex, saveIndex } from './persist.js';
import { InsightsQueries, type Affinity, type Overlap, type ReachExpression, type SegmentSize } from './queries.js';

export const INSIGHTS_FILE = 'insights.bin';

/** A query as a worker sends it (licences already checked there; `licensed`: the partner's ids, null = all). */
export type InsightsQuery =
  | { kind: 'size'; segment: number }
  | { kind: 'overlap'; segments: number[] }
  | { kind: 'affinity'; segment: number; limit: number; min: number; licensed: number[] | null }
  | { kind: 'reach'; expr: ReachExpression };

export type InsightsAnswer = SegmentSize | Overlap | Affinity | { users: number };

export class Insights {
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<void> = Promise.resolve();
  readonly queries: InsightsQueries;

  private constructor(
    readonly index: InsightsIndex,
    private readonly path: string,
    private readonly log: Logger,
  ) {
    this.queries = new InsightsQueries(() => index.active);
  }

  /** Opens the index of `store` (call before anything writes it); saves every `saveEveryMs` when changed. */
  static async open(store: Store, saveEveryMs: number, log: Logger): Promise<Insights> {
    const path = join(store.path, INSIGHTS_FILE);
    const t0 = performance.now();
    let saved = null;
    try {
      saved = await loadIndex(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        log.warn(
          { err: (err as Error).message, path, bad: err instanceof IndexFileError },
          'insights index file unusable; rebuilding',
        );
    }
    const index = new InsightsIndex(store, saved);
    const gi = index.active;
    log.info(
      {
        ms: Math.round(performance.now() - t0),
        rebuilt: index.rebuilt,
        users: gi.users.size,
        segments: gi.segments.size,
      },
      index.rebuilt ? 'insights index rebuilt from the store' : 'insights index loaded',
    );
    const insights = new Insights(index, path, log);
    if (index.rebuilt) await insights.checkpoint();
    insights.timer = setInterval(() => void insights.checkpoint(), saveEveryMs);
    insights.timer.unref();
    return insights;
  }

  answer(q: InsightsQuery): InsightsAnswer {
    const t0 = performance.now();
    const out = this.run(q);
    timeline.mark('insights-query', t0, { kind: q.kind });
    return out;
  }

  private run(q: InsightsQuery): InsightsAnswer {
    switch (q.kind) {
      case 'size':
        return this.queries.size(q.segment);
      case 'overlap':
        return this.queries.overlap(q.segments);
      case 'affinity': {
        const allowed = q.licensed === null ? null : new Set(q.licensed);
        return this.queries.affinity(q.segment, q.limit, q.min, allowed === null ? null : (id) => allowed.has(id));
      }
      case 'reach':
        return { users: this.queries.reach(q.expr) };
    }
  }

  /** Saves the index if it changed since the last save (one save at a time). */
  checkpoint(): Promise<void> {
    this.saving = this.saving.then(async () => {
      if (!this.index.dirty) return;
      const t0 = performance.now();
      this.index.dirty = false;
      try {
        // The state is serialised synchronously inside saveIndex: one moment between two transactions.
        const bytes = await saveIndex(this.path, this.index.state());
        timeline.mark('insights-save', t0, { bytes });
      } catch (err) {
        this.index.dirty = true;
        this.log.error({ err, path: this.path }, 'saving the insights index failed');
      }
    });
    return this.saving;
  }

  /**
   * A start with the index off: the store's writes from now on are not
   * indexed, so whatever was saved must not be taken as current later.
   */
  static disabled(store: Store): void {
    if (store.meta.get(INSIGHTS_SEQ_KEY) !== undefined) store.meta.removeSync(INSIGHTS_SEQ_KEY);
  }

  /** At shutdown, after the loader stopped: the last save. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.checkpoint();
  }
}
