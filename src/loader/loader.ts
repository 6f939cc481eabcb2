// The embedded loader: the one writer of the store and its sources, composed.
// The sources: a seed file imported once into an empty store, the inbox
// directory (scanned at start and every `inboxPollMs`), HTTP push, NATS
// JetStream and the cookie-sync matches; besides them the TTL sweep, and the
// privacy actions (privacy/forget.ts) on the same writer.
import type { Config } from '../config/schema.js';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import type { ProcessMetrics, Source } from '../metrics/process.js';
import { Writer, type WriterHooks } from './writer.js';
import { Inbox } from './inbox.js';
import type { ImportSummary } from './file-import.js';
import { importSeed } from './seed.js';
import { PushSource } from './push.js';
import { Sweeper, type SweepPass } from './sweep.js';
import { JetStreamSource } from './jetstream.js';
import { nowSeconds } from '../lookup/segments.js';
import { SnapshotLoader } from './snapshot.js';
import { StoreFullError } from '../store/write-failure.js';
import type { RecordLimits } from './records.js';
import { Forget } from '../privacy/forget.js';
import { SyncMatches } from './sync-matches.js';
import { KnownSegments } from './known-segments.js';

/** Names a wait of stop() (a name read later may be a function), so a caller that stops waiting can say which one hung. */
type Track = <T>(name: string | (() => string), step: Promise<T>) => Promise<T>;

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
  /** HTTP push batches from the workers. */
  readonly push: PushSource;
  /** Cookie-sync matches from the workers. */
  readonly matches: SyncMatches;
  /** Opt-outs and deletions. */
  readonly privacy: Forget;
  /** What every source checks records against; refresh() after a taxonomy change. */
  readonly taxonomy: KnownSegments;
  private readonly limits: RecordLimits;
  private sweepTimer: NodeJS.Timeout | null = null;
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
    this.taxonomy = new KnownSegments(store, config.maxUidBytes, config.unknownSegments);
    this.limits = this.taxonomy.limits;
    this.push = new PushSource(store, this.writer, this.limits, (r) => this.metrics?.recordOutcome('push', r));
    this.matches = new SyncMatches(this.writer, (o) => this.metrics?.recordOutcome('sync', o));
    this.privacy = new Forget(store, this.writer, this.writer.graph, this.writer.suppressed, {
      deletionTombstoneDays: config.deletionTombstoneDays,
      log,
      onAction: (a) => this.metrics?.privacyActions.labels(a).inc(),
    });
    this.sweeper = new Sweeper(store, this.writer, log);
    this.snapshots = new SnapshotLoader(store, this.writer);
    if (config.natsUrl) {
      this.nats = new JetStreamSource(
        store,
        this.writer,
        {
          servers: config.natsUrl
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
          stream: config.natsStream,
          subject: config.natsSubject,
          durable: config.natsDurable,
          batch: config.natsBatch,
          maxRecords: config.loaderBatchSize,
          shard: config.shard,
          maxUidBytes: this.limits,
        },
        log,
        (s) => this.metrics?.recordOutcome('nats', s),
      );
      this.nats.prepare(); // the consumer is attached while the node loads; consuming starts with startPolling()
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
        this.push.expire(nowSeconds());
        this.writer.suppressed.expire(nowSeconds(), (fn) => this.writer.commit(fn));
      } catch (err) {
        // A full store is already reported (stall state, log); these retry on the next tick.
        if (!(err instanceof StoreFullError))
          this.log.error({ err }, 'expiring idempotency keys or suppressions failed');
      }
      // Failures are logged by sweepNow; the next tick tries again.
      this.sweepNow()
        .catch(() => undefined)
        .finally(() => {
          if (!this.stopped) this.sweepTimer = setTimeout(tick, this.config.sweepMs);
        });
    };
    this.sweepTimer = setTimeout(tick, this.config.sweepMs);
  }

  /**
   * A TTL sweep pass now (an operator's, or a load test's), queued behind one
   * in progress so passes never overlap; it is skipped, as the timed ones are,
   * while nothing can have expired yet.
   */
  sweepNow(): Promise<SweepPass> {
    const pass = this.sweeping.then(() => this.sweeper.pass());
    this.sweeping = pass.then(
      (p) => {
        if (p.ran) this.metrics?.swept.inc(p.removed);
      },
      (err: unknown) => this.log.error({ err }, 'ttl sweep failed'),
    );
    return pass;
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
    const s = await importSeed(
      this.store,
      this.writer,
      path,
      {
        batchSize: this.config.loaderBatchSize,
        maxUidBytes: this.limits,
        maxLineBytes: this.config.maxLineBytes,
        maxGzipRatio: this.config.maxGzipRatio,
        signal: this.abort.signal,
      },
      this.log,
    );
    if (s !== null) this.count('seed', s);
  }

  private count(source: Source, s: ImportSummary): void {
    this.metrics?.recordOutcome(source, s);
    this.metrics?.files.labels(source).inc();
  }
}
