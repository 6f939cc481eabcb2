// A tail scenario measured in rounds: N short runs of segd, each followed by
// its control, pooled over the rounds the controls vouch for. A VM's host
// noise comes in bursts of seconds (in one 15 s run at 20k req/s the
// control's per-second p99 ranged 0.19–2.5 ms), so a long run is seldom
// valid as a whole while many of its stretches are. A round counts when the
// controls measured right before and right after it both pass the rule of
// control.ts, and its own requests went out on time; the pooled figures are
// the percentiles of all the latencies of those rounds together (the clients'
// fine histograms, ≤ 0.1% wide), not an average of percentiles.
import { generatorBoundWhy, type Measured } from './control.js';
import type { Percentiles } from './recorder.js';

/** A fine latency histogram: [bucket top µs, count], ascending. */
export type Counts = ReadonlyArray<readonly [number, number]>;

/** One measured run and its fine histogram (absent when the generator keeps none). */
export interface RoundRun {
  m: Measured;
  counts?: Counts;
}

export interface PooledSide extends Percentiles {
  requests: number;
}

export interface Pooled {
  rounds: number;
  /** 1-based numbers of the rounds that count. */
  valid: number[];
  /** Over the valid rounds: segd's latencies, and those of the controls around them (absent when no round counts). */
  run?: PooledSide;
  control?: PooledSide;
  /** Why each round that does not count was left out. */
  leftOut: Array<{ round: number; why: string[] }>;
}

/** Percentiles of a set of histograms taken together. */
export function pooledPercentiles(list: Counts[]): PooledSide | undefined {
  const byTop = new Map<number, number>();
  for (const counts of list) for (const [top, n] of counts) byTop.set(top, (byTop.get(top) ?? 0) + n);
  const sorted = [...byTop.entries()].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let sum = 0;
  for (const [top, n] of sorted) {
    total += n;
    sum += top * n;
  }
  if (!total) return undefined;
  const max = sorted[sorted.length - 1]![0];
  // The same rank rule as the client's own percentiles: the first bucket holding the ceil(p × n)-th value.
  const at = (p: number) => {
    const want = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (const [top, n] of sorted) {
      seen += n;
      if (seen >= want) return top;
    }
    return max;
  };
  return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max, mean: sum / total, requests: total };
}

/** The control's side of the rule only (its p99 and its send lag), for a control that brackets a round. */
const controlWhy = (c: Measured | undefined) =>
  generatorBoundWhy({}, c).filter((w) => !w.startsWith('this run') && !w.startsWith('the hypervisor'));

/**
 * Which rounds count and their pooled figures. `controls` has one more entry
 * than `runs`: controls[i] is measured just before runs[i] and controls[i+1]
 * just after it. A round counts when both of its controls pass the rule and
 * its own requests went out on time; rounds without a histogram (wrk, autocannon
 * keep none) cannot be pooled and are left out with a reason.
 */
export function poolRounds(runs: RoundRun[], controls: Array<RoundRun | undefined>): Pooled {
  const valid: number[] = [];
  const leftOut: Pooled['leftOut'] = [];
  const bracketing = new Set<number>();
  runs.forEach((r, i) => {
    const why = generatorBoundWhy(r.m, controls[i + 1]?.m).filter((w) => !w.startsWith('the hypervisor'));
    why.push(...controlWhy(controls[i]?.m).map((w) => `before it: ${w}`));
    if (!r.counts || !controls[i]?.counts || !controls[i + 1]?.counts)
      why.push('no latency histogram to pool (only the open-loop clients keep one)');
    if (why.length) {
      leftOut.push({ round: i + 1, why });
      return;
    }
    valid.push(i + 1);
    bracketing.add(i).add(i + 1);
  });
  const run = pooledPercentiles(valid.map((n) => runs[n - 1]!.counts!));
  const control = pooledPercentiles([...bracketing].map((i) => controls[i]!.counts!));
  return { rounds: runs.length, valid, ...(run ? { run } : {}), ...(control ? { control } : {}), leftOut };
}
