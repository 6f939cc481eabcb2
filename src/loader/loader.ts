// The embedded loader: the one writer of memberships, fed by its sources.
// Today: a seed file imported once into an empty store, then the inbox
// directory, scanned at start and every `inboxPollMs`. More sources (HTTP
// push, NATS JetStream) plug in as further callers of the same Writer.
import type { Config } from '../config/schema.js';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import type { ProcessMetrics, Source } from '../metrics/process.js';
import { recordLimits, taxonomyIds } from './records.js';
import { Writer, type WriterHooks } from './writer.js';
import { Inbox } from './inbox.js';
import { importFile, type ImportSummary, type FileCheckpoint } from './file-import.js';
import { existsSync } from 'node:fs';
import { applyPush, expireIdempotencyKeys, type PushRequest, type PushAnswer } from './push.js';
import { Sweeper } from './sweep.js';
import { JetStreamSource } from './jetstream.js';
import { nowSeconds } from '../lookup/segments.js';
import { userCount } from '../store/env.js';
import { SnapshotLoader } from './snapshot.js';
import { StoreFullError, type StallReason } from '../store/write-failure.js';
import type { MatchItem } from '../identity/match-queue.js';
import type { ForgetTarget, ForgetResult } from '../identity/graph-writer.js';
import type { Change, RecordLimits } from './records.js';
import type { Track } from '../waiting.js';

export interface ForgetRequest {
  target: ForgetTarget;
  reason: 'optout' | 'deletion';
  /** Who asked (an admin key digest, or "cookie"): for the audit log. */
  by: string;
}

/** A privacy action's answer: done, or nothing stored because the store is full (retry later). */
export type ForgetAnswer = ForgetResult | { full: StallReason };

export const SEED_CHECKPOINT = 'ckpt:seed';

export class Loader {
  readonly writer: Writer;
  private readonly inbox: Inbox;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private running: Promise<unknown> = Promise.resolve();
  private readonly abort = new AbortController();
  private readonly sweeper: Sweeper;
  /** The JetStream feed, when SEGD_NATS_URL is set. */
  readonly nats: JetStreamSource | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Segment ids of the taxonomy, for SEGD_UNKNOWN_SEGMENTS=reject (refreshed when it changes). */
  private readonly knownSegments = new Set<number>();
  /** What every source checks records against (records.ts). */
  private readonly limits: RecordLimits;
  private sweeping: Promise<unknown> = Promise.resolve();
  readonly snapshots: SnapshotLoader;

  constructor(
    private readonly store: Store,
    private readonly config: Readonly<Config>,
    private readonly log: Logger,
    private readonly metrics?: ProcessMetrics,
    hooks: WriterHooks = {},
  ) {
    this.writer = new Writer(store, { maxIdsPerProfile: config.maxIdsPerProfile, ...hooks });
    this.limits = recordLimits(config.maxUidBytes, config.unknownSegments, this.knownSegments);
    this.refreshTaxonomy();
    this.sweeper = new Sweeper(store, this.writer, log);
    this.snapshots = new SnapshotLoader(store, this.writer);
    if (config.natsUrl) {
      this.nats = new JetStreamSource(
        store,
        this.writer,
        {
          servers: config.natsUrl.split(',').map((s) => s.trim()).filter(Boolean),
          stream: config.natsStream,
          subject: config.natsSubject,
          durable: config.natsDurable,
          batch: config.natsBatch,
          maxUidBytes: this.limits,
        },
        log,
        (s) => this.metrics?.recordOutcome('nats', s),
      );
    }
    this.inbox = new Inbox(store, this.writer, {
      dir: config.inbox,
      batchSize: config.loaderBatchSize,
      maxUidBytes: this.limits,
      maxLineBytes: config.maxLineBytes,
      log,
      signal: this.abort.signal,
      onFile: (s) => this.count('inbox', s),
      snapshots: this.snapshots,
      maxGzipRatio: config.maxGzipRatio,
      maxAttempts: config.inboxMaxAttempts,
      onQuarantine: () => this.metrics?.quarantined.inc(),
    });
  }

  /** The initial load: seed (once, into an empty store) and whatever the inbox holds. */
  initialLoad(): Promise<void> {
    const run = (async () => {
      await this.inbox.init();
      this.snapshots.clearInactive();
      await this.seed();
      await this.inbox.scan();
    })();
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Sweeps expired memberships every `sweepMs` until stop(). */
  private startSweeping(): void {
    const tick = () => {
      if (this.stopped) return;
      try {
        expireIdempotencyKeys(this.store, this.writer, nowSeconds());
        this.writer.graph.expire(nowSeconds());
      } catch (err) {
        // A full store is already reported (stall state, log); these retry on the next tick.
        if (!(err instanceof StoreFullError)) this.log.error({ err }, 'expiring idempotency keys or suppressions failed');
      }
      this.sweeping = this.sweeper
        .pass()
        .then((p) => {
          if (p.ran) this.metrics?.swept.inc(p.removed);
        })
        .catch((err: unknown) => this.log.error({ err }, 'ttl sweep failed'))
        .finally(() => {
          if (!this.stopped) this.sweepTimer = setTimeout(tick, this.config.sweepMs);
        });
    };
    this.sweepTimer = setTimeout(tick, this.config.sweepMs);
  }

  /** Keeps scanning the inbox, consuming the stream and sweeping, until stop(). */
  startPolling(): void {
    if (this.stopped) return; // a stop during the initial load
    this.startSweeping();
    this.nats?.start();
    const tick = () => {
      if (this.stopped) return;
      this.running = this.inbox
        .scan()
        .catch((err: unknown) => this.log.error({ err, inbox: this.config.inbox }, 'inbox scan failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.config.inboxPollMs);
        });
    };
    this.timer = setTimeout(tick, this.config.inboxPollMs);
  }

  /**
   * Stops polling and the sources and waits for the work in progress (each
   * batch commits atomically). `track` names each wait, so a caller that stops
   * waiting can say which one hung.
   */
  async stop(track: Track = (_, step) => step): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.sweeper.stop();
    this.snapshots.stop();
    if (this.timer) clearTimeout(this.timer);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    const nats = this.nats;
    await Promise.all([
      track('loader: inbox scan or initial load', this.running),
      track('loader: ttl sweep', this.sweeping),
      nats && track(() => `loader: jetstream source (${nats.waitingFor})`, nats.stop()),
    ]);
  }

  private async seed(): Promise<void> {
    const path = this.config.seed;
    if (!path) return;
    const cp = this.store.meta.get(SEED_CHECKPOINT) as FileCheckpoint | undefined;
    if (cp?.done) return;
    // Only an empty store is seeded (or one whose seeding a crash interrupted).
    if (!cp && userCount(this.store) > 0) return;
    if (!existsSync(path)) {
      this.log.warn({ seed: path }, 'seed file not found; starting empty');
      return;
    }
    const s = await importFile(this.store, this.writer, path, {
      checkpointKey: SEED_CHECKPOINT,
      batchSize: this.config.loaderBatchSize,
      maxUidBytes: this.limits,
      maxLineBytes: this.config.maxLineBytes,
      maxGzipRatio: this.config.maxGzipRatio,
      signal: this.abort.signal,
    });
    this.count('seed', s);
    this.log.info({ seed: path, applied: s.applied, rejected: s.rejected, ms: Math.round(s.ms) }, 'seed feed imported');
  }

  /** Re-reads the taxonomy's segment ids (after an admin change). */
  refreshTaxonomy(): void {
    if (typeof this.limits === 'number') return;
    this.knownSegments.clear();
    taxonomyIds(this.store, this.knownSegments);
  }

  /** An HTTP push batch: parsed and applied here, in one transaction, durable when this returns. */
  push(req: PushRequest, maxListed: number): PushAnswer {
    let r: PushAnswer;
    try {
      r = applyPush(this.store, this.writer, req, nowSeconds(), this.limits, maxListed);
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err;
      return { applied: 0, stale: 0, rejected: 0, replay: false, rejects: [], conflict: false, full: err.reason };
    }
    if (!r.replay && !r.conflict) this.metrics?.recordOutcome('push', r);
    return r;
  }

  /** Cookie-sync matches (partner id → segd uid), one transaction per batch. */
  matches(items: MatchItem[]): { applied: number; refused: number } {
    const now = nowSeconds();
    const changes: Change[] = items.map((m) => ({ op: 'match', uid: m.uid, ids: [], ttls: [], ts: now, key: m.key }));
    const r = this.writer.apply(changes, now);
    this.metrics?.recordOutcome('sync', { applied: r.applied, stale: r.stale, rejected: 0 });
    return { applied: r.applied, refused: r.stale };
  }

  /** Opt-out (tombstone for good) or deletion (tombstone for SEGD_DELETION_TOMBSTONE_DAYS), audited. */
  forget(req: ForgetRequest): ForgetAnswer {
    const now = nowSeconds();
    const until = req.reason === 'optout' ? 0 : now + this.config.deletionTombstoneDays * 86_400;
    let r: ForgetResult;
    try {
      r = this.writer.graph.forget(req.target, req.reason, now, until, req.by);
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err;
      return { full: err.reason };
    }
    this.metrics?.privacyActions.labels(req.reason === 'optout' ? 'optout' : 'delete').inc();
    this.log.info({ action: req.reason, found: r.found, ids: r.ids, memberships: r.memberships, audit: r.auditSeq }, 'privacy action applied');
    return r;
  }

  private count(source: Source, s: ImportSummary): void {
    this.metrics?.recordOutcome(source, s);
    this.metrics?.files.labels(source).inc();
  }
}
