// Metrics owned by the supervisor thread: loader progress, store size and the
// process itself. Workers' HTTP metrics are merged in at scrape time.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge, Registry, collectDefaultMetrics, AggregatorRegistry } from 'prom-client';
import type { Store } from '../store/env.js';
import { userCount } from '../store/env.js';

export const SOURCES = ['seed', 'inbox'] as const;
export type Source = (typeof SOURCES)[number];

export class ProcessMetrics {
  readonly registry = new Registry();
  readonly records: Counter<'source' | 'outcome'>;
  readonly files: Counter<'source'>;
  readonly lastCommit: Gauge;
  readonly ready: Gauge;

  constructor(store: Store) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'segd_' });
    this.records = new Counter({
      name: 'segd_loader_records_total',
      help: 'Feed records seen by the loader, by source and outcome (applied, stale = older than stored, rejected)',
      labelNames: ['source', 'outcome'],
      registers,
    });
    this.files = new Counter({ name: 'segd_loader_files_total', help: 'Feed files fully imported', labelNames: ['source'], registers });
    this.lastCommit = new Gauge({ name: 'segd_loader_last_commit_timestamp_seconds', help: 'When the loader last committed a batch', registers });
    this.ready = new Gauge({ name: 'segd_ready', help: '1 once the initial load is done', registers });
    for (const s of SOURCES) {
      for (const o of ['applied', 'stale', 'rejected']) this.records.labels(s, o).inc(0);
      this.files.labels(s).inc(0);
    }
    new Gauge({
      name: 'segd_store_users',
      help: 'Users with at least one stored membership',
      registers,
      collect() {
        this.set(userCount(store));
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

  /** Prometheus text for this registry merged with the workers' registries. */
  async text(workerMetrics: object[]): Promise<string> {
    const own = await this.registry.getMetricsAsJSON();
    return AggregatorRegistry.aggregate([own, ...workerMetrics]).metrics();
  }
}
