// Server-side figures: /metrics scraped before and after a run, and the
// difference of every segd_* counter (histograms by their _count and _sum), so
// the report shows what the server itself counted: requests by route and
// status, lookups hit/miss, loader records, aborted requests. With an admin
// key, also the server's event timeline over the run (TimelineFollower).
import type { ServerEvent } from './attribution.js';

export type Samples = Map<string, number>;

/** Gauges kept from the last scrape: the process's memory and the store's size (DESIGN: worker memory flat as data grows). */
const GAUGES = [
  'segd_process_resident_memory_bytes',
  'segd_process_heap_bytes',
  'segd_nodejs_heap_size_used_bytes',
  'segd_store_users',
  'segd_store_file_bytes',
  'segd_lmdb_readers',
];

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/;

/** The counter samples (histogram _count/_sum, and the GAUGES) of a Prometheus text page whose names start with segd_. */
export function parseCounters(text: string): Samples {
  const types = new Map<string, string>();
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      if (name && type) types.set(name, type);
      continue;
    }
    if (!line.startsWith('segd_')) continue;
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const series = m[1]!;
    const name = series.replace(/\{.*$/, '');
    const base = name.replace(/_(count|sum)$/, '');
    const counter =
      types.get(name) === 'counter' ||
      (types.get(base) === 'histogram' && name !== base && !name.endsWith('_bucket')) ||
      GAUGES.includes(series);
    const v = Number(m[2]);
    if (counter && Number.isFinite(v)) out.set(series, v);
  }
  return out;
}

export async function scrape(origin: string): Promise<{ samples: Samples; error?: string }> {
  try {
    const r = await fetch(`${origin}/metrics`, { signal: AbortSignal.timeout(10_000) });
    if (!r.ok) return { samples: new Map(), error: `/metrics answered ${r.status}` };
    return { samples: parseCounters(await r.text()) };
  } catch (err) {
    return { samples: new Map(), error: `/metrics: ${(err as Error).message}` };
  }
}

/** The kept gauges' values in a scrape. */
export function gauges(s: Samples): Record<string, number> {
  const out: Record<string, number> = {};
  for (const g of GAUGES) if (s.has(g)) out[g] = s.get(g)!;
  return out;
}

/** after − before of the counters, non-zero only, sorted by series. */
export function diff(before: Samples, after: Samples): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of [...after.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (GAUGES.includes(k)) continue;
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out[k] = Math.round(d * 1e6) / 1e6;
  }
  return out;
}

export interface ServerView {
  /** segd_lookups_total hit / (hit + miss) over the run. */
  hitShare?: number;
  lookups?: number;
  /** Mean server-side request time of the scenario's route, from the duration histogram's sum/count, µs. */
  meanUs?: number;
  aborted?: number;
}

export function serverView(d: Record<string, number>, route: string): ServerView {
  const hit = d['segd_lookups_total{result="hit"}'] ?? 0;
  const miss = d['segd_lookups_total{result="miss"}'] ?? 0;
  const sum = d[`segd_http_request_duration_seconds_sum{route="${route}"}`];
  const count = d[`segd_http_request_duration_seconds_count{route="${route}"}`];
  const v: ServerView = {};
  if (hit + miss > 0) {
    v.hitShare = hit / (hit + miss);
    v.lookups = hit + miss;
  }
  if (sum !== undefined && count) v.meanUs = (sum / count) * 1e6;
  const aborted = d['segd_http_aborted_total'];
  if (aborted) v.aborted = aborted;
  return v;
}

/** One page of the server's event timeline (GET /v1/admin/timeline, metrics/timeline.ts). */
export interface TimelinePage {
  now: number;
  capacity: number;
  recorded: number;
  oldestSeq?: number;
  events: Array<ServerEvent & { seq: number }>;
}

export async function fetchTimeline(origin: string, adminKey: string, sinceMs: number): Promise<TimelinePage> {
  const r = await fetch(`${origin}/v1/admin/timeline?since=${Math.max(0, Math.floor(sinceMs))}`, {
    headers: { authorization: `Bearer ${adminKey}` },
    signal: AbortSignal.timeout(10_000),
  });
  if (!r.ok) {
    const code = await r
      .json()
      .then((j) => (j as { error?: { code?: string } }).error?.code)
      .catch(() => undefined);
    throw new Error(`GET /v1/admin/timeline answered ${r.status}${code ? ` ${code}` : ''}`);
  }
  return (await r.json()) as TimelinePage;
}

/**
 * Follows the timeline during a run: a poll every few seconds (the ring is
 * bounded, a long run would outlive it), events kept once each (by seq), and
 * a note when the ring overwrote events before they were fetched.
 */
export class TimelineFollower {
  private readonly seen = new Map<number, ServerEvent>();
  private lastSeq = 0;
  private latestT = 0;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> = Promise.resolve();
  lost = false;
  error: string | undefined;

  constructor(
    private readonly origin: string,
    private readonly adminKey: string,
    private readonly fromMs: number,
  ) {}

  start(everyMs = 5000): void {
    this.poll();
    this.timer = setInterval(() => this.poll(), everyMs);
    this.timer.unref();
  }

  private poll(): void {
    this.polling = this.polling.then(async () => {
      try {
        // Worker events reach the ring up to a second late: ask again for the last few seconds.
        const page = await fetchTimeline(this.origin, this.adminKey, Math.max(this.fromMs, this.latestT - 5000));
        if (this.lastSeq > 0 && page.oldestSeq !== undefined && page.oldestSeq > this.lastSeq + 1) this.lost = true;
        for (const e of page.events) {
          const { seq, ...ev } = e;
          this.seen.set(seq, ev);
          if (seq > this.lastSeq) this.lastSeq = seq;
          if (e.t > this.latestT) this.latestT = e.t;
        }
      } catch (err) {
        this.error = (err as Error).message;
      }
    });
  }

  /** A last poll, then every event seen, oldest first. */
  async stop(): Promise<ServerEvent[]> {
    if (this.timer) clearInterval(this.timer);
    this.poll();
    await this.polling;
    return [...this.seen.values()].sort((a, b) => a.t - b.t);
  }
}
