// What a thread's runtime does besides its own work: event-loop delay, GC
// pauses and the thread's CPU time, as metrics of one thread (labels thread
// and worker), with the large ones put on the timeline. Everything here runs
// from a timer, a performance observer or a scrape — never in a request.
import { readFileSync } from 'node:fs';
import {
  PerformanceObserver,
  constants,
  monitorEventLoopDelay,
  type IntervalHistogram,
  performance,
} from 'node:perf_hooks';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Value } from './http.js';
import type { Timeline } from './timeline.js';

/** `{thread: 'main'}` or `{thread: 'worker', worker: '0'}`. */
export type ThreadLabels = { thread: 'main' } | { thread: 'worker'; worker: string };

/**
 * How often the monitor's max is checked for a spike: one field read
 * (≈ 0.2 µs). Folding the samples walks the monitor's whole histogram
 * (`percentiles` and `mean` ≈ 25 µs each, `reset` ≈ 4 µs, on this machine),
 * so it waits for a spike or the end of the second.
 */
const CHECK_MS = 100;
const CHECKS_PER_ROW = 1000 / CHECK_MS;
/** The summary's quantiles cover this many of the latest seconds. */
const WINDOW_S = 10;
const QUANTILES = [0.5, 0.99, 0.999, 1] as const;
/** A fold window whose worst lateness passes this goes on the timeline as a loop-delay event. */
export const LOOP_SPIKE_MS = 5;
/** GC pauses at least this long go on the timeline. */
export const GC_EVENT_MS = 1;
/**
 * The shortest monitor period of a thread that serves no lookups (the main
 * thread: supervisor and writer). Each period wakes the thread when it is
 * idle, which the main thread is while the workers serve: at 1 ms that was
 * ≈ 16 ms of CPU a second, ≈ 1.5% of a saturated worker's. At 10 ms a stall
 * of 15 ms or more still shows as a loop-delay spike (its timer is then at
 * least LOOP_SPIKE_MS late); the workers keep the configured period.
 */
export const UNSERVED_MONITOR_MS = 10;

/** The monitor period of a thread that serves no lookups, for a configured `ms` (0: off). */
export function unservedMonitorMs(ms: number): number {
  return ms > 0 ? Math.max(ms, UNSERVED_MONITOR_MS) : 0;
}

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

/**
 * Delay samples of the last WINDOW_S seconds, one row of log-spaced buckets
 * per second (BUCKETS_PER_OCTAVE per doubling: a quantile is within ~9% of
 * the true value), plus each second's exact max. Weighted adds in plain
 * arrays: replaying samples into a native histogram costs ≈ 1.3 µs per call,
 * which at 1,000 samples a second per thread was the largest cost of all this.
 */
class DelayWindow {
  private readonly rows: Float64Array[] = [];
  private readonly maxes: number[] = [];

  constructor() {
    this.next();
  }

  /** Starts the next second, dropping the oldest past WINDOW_S. */
  next(): void {
    this.rows.push(new Float64Array(DELAY_BUCKETS));
    this.maxes.push(0);
    if (this.rows.length > WINDOW_S) {
      this.rows.shift();
      this.maxes.shift();
    }
  }

  add(ns: number, weight: number): void {
    const row = this.rows[this.rows.length - 1]!;
    row[bucketOf(ns)]! += weight;
  }

  max(ns: number): void {
    const i = this.maxes.length - 1;
    if (ns > this.maxes[i]!) this.maxes[i] = ns;
  }

  /** The window's quantiles (q < 1: a bucket's upper bound; q = 1: the exact max), ns. */
  quantiles(qs: readonly number[]): number[] {
    const merged = new Float64Array(DELAY_BUCKETS);
    let n = 0;
    for (const row of this.rows)
      for (let b = 0; b < DELAY_BUCKETS; b++) {
        merged[b]! += row[b]!;
        n += row[b]!;
      }
    const max = Math.max(...this.maxes);
    return qs.map((q) => {
      if (n === 0) return 0;
      if (q >= 1) return max;
      let seen = 0;
      for (let b = 0; b < DELAY_BUCKETS; b++) {
        seen += merged[b]!;
        if (seen >= q * n) return Math.min(upperOf(b), max);
      }
      return max;
    });
  }
}

/** Delay buckets: below 1 µs, then BUCKETS_PER_OCTAVE per doubling up to 2^37 ns (≈ 137 s). */
const BUCKETS_PER_OCTAVE = 8;
const DELAY_BUCKETS = 1 + 37 * BUCKETS_PER_OCTAVE;
const bucketOf = (ns: number) =>
  ns < 1000 ? 0 : Math.min(DELAY_BUCKETS - 1, 1 + Math.floor(Math.log2(ns / 1000) * BUCKETS_PER_OCTAVE));
const upperOf = (b: number) => (b === 0 ? 1000 : 1000 * 2 ** (b / BUCKETS_PER_OCTAVE));

export class RuntimeObservers {
  private readonly eld: IntervalHistogram | null = null;
  private readonly window = new DelayWindow();
  private checks = 0;
  private count = 0;
  private sumSeconds = 0;
  /** When the max was last checked and found below a spike: a spike seen now began after this. */
  private checkedAt = performance.now();
  private readonly timer: NodeJS.Timeout | null = null;
  private readonly gcObserver: PerformanceObserver;

  constructor(
    registry: Registry,
    private readonly labels: ThreadLabels,
    private readonly timeline: Timeline,
    /**
     * The delay monitor's timer period, ms (0 = no delay monitor): its samples
     * are this period plus the lateness. Each period wakes an idle thread.
     */
    private readonly resolutionMs = 1,
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

    if (resolutionMs <= 0) return;
    this.eld = monitorEventLoopDelay({ resolution: resolutionMs });
    this.eld.enable();
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
    const name = 'segd_event_loop_delay_seconds';
    // One help for every thread's registry (merged at scrape): the periods differ by thread.
    const help = `Event-loop delay of each thread: how late its monitor's timer fired (monitorEventLoopDelay; a worker's period is SEGD_LOOP_MONITOR_MS, the main thread's at least ${UNSERVED_MONITOR_MS} ms). Quantiles over the last ${WINDOW_S} s (quantile 1 = max); _sum and _count since start`;
    registry.registerMetric({
      name,
      help,
      type: 'summary',
      aggregator: 'sum',
      get: async () => ({ name, help, type: 'summary', aggregator: 'sum', values: this.summary(name) }),
    } as never);
  }

  private summary(name: string): Value[] {
    const qs = this.window.quantiles(QUANTILES);
    const out: Value[] = QUANTILES.map((q, i) => ({ value: qs[i]! / 1e9, labels: { ...this.labels, quantile: q } }));
    out.push({ value: this.sumSeconds, labels: { ...this.labels }, metricName: `${name}_sum` });
    out.push({ value: this.count, labels: { ...this.labels }, metricName: `${name}_count` });
    return out;
  }

  /**
   * Every CHECK_MS: a fold when the max passed a spike (the monitor is reset
   * then, so the next spike raises the max again and is seen in its own
   * check interval) and at the end of each second (a window row).
   */
  private check(): void {
    const now = performance.now();
    const rowDone = ++this.checks % CHECKS_PER_ROW === 0;
    if (rowDone || this.eld!.max - this.resolutionMs * 1e6 >= LOOP_SPIKE_MS * 1e6) this.fold(now);
    if (rowDone) this.window.next();
    this.checkedAt = now;
  }

  /**
   * Moves the monitor's samples into the window. The monitor keeps only a
   * distribution: its percentile points (which halve the distance to 100% at
   * each step) are added with the share of samples each stands for. A spike
   * goes on the timeline as the check interval it was seen in.
   */
  private fold(now: number): void {
    const h = this.eld!;
    const n = h.count;
    if (n > 0) {
      const resNs = this.resolutionMs * 1e6;
      let prev = 0;
      for (const [p, v] of h.percentiles) {
        if (p > prev) this.window.add(Math.max(0, v - resNs), (n * (p - prev)) / 100);
        prev = p;
      }
      const maxLateNs = Math.max(0, h.max - resNs);
      this.window.max(maxLateNs);
      this.count += n;
      this.sumSeconds += (Math.max(0, h.mean - resNs) * n) / 1e9;
      if (maxLateNs / 1e6 >= LOOP_SPIKE_MS)
        this.timeline.add('loop-delay', this.checkedAt, now - this.checkedAt, {
          maxMs: Math.round(maxLateNs / 1e4) / 100,
          p99Ms: Math.round(Math.max(0, h.percentile(99) - resNs) / 1e4) / 100,
        });
      h.reset();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.eld?.disable();
    this.gcObserver.disconnect();
  }
}
