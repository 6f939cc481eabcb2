// Which server events line up with the slow answers of a run: every answer
// slower than the run's p99 is an interval (sent → answered, wall clock); it
// is "explained" by an event kind when it overlaps one of that kind's events
// widened by ±windowMs. Beside each kind's share of slow answers stands the
// share of the whole run its (widened) events cover: a kind that covers 40% of
// the run explains 40% of anything by chance, so `lift` (share ÷ time share)
// is what says "slow answers cluster around these events".
import type { SlowAnswers } from './recorder.js';

/** A timeline event as GET /v1/admin/timeline returns it (metrics/timeline.ts). */
export interface ServerEvent {
  t: number;
  ms: number;
  kind: string;
  thread: string;
  detail?: Record<string, string | number>;
}

export interface KindShare {
  /** Event kind; worker-thread events are kept apart: `gc (worker)`. */
  kind: string;
  /** Events of the kind inside the run's window. */
  events: number;
  /** Slow answers overlapping one of them (±windowMs), and their share of all slow answers. */
  samples: number;
  share: number;
  /** Share of the run's window the widened events cover. */
  timeShare: number;
  /** share ÷ timeShare: above 1, slow answers meet this kind more often than chance. */
  lift: number;
}

export interface Attribution {
  /** The run's p99: answers slower than this are the "slow" ones. */
  thresholdUs: number;
  windowMs: number;
  /** Slow answers considered. */
  samples: number;
  /** The generator kept fewer slow answers than there were (see SlowAnswers). */
  truncated: boolean;
  kinds: KindShare[];
  /** Slow answers overlapping no event at all. */
  unexplained: { samples: number; share: number };
}

/** The key an event is counted under. */
export const kindOf = (e: ServerEvent) => (e.thread === 'main' ? e.kind : `${e.kind} (worker)`);

/** Sorted, disjoint [from, to] intervals covering the given ones. */
function merge(intervals: Array<[number, number]>): Array<[number, number]> {
  intervals.sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of intervals) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Does [a, b] overlap an interval of `merged` (sorted, disjoint)? */
function overlaps(merged: Array<[number, number]>, a: number, b: number): boolean {
  let lo = 0;
  let hi = merged.length;
  // The first interval that ends at or after a.
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (merged[mid]![1] < a) lo = mid + 1;
    else hi = mid;
  }
  return lo < merged.length && merged[lo]![0] <= b;
}

export function attribute(
  slow: SlowAnswers,
  events: readonly ServerEvent[],
  o: { thresholdUs: number; windowMs: number; fromMs: number; toMs: number },
): Attribution {
  const span = Math.max(1, o.toMs - o.fromMs);
  const byKind = new Map<string, Array<[number, number]>>();
  for (const e of events) {
    const from = e.t - o.windowMs;
    const to = e.t + e.ms + o.windowMs;
    if (to < o.fromMs || from > o.toMs) continue;
    const k = kindOf(e);
    let list = byKind.get(k);
    if (!list) byKind.set(k, (list = []));
    list.push([from, to]);
  }
  const kinds = [...byKind.entries()].map(([kind, list]) => {
    const merged = merge(list.map(([a, b]) => [a, b]));
    let covered = 0;
    for (const [a, b] of merged) covered += Math.max(0, Math.min(b, o.toMs) - Math.max(a, o.fromMs));
    return { kind, events: list.length, merged, timeShare: Math.min(1, covered / span), samples: 0 };
  });
  let total = 0;
  let unexplained = 0;
  for (let i = 0; i < slow.us.length; i++) {
    const us = slow.us[i]!;
    if (us <= o.thresholdUs) continue;
    total++;
    const end = slow.endMs[i]!;
    const start = end - us / 1000;
    let any = false;
    for (const k of kinds)
      if (overlaps(k.merged, start, end)) {
        k.samples++;
        any = true;
      }
    if (!any) unexplained++;
  }
  const share = (n: number) => (total > 0 ? n / total : 0);
  return {
    thresholdUs: o.thresholdUs,
    windowMs: o.windowMs,
    samples: total,
    truncated: slow.truncated,
    kinds: kinds
      .map((k) => ({
        kind: k.kind,
        events: k.events,
        samples: k.samples,
        share: share(k.samples),
        timeShare: k.timeShare,
        lift: k.timeShare > 0 ? share(k.samples) / k.timeShare : 0,
      }))
      .sort((a, b) => b.share - a.share || a.kind.localeCompare(b.kind)),
    unexplained: { samples: unexplained, share: share(unexplained) },
  };
}
