// What a thread's runtime does besides its own work: event-loop delay, GC
// pauses and the thread's CPU time, as metrics of one thread (labels thread
// and worker), with the large ones put on the timeline. Everything here runs
// from a timer, a performance observer or a scrape — never in a request.
import { readFileSync } from 'node:fs';
import {
  PerformanceObserver,
  constants,
  createHistogram,
  monitorEventLoopDelay,
  type IntervalHistogram,
  type RecordableHistogram,
} from 'node:perf_hooks';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Value } from './http.js';
import type { Timeline } from './timeline.js';

/** `{thread: 'main'}` or `{thread: 'worker', worker: '0'}`. */
export type ThreadLabels = { thread: 'main' } | { thread: 'worker'; worker: string };

/** The delay monitor's timer period, ms: its samples are this period plus the lateness. */
const RESOLUTION_MS = 1;
/** How often the monitor's samples are folded into the metrics (and checked for spikes). */
const FOLD_MS = 100;
/** The summary's quantiles cover this many of the latest seconds. */
const WINDOW_S = 10;
const QUANTILES = [0.5, 0.99, 0.999, 1] as const;
/** A fold window whose worst lateness passes this goes on the timeline as a loop-delay event. */
export const LOOP_SPIKE_MS = 5;
/** GC pauses at least this long go on the timeline. */
export const GC_EVENT_MS = 1;

const GC_KINDS = new Map<number, string>([
  [constants.NODE_PERFORMANCE_GC_MINOR, 'scavenge'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'mark-sweep-compact'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
]);

/** This thread's CPU time in seconds (Linux schedstat: ns, per thread), or null where it cannot be read. */
export function threadCpuSeconds(): number | null {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e9;
  } catch {
    return null;
  }
}

export class RuntimeObservers {
  private readonly eld: IntervalHistogram;
  /** Cumulative lateness (ns) since start, and one histogram per second of the last WINDOW_S. */
  private readonly total = createHistogram();
  private readonly recent: RecordableHistogram[] = [createHistogram()];
  private folds = 0;
  private sumSeconds = 0;
  private windowStart = performance.now();
  private readonly timer: NodeJS.Timeout;
  private readonly gcObserver: PerformanceObserver;

  constructor(
    registry: Registry,
    private readonly labels: ThreadLabels,
    private readonly timeline: Timeline,
  ) {
    const labelNames = ['thread', 'worker'];
    const gc = new Histogram({
      name: 'segd_gc_pause_seconds',
      help: 'GC pauses of each thread, by kind (scavenge, mark-sweep-compact, incremental, weakcb)',
      labelNames: [...labelNames, 'kind'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    });
    for (const kind of GC_KINDS.values()) gc.zero({ ...labels, kind });
    this.gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = GC_KINDS.get((e as { detail?: { kind?: number } }).detail?.kind ?? 0) ?? 'other';
        gc.labels({ ...labels, kind }).observe(e.duration / 1000);
        if (e.duration >= GC_EVENT_MS) timeline.add('gc', e.startTime, e.duration, { kind });
      }
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });

    const cpu = threadCpuSeconds();
    if (cpu !== null) {
      const startCpu = cpu;
      new Counter({
        name: 'segd_thread_cpu_seconds_total',
        help: "CPU time of each thread since it started (Linux schedstat): the writer's and every worker's share of the cores",
        labelNames,
        registers: [registry],
        collect() {
          this.reset();
          this.labels(labels).inc((threadCpuSeconds() ?? startCpu) - startCpu);
        },
      });
    }

    this.eld = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.eld.enable();
    this.timer = setInterval(() => this.fold(), FOLD_MS);
    this.timer.unref();
    const name = 'segd_event_loop_delay_seconds';
    const help = `Event-loop delay of each thread: how late a ${RESOLUTION_MS} ms timer fired (monitorEventLoopDelay). Quantiles over the last ${WINDOW_S} s (quantile 1 = max); _sum and _count since start`;
    registry.registerMetric({
      name,
      help,
      type: 'summary',
      aggregator: 'sum',
      get: async () => ({ name, help, type: 'summary', aggregator: 'sum', values: this.summary(name) }),
    } as never);
  }

  private summary(name: string): Value[] {
    const merged = createHistogram();
    for (const h of this.recent) if (h.count > 0) merged.add(h);
    const out: Value[] = QUANTILES.map((q) => ({
      value: merged.count > 0 ? (q === 1 ? merged.max : merged.percentile(q * 100)) / 1e9 : 0,
      labels: { ...this.labels, quantile: q },
    }));
    out.push({ value: this.sumSeconds, labels: { ...this.labels }, metricName: `${name}_sum` });
    out.push({ value: this.total.count, labels: { ...this.labels }, metricName: `${name}_count` });
    return out;
  }

  /**
   * Moves the monitor's samples into the histograms. The monitor keeps only a
   * distribution, so its percentile points are replayed as samples (each point
   * weighted by the share of samples up to it): exact at those points, which
   * halve the distance to 100% each step.
   */
  private fold(): void {
    const h = this.eld;
    const now = performance.now();
    const n = h.count;
    if (n > 0) {
      const resNs = RESOLUTION_MS * 1e6;
      const cur = this.recent[this.recent.length - 1]!;
      let recorded = 0;
      for (const [p, v] of h.percentiles) {
        const upTo = Math.round((n * p) / 100);
        const late = Math.max(1, v - resNs);
        for (; recorded < upTo; recorded++) {
          cur.record(late);
          this.total.record(late);
        }
      }
      this.sumSeconds += (Math.max(0, h.mean - resNs) * n) / 1e9;
      const maxLateMs = Math.max(0, h.max - resNs) / 1e6;
      if (maxLateMs >= LOOP_SPIKE_MS)
        this.timeline.add('loop-delay', this.windowStart, now - this.windowStart, {
          maxMs: Math.round(maxLateMs * 100) / 100,
          p99Ms: Math.round((Math.max(0, h.percentile(99) - resNs) / 1e6) * 100) / 100,
        });
      h.reset();
    }
    this.windowStart = now;
    if (++this.folds % (1000 / FOLD_MS) === 0) {
      this.recent.push(createHistogram());
      if (this.recent.length > WINDOW_S) this.recent.shift();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.eld.disable();
    this.gcObserver.disconnect();
  }
}
