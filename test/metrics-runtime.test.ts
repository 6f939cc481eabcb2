// The runtime families of /metrics on the real server, after some traffic:
// event-loop delay, GC pauses and CPU of the main (writer) thread and of each
// worker, and the writer's transaction wall and CPU time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { RuntimeObservers } from '../src/metrics/runtime.js';
import { Timeline, type TimelineEvent } from '../src/metrics/timeline.js';
import { startSegd, stopReport, feedLine, waitFor, CLEAN_STOP, type Segd } from './helpers/server.js';

const INGEST = 'runtime-ingest-key-0123456789';
let segd: Segd;

beforeAll(async () => {
  segd = await startSegd({ env: { SEGD_INGEST_KEYS: INGEST, SEGD_WORKERS: '2' } });
});
afterAll(async () => {
  if (segd) expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

/** series (name{labels}) → value, for the families starting with `prefix`. */
async function scrape(prefix: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${segd.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const THREADS = ['thread="main"', 'thread="worker",worker="0"', 'thread="worker",worker="1"'];

let pushed = 0;
async function pushSome(n: number): Promise<void> {
  let body = '';
  for (let i = 0; i < n; i++) body += feedLine({ op: 'add', uid: `rt-${pushed++}`, segments: [1 + (i % 50), 100] });
  const r = await fetch(`${segd.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${INGEST}`, 'content-type': 'application/x-ndjson' },
    body,
  });
  expect(r.status).toBe(200);
}

describe('runtime metrics', () => {
  it('exposes event-loop delay per thread: quantiles in seconds, ordered, and counts that grow', async () => {
    for (let i = 0; i < 200; i++) await fetch(`${segd.url}/v1/segments?uid=u${i}`);
    const name = 'segd_event_loop_delay_seconds';
    let first = await scrape(name);
    // The quantiles cover folded samples (every 100 ms): wait for the first fold of every thread.
    await waitFor(async () => {
      first = await scrape(name);
      return THREADS.every((t) => (first.get(`${name}_count{${t}}`) ?? 0) > 0);
    });
    for (const t of THREADS) {
      const q = (x: string) => first.get(`${name}{${t},quantile="${x}"}`)!;
      for (const x of ['0.5', '0.99', '0.999', '1']) {
        expect(q(x), `${t} ${x}`).toBeGreaterThanOrEqual(0);
        // Seconds, not ns or ms: a 1 ms timer is not a minute late.
        expect(q(x), `${t} ${x}`).toBeLessThan(60);
      }
      expect(q('0.5')).toBeLessThanOrEqual(q('0.99'));
      expect(q('0.99')).toBeLessThanOrEqual(q('0.999'));
      expect(q('0.999')).toBeLessThanOrEqual(q('1'));
      expect(first.get(`${name}_sum{${t}}`)).toBeGreaterThanOrEqual(0);
    }
    // A 1 ms timer fires up to ~1000 times a second per thread: the counts keep growing.
    await waitFor(async () => {
      const later = await scrape(name);
      return THREADS.every((t) => later.get(`${name}_count{${t}}`)! > first.get(`${name}_count{${t}}`)! + 50);
    });
  });

  it("times the main thread's loop at 10 ms at the finest: it serves no lookups", async () => {
    const name = 'segd_event_loop_delay_seconds_count';
    const main = `${name}{thread="main"}`;
    const worker = `${name}{thread="worker",worker="0"}`;
    const first = await scrape(name);
    const t0 = performance.now();
    // Counts move when a second's samples are folded: wait for at least two folds of both.
    await waitFor(async () => {
      const now = await scrape(name);
      return now.get(worker)! > first.get(worker)! && performance.now() - t0 > 2500;
    });
    const later = await scrape(name);
    const ms = performance.now() - t0;
    // A 10 ms timer fires at most ms / 10 times; one second's fold of slack (a 1 ms timer: ≈ ms).
    expect(later.get(main)! - first.get(main)!).toBeLessThanOrEqual(ms / 10 + 100);
    expect(later.get(main)! - first.get(main)!).toBeGreaterThan(0);
  });

  it('exposes GC pauses by kind for every thread, and counts them', async () => {
    const name = 'segd_gc_pause_seconds';
    const m = await scrape(name);
    for (const t of THREADS)
      for (const kind of ['scavenge', 'mark-sweep-compact', 'incremental', 'weakcb'])
        expect(m.has(`${name}_count{${t},kind="${kind}"}`), `${t} ${kind}`).toBe(true);
    // Parsing and applying pushed records allocates on the main thread: its young generation fills.
    await waitFor(async () => {
      await pushSome(2000);
      const now = await scrape(name);
      return (now.get(`${name}_count{thread="main",kind="scavenge"}`) ?? 0) > 0;
    }, 30_000);
    const now = await scrape(name);
    const sum = now.get(`${name}_sum{thread="main",kind="scavenge"}`)!;
    const count = now.get(`${name}_count{thread="main",kind="scavenge"}`)!;
    // A pause is positive and under a second.
    expect(sum).toBeGreaterThan(0);
    expect(sum / count).toBeLessThan(1);
    expect(now.get(`${name}_bucket{le="+Inf",thread="main",kind="scavenge"}`)).toBe(count);
  });

  it("exposes each thread's CPU time and the writer's transaction wall and CPU time", async () => {
    const before = await scrape('segd_');
    await pushSome(500);
    const after = await scrape('segd_');
    for (const t of THREADS) {
      const cpu = after.get(`segd_thread_cpu_seconds_total{${t}}`)!;
      expect(cpu, t).toBeGreaterThan(0);
      expect(cpu, t).toBeLessThan(600);
    }
    // The writer worked for the push: its CPU grew.
    expect(after.get('segd_thread_cpu_seconds_total{thread="main"}')!).toBeGreaterThan(
      before.get('segd_thread_cpu_seconds_total{thread="main"}')!,
    );
    const n = (m: Map<string, number>, s: string) => m.get(s) ?? 0;
    expect(n(after, 'segd_loader_transaction_seconds_count')).toBeGreaterThan(
      n(before, 'segd_loader_transaction_seconds_count'),
    );
    expect(n(after, 'segd_loader_transaction_cpu_seconds_count')).toBe(
      n(after, 'segd_loader_transaction_seconds_count'),
    );
    const wall = n(after, 'segd_loader_transaction_seconds_sum');
    const cpu = n(after, 'segd_loader_transaction_cpu_seconds_sum');
    expect(wall).toBeGreaterThan(0);
    expect(cpu).toBeGreaterThan(0);
    // CPU time of one thread cannot pass its wall time (schedstat is per thread).
    expect(cpu).toBeLessThanOrEqual(wall * 1.05 + 0.001);
  });
});

describe('SEGD_LOOP_MONITOR_MS=0', () => {
  it('runs no delay monitor; GC pauses and CPU are still there', async () => {
    const off = await startSegd({ env: { SEGD_LOOP_MONITOR_MS: '0' } });
    try {
      const text = await (await fetch(`${off.url}/metrics`)).text();
      expect(text).not.toContain('segd_event_loop_delay_seconds');
      expect(text).toContain('segd_gc_pause_seconds_count{thread="worker",worker="0",kind="scavenge"}');
      expect(text).toContain('segd_thread_cpu_seconds_total{thread="main"}');
    } finally {
      expect(await stopReport(off)).toEqual(CLEAN_STOP);
    }
  });
});

describe('loop stalls on the timeline', () => {
  it('each stall is an event of the 100 ms check it was seen in, a smaller one soon after a larger one too', async () => {
    const tl = new Timeline(256, 'test');
    const obs = new RuntimeObservers(new Registry(), { thread: 'main' }, tl, 1);
    const wall = (perf: number) => Date.now() - performance.now() + perf;
    /** Blocks this thread for `ms`; returns its span in wall-clock ms. */
    const stall = (ms: number): [number, number] => {
      const t0 = performance.now();
      while (performance.now() - t0 < ms);
      return [wall(t0), wall(performance.now())];
    };
    /** The loop-delay event whose window holds `span` and whose max is at least `minMs`. */
    const covering =
      ([from, to]: [number, number], minMs: number) =>
      (e: TimelineEvent) =>
        e.kind === 'loop-delay' && e.t <= from + 2 && e.t + e.ms >= to - 2 && Number(e.detail!.maxMs) >= minMs;
    try {
      await new Promise((r) => setTimeout(r, 150));
      const big = stall(40);
      await waitFor(async () => tl.since(0).events.some(covering(big, 35)), 5000);
      await new Promise((r) => setTimeout(r, 250));
      const small = stall(20);
      await waitFor(async () => tl.since(0).events.some(covering(small, 15)), 5000);
      for (const [span, min] of [
        [big, 35],
        [small, 15],
      ] as const) {
        const e = tl.since(0).events.find(covering(span, min))!;
        // The check interval (100 ms) that saw it, stretched by the stall and timer lateness: not the whole second.
        expect(e.ms).toBeLessThan(500);
        expect(Number(e.detail!.maxMs)).toBeLessThan(min + 200);
      }
    } finally {
      obs.stop();
    }
  });
});
