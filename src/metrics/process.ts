// Metrics owned by the supervisor thread: loader progress, store size and the
// process itself. Workers' HTTP metrics are merged in at scrape time.
import { performance } from 'node:perf_hooks';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, AggregatorRegistry } from 'prom-client';
import { userCount, type Store } from '../store/env.js';
import { STALL_REASONS } from '../store/write-failure.js';
import { transactionCpuSeconds, transactionSeconds } from './writer-slices.js';

/** What the metrics read of the known-users filter (filters/known-users.ts), which itself records on the timeline. */
export interface FilterView {
  readonly state: string;
  readonly current: { params: { capacity: number }; buffer: ArrayBufferLike; fillRatio(): number } | null;
  readonly addedCount: number;
  readonly rebuilds: number;
}

const SOURCES = ['seed', 'inbox', 'push', 'nats', 'sync'] as const;
export type Source = (typeof SOURCES)[number];

export class ProcessMetrics {
  readonly registry = new Registry();
  readonly records: Counter<'source' | 'outcome'>;
  readonly files: Counter<'source'>;
  /** Inbox files moved to `failed/` after failing repeatedly. */
  readonly quarantined: Counter;
  readonly lastCommit: Gauge;
  readonly ready: Gauge;
  readonly stalled: Gauge;
  readonly swept: Counter;
  readonly commitSeconds: Histogram;
  /** Opt-outs and deletions carried out (privacy/forget.ts). */
  readonly privacyActions: Counter<'action'>;

  private readonly fpRate: Gauge;

  constructor(store: Store, known: FilterView | null = null) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'segd_' });
    this.records = new Counter({
      name: 'segd_loader_records_total',
      help: 'Feed records seen by the loader, by source and outcome (applied, stale = older than stored, rejected)',
      labelNames: ['source', 'outcome'],
      registers,
    });
    this.privacyActions = new Counter({
      name: 'segd_privacy_actions_total',
      help: 'Opt-outs and deletions carried out (memberships and linked ids removed, tombstone written, audited)',
      labelNames: ['action'],
      registers,
    });
    for (const a of ['optout', 'delete']) this.privacyActions.labels(a).inc(0);
    this.files = new Counter({
      name: 'segd_loader_files_total',
      help: 'Feed files fully imported',
      labelNames: ['source'],
      registers,
    });
    this.quarantined = new Counter({
      name: 'segd_loader_files_quarantined_total',
      help: 'Inbox files moved to failed/ after SEGD_INBOX_MAX_ATTEMPTS attempts without progress',
      registers,
    });
    this.lastCommit = new Gauge({
      name: 'segd_loader_last_commit_timestamp_seconds',
      help: 'When the loader last committed a batch',
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'segd_loader_commit_seconds',
      help: 'Time to apply and commit one loader transaction (any source)',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
    this.registry.registerMetric(transactionSeconds);
    this.registry.registerMetric(transactionCpuSeconds);
    this.swept = new Counter({
      name: 'segd_ttl_swept_total',
      help: 'Expired memberships removed by the TTL sweep',
      registers,
    });
    this.ready = new Gauge({ name: 'segd_ready', help: '1 once the initial load is done', registers });
    this.stalled = new Gauge({
      name: 'segd_loader_stalled',
      help: '1 while the loader cannot commit because the store is full (reason: disk_full, map_full); lookups keep serving the last committed data',
      labelNames: ['reason'],
      registers,
    });
    for (const r of STALL_REASONS) this.stalled.labels(r).set(0);
    for (const s of SOURCES) {
      for (const o of ['applied', 'stale', 'rejected']) this.records.labels(s, o).inc(0);
      this.files.labels(s).inc(0);
    }
    this.fpRate = new Gauge({
      name: 'segd_bloom_false_positive_rate',
      help: 'Measured share of unknown users the known-users filter let through to LMDB (false_positive / (false_positive + negative))',
      registers,
    });
    let fill = 0;
    let fillAt = -Infinity;
    let fillOf: unknown = null;
    new Gauge({
      name: 'segd_bloom_info',
      help: 'Known-users filter: state (1 for the current one), capacity, keys added, fill ratio, rebuilds since start',
      labelNames: ['state', 'field'],
      registers,
      collect() {
        this.reset();
        const state = known?.state ?? 'off';
        this.labels(state, 'state').set(1);
        const f = known?.current;
        if (f) {
          this.labels(state, 'capacity').set(f.params.capacity);
          this.labels(state, 'added').set(known!.addedCount);
          // A popcount of the whole filter: at most every 10 s, not per scrape.
          if (performance.now() - fillAt > 10_000 || fillOf !== f) {
            fill = f.fillRatio();
            fillAt = performance.now();
            fillOf = f;
          }
          this.labels(state, 'fill_ratio').set(fill);
          this.labels(state, 'bytes').set(f.buffer.byteLength);
        }
        this.labels(state, 'rebuilds').set(known?.rebuilds ?? 0);
      },
    });
    new Gauge({
      name: 'segd_store_users',
      help: 'Users with at least one stored membership',
      registers,
      collect() {
        this.set(userCount(store));
      },
    });
    new Gauge({
      name: 'segd_lmdb_readers',
      help: 'LMDB reader slots in use (every thread and process on the env); a number that only grows is a leaked read transaction',
      registers,
      collect() {
        // readerList(): a header line, then one line per slot in use.
        this.set(
          Math.max(
            0,
            store.env
              .readerList()
              .split('\n')
              .filter((l) => /^\s*\d+\s/.test(l)).length,
          ),
        );
      },
    });
    new Gauge({
      name: 'segd_store_file_bytes',
      help: 'Size of the LMDB data file',
      registers,
      collect() {
        try {
          this.set(statSync(join(store.path, 'data.mdb')).size);
        } catch {
          this.set(0);
        }
      },
    });
  }

  /** One source's records: applied, stale (older than stored), rejected. */
  recordOutcome(source: Source, o: { applied: number; stale: number; rejected: number }): void {
    this.records.labels(source, 'applied').inc(o.applied);
    this.records.labels(source, 'stale').inc(o.stale);
    this.records.labels(source, 'rejected').inc(o.rejected);
  }

  /** Exposes the JetStream consumer's backlog. */
  watchNats(pending: () => number, connected: () => boolean): void {
    new Gauge({
      name: 'segd_nats_connected',
      help: 'Whether the JetStream feed holds a connection to a NATS server (0: reconnecting)',
      registers: [this.registry],
      collect() {
        this.set(connected() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'segd_nats_pending',
      help: 'Messages of the JetStream feed not yet applied by this node (-1 = unknown)',
      registers: [this.registry],
      collect() {
        this.set(pending());
      },
    });
  }

  /** Prometheus text for this registry merged with the workers' registries. */
  async text(workerMetrics: object[]): Promise<string> {
    // The measured FP rate needs every worker's counters: computed here.
    let neg = 0;
    let fp = 0;
    for (const w of workerMetrics as Array<
      Array<{ name: string; values: Array<{ value: number; labels: { result?: string } }> }>
    >) {
      for (const m of w) {
        if (m.name !== 'segd_bloom_checks_total') continue;
        for (const v of m.values) {
          if (v.labels.result === 'negative') neg += v.value;
          else if (v.labels.result === 'false_positive') fp += v.value;
        }
      }
    }
    this.fpRate.set(neg + fp > 0 ? fp / (neg + fp) : 0);
    const own = await this.registry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate([own, ...workerMetrics]).metrics();
  }
}
