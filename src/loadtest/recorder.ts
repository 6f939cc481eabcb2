// What one measured run saw: every latency in µs (hdr-histogram-js), a
// per-second timeline (requests, errors, p50/p99/max), log-spaced buckets for
// the report's histogram, and errors by kind. Every generator feeds one of these,
// so the figures, the report and the gate mean the same thing whatever drove
// the load.
import { performance } from 'node:perf_hooks';
import { build as buildHistogram, JsHistogram, type Histogram } from 'hdr-histogram-js';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface Second {
  /** Seconds since the measured window began. */
  t: number;
  requests: number;
  /** requests / the second's length (the last one is usually partial: the run's tail). */
  rps: number;
  errors: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

export interface Bucket {
  /** Lower and upper bound in µs. */
  fromUs: number;
  toUs: number;
  count: number;
}

export interface ErrorsByKind {
  /** Answers outside the scenario's success range, by HTTP status (or WebSocket error code). */
  status: Record<string, number>;
  timeouts: number;
  /** Connections refused, reset or closed under a request. */
  connection: number;
  /** Anything else (an answer that could not be parsed, a frame for no request). */
  other: number;
}

/**
 * The slow answers with when they ended (wall clock, ms), for laying them
 * against the server's event timeline (attribution.ts). Kept: every answer at
 * or above the running 98th percentile of the run so far (recomputed each
 * second; every answer of the first second), so the run's final p99 set is
 * whole unless latencies rise past the p98–p99 gap mid-run. Not written to
 * results.json.
 */
export interface SlowAnswers {
  endMs: number[];
  us: number[];
  /** More than MAX_SLOW were kept: the rest were dropped. */
  truncated: boolean;
}

const MAX_SLOW = 2_000_000;

export interface Figures {
  requests: number;
  ok: number;
  seconds: number;
  rps: number;
  errors: ErrorsByKind;
  errorCount: number;
  /** errorCount / (requests + transport errors). */
  errorRate: number;
  latencyUs: Percentiles;
  timeline: Second[];
  histogram: Bucket[];
  /** Wall clock (ms) when the measured window began (generators that keep no timeline leave it out). */
  startMs?: number;
  slow?: SlowAnswers;
  /** The fine histogram's non-empty buckets, [bucket top µs, count], for pooling rounds (rounds.ts); not written to results.json. */
  counts?: Array<[number, number]>;
}

const BUCKETS_PER_DECADE = 10;
/** A histogram of µs values up to 120 s, with `digits` significant digits. */
export const usHistogram = (digits: number): Histogram =>
  buildHistogram({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: digits as 1 | 2 | 3,
  });

export function percentilesOf(h: Histogram): Percentiles {
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  // A percentile is its bucket's upper end (3 significant digits), which can lie above the exact max.
  const max = h.maxValue;
  const at = (p: number) => Math.min(h.getValueAtPercentile(p), max);
  return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max, mean: h.mean };
}

/** A histogram's non-empty buckets as [highest equivalent value, count], ascending. */
function countsOf(h: Histogram): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  // usHistogram builds the pure-JS kind (no WebAssembly), which has the iterator.
  if (!(h instanceof JsHistogram)) return out;
  const it = h.recordedValuesIterator;
  it.reset();
  while (it.hasNext()) {
    const v = it.next();
    out.push([v.valueIteratedTo, v.countAtValueIteratedTo]);
  }
  return out;
}

export class Recorder {
  private readonly all = usHistogram(3);
  private readonly sec = usHistogram(2);
  private readonly buckets = new Map<number, number>();
  private readonly timeline: Second[] = [];
  private secErrors = 0;
  private t0 = 0;
  private tEnd = 0;
  private nextSecond = 0;
  private requests = 0;
  private okCount = 0;
  private slowFloorUs = 0;
  private readonly slow: SlowAnswers = { endMs: [], us: [], truncated: false };
  readonly errors: ErrorsByKind = { status: {}, timeouts: 0, connection: 0, other: 0 };

  constructor(private readonly isOk: (status: number) => boolean) {}

  /** Starts the clock (once: an answer that arrives first starts it too). */
  start(): void {
    if (this.t0 !== 0) return;
    this.t0 = performance.now();
    this.nextSecond = this.t0 + 1000;
  }

  /** One answer: its latency in µs and status; `errorKey` names a failed answer (default: the status). */
  answer(latencyUs: number, status: number, errorKey?: string): void {
    const now = this.roll();
    const us = Math.max(1, Math.round(latencyUs));
    if (us >= this.slowFloorUs) {
      if (this.slow.us.length < MAX_SLOW) {
        this.slow.endMs.push(performance.timeOrigin + now);
        this.slow.us.push(us);
      } else this.slow.truncated = true;
    }
    this.requests++;
    this.all.recordValue(us);
    this.sec.recordValue(us);
    const b = Math.floor(Math.log10(us) * BUCKETS_PER_DECADE);
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
    if (this.isOk(status)) this.okCount++;
    else {
      const key = errorKey ?? String(status);
      this.errors.status[key] = (this.errors.status[key] ?? 0) + 1;
      this.secErrors++;
    }
  }

  /** A request that got no answer. */
  failure(kind: 'timeouts' | 'connection' | 'other', n = 1): void {
    this.roll();
    this.errors[kind] += n;
    this.secErrors += n;
  }

  stop(): void {
    this.tEnd = performance.now();
    this.roll(true);
  }

  /** Closes the seconds that ended; returns the time now. */
  private roll(final = false): number {
    if (this.t0 === 0) this.start();
    const now = final ? this.tEnd : performance.now();
    while (now >= this.nextSecond || (final && (this.sec.totalCount > 0 || this.secErrors > 0))) {
      const p = percentilesOf(this.sec);
      const len = final ? Math.min(1, Math.max(0.001, (now - (this.nextSecond - 1000)) / 1000)) : 1;
      this.timeline.push({
        t: this.timeline.length + 1,
        requests: this.sec.totalCount,
        rps: this.sec.totalCount / len,
        errors: this.secErrors,
        p50Us: p.p50,
        p99Us: p.p99,
        maxUs: p.max,
      });
      this.sec.reset();
      this.secErrors = 0;
      this.nextSecond += 1000;
      this.slowFloorUs = this.all.getValueAtPercentile(98);
      if (final) break;
    }
    return now;
  }

  figures(): Figures {
    const seconds = Math.max(1e-3, ((this.tEnd || performance.now()) - this.t0) / 1000);
    const transport = this.errors.timeouts + this.errors.connection + this.errors.other;
    const errorCount = this.requests - this.okCount + transport;
    const histogram = [...this.buckets.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([b, count]) => ({
        fromUs: 10 ** (b / BUCKETS_PER_DECADE),
        toUs: 10 ** ((b + 1) / BUCKETS_PER_DECADE),
        count,
      }));
    return {
      requests: this.requests,
      ok: this.okCount,
      seconds,
      rps: this.requests / seconds,
      errors: this.errors,
      errorCount,
      errorRate: errorCount / Math.max(1, this.requests + transport),
      latencyUs: percentilesOf(this.all),
      timeline: this.timeline,
      histogram,
      startMs: performance.timeOrigin + this.t0,
      slow: this.slow,
      counts: countsOf(this.all),
    };
  }
}
