// The writer thread's transactions ("slices" of loader work): wall time and the
// thread's own CPU time of each, and a commit event on the timeline. CPU comes
// from the thread's schedstat (runtime.ts): process.cpuUsage() would add every
// worker's CPU, and event-loop utilisation counts time blocked in fsync as busy.
// A slice whose wall time is far above its CPU time waited (disk, or a core
// taken by a worker); one whose CPU is high competed with lookups for a core.
import { performance } from 'node:perf_hooks';
import { Histogram } from 'prom-client';
import { threadCpuSeconds } from './runtime.js';
import { timeline } from './timeline.js';

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

/** Registered by ProcessMetrics on its registry; module state, as the writer's transactions are the thread's. */
export const transactionSeconds = new Histogram({
  name: 'segd_loader_transaction_seconds',
  help: 'Wall time of each writer transaction (every source, sweep and snapshot flip included), apply and commit',
  buckets: BUCKETS,
  registers: [],
});
export const transactionCpuSeconds = new Histogram({
  name: 'segd_loader_transaction_cpu_seconds',
  help: "The writer thread's own CPU time during each writer transaction (Linux schedstat)",
  buckets: BUCKETS,
  registers: [],
});

export interface SliceStart {
  perf: number;
  cpu: number | null;
}

/** Call before a writer transaction. */
export function sliceBegins(): SliceStart {
  return { perf: performance.now(), cpu: threadCpuSeconds() };
}

/** Call once it committed; `records`: the feed changes it applied, when it applied any. */
export function sliceCommitted(s: SliceStart, records?: number): void {
  const ms = performance.now() - s.perf;
  const cpu = s.cpu === null ? null : (threadCpuSeconds() ?? s.cpu) - s.cpu;
  transactionSeconds.observe(ms / 1000);
  if (cpu !== null) transactionCpuSeconds.observe(cpu);
  const detail: Record<string, number> = {};
  if (records !== undefined) detail.records = records;
  if (cpu !== null) detail.cpuMs = Math.round(cpu * 1e6) / 1e3;
  timeline.add('commit', s.perf, ms, detail);
}
