// Campaign exposure audiences: each (campaign, event) pair the /px pixel
// reports becomes a segment in a reserved id range, created on first use with
// a taxonomy entry, and the users it saw join it with SEGD_EXPOSURE_TTL. The
// workers' pixel queues are drained here in batches, as cookie-sync matches
// are: the batches that arrive while a commit runs, or before
// COMMIT_EVERY_MS has passed since it began, are applied together in the
// next one (group-commit.ts). The pixel answers without waiting.
import type { Store } from '../store/env.js';
import { nowSeconds } from '../lookup/segments.js';
import { groupCommitted } from './group-commit.js';
import type { Change } from './records.js';
import type { Writer } from './writer.js';

/** Exposure segments take ids from here up (a range feeds are not expected to use). */
export const EXPOSURE_FIRST_ID = 0xf000_0000;
/** Custom (private) segtax the exposure segments are declared under. */
export const EXPOSURE_SEGTAX = 600;
export const EXPOSURE_EVENTS = ['imp', 'click', 'conv'] as const;
export type ExposureEvent = (typeof EXPOSURE_EVENTS)[number];

export interface ExposureItem {
  campaign: string;
  event: ExposureEvent;
  /** segd uid */
  uid: string;
}

/**
 * A browser seen again while its membership still has all but this much of
 * its TTL left is not rewritten (a tenth of the TTL, at most an hour): its
 * expiry then runs from an exposure up to that much earlier. Frequency is the
 * norm on a campaign (the same browser sees it several times a day), and each
 * rewrite costs the writer a B-tree leaf page.
 */
export function exposureRefreshSeconds(ttlSeconds: number): number {
  return Math.min(3600, Math.floor(ttlSeconds / 10));
}

/**
 * Exposure commits begin at least this far apart: a commit then carries a
 * tenth of a second of hits (≈ 2k at 20k/s), not what arrived during the last
 * one. On new browsers each insert rewrites a B-tree leaf and the commit
 * writes and syncs it; a bigger commit shares leaves and branch pages among
 * more inserts. The writer's CPU per new browser at 1M users, 20k hits/s
 * (`npm run bench:insights-pixel -- --store 1M --uids new --workers 1`):
 * 18.8–22.6 µs with commits of 0.4k–1k hits, 17.0–18.9 µs at 100 ms,
 * 14.1–17.4 µs at 250 ms. Through the server on one core, every hit a new
 * browser (`segd loadtest --scenario pixel --zipf 0`), 100 ms stored as much
 * (19.3k–20.2k/s against 18.6k–20.6k) with a hit visible sooner (p99 0.84–0.97 s
 * against 1.07–1.36 s): the writer shares the core, so a longer wait is a
 * longer queue, not a cheaper hit.
 */
export const COMMIT_EVERY_MS = 100;

const NEXT_KEY = 'exposure:next';
const idKey = (campaign: string, event: string) => `exposure:id:${event}:${campaign}`;

export class Exposures {
  /** A batch's changes, applied with the batches queued beside it. */
  private readonly commit: (changes: Change[]) => Promise<{ applied: number }>;

  constructor(
    private readonly store: Store,
    private readonly writer: Writer,
    private readonly ttlSeconds: number,
    /** Adds a segment to the taxonomy (every worker reloaded when it resolves). */
    private readonly createSegment: (id: number, def: object) => Promise<void>,
  ) {
    this.commit = groupCommitted(
      (batches: Change[][]) =>
        writer.applyParts(
          batches.map((changes) => ({ changes })),
          nowSeconds(),
        ),
      COMMIT_EVERY_MS,
    );
  }

  /** The segment id of (campaign, event), created (id and taxonomy entry) on first use. */
  private async segmentOf(
    key: string,
    campaign: string,
    event: ExposureEvent,
    made: Map<string, number>,
  ): Promise<number> {
    const known = this.store.meta.get(key) as number | undefined;
    if (known !== undefined) {
      made.set(key, known);
      return known;
    }
    const id = this.writer.commit(() => {
      const next = (this.store.meta.get(NEXT_KEY) as number | undefined) ?? EXPOSURE_FIRST_ID;
      this.store.meta.putSync(NEXT_KEY, next + 1);
      this.store.meta.putSync(key, next);
      return next;
    });
    made.set(key, id);
    await this.createSegment(id, {
      name: `exposure ${event}: ${campaign}`.slice(0, 200),
      provider: 'segd',
      segtax: EXPOSURE_SEGTAX,
      dataType: 'first',
      partners: [],
    });
    return id;
  }

  /** One batch from a worker, durable when this resolves: users join their exposure segments (suppressed users are skipped by the writer). */
  async apply(items: readonly ExposureItem[]): Promise<{ applied: number }> {
    const made = new Map<string, number>();
    const ids: number[] = [];
    // A batch names few campaigns: each is looked up (or created) once, not once per hit.
    for (const it of items) {
      const key = idKey(it.campaign, it.event);
      ids.push(made.get(key) ?? (await this.segmentOf(key, it.campaign, it.event, made)));
    }
    const now = nowSeconds();
    const refresh = exposureRefreshSeconds(this.ttlSeconds);
    const changes: Change[] = items.map((it, i) => ({
      op: 'add',
      uid: it.uid,
      ids: [ids[i]!],
      ttls: [this.ttlSeconds],
      ts: now,
      refresh,
    }));
    return { applied: (await this.commit(changes)).applied };
  }
}
