// The loadtest's attribution of slow answers to server events, on synthetic
// answers and events; the event lanes of the report's latency chart; and the
// timeline ring on its own (bounded, drained once).
import { describe, expect, it } from 'vitest';
import { attribute, type ServerEvent } from '../src/loadtest/attribution.js';
import { timelineSvg } from '../src/loadtest/report.js';
import { Timeline } from '../src/metrics/timeline.js';

const ev = (kind: string, t: number, ms: number, thread = 'main'): ServerEvent => ({ kind, t, ms, thread });
/** Answers as [ended at (ms), latency (µs)]. */
const answers = (list: Array<[number, number]>) => ({
  endMs: list.map((a) => a[0]),
  us: list.map((a) => a[1]),
  truncated: false,
});

describe('attribute', () => {
  const events = [
    ev('commit', 1000, 5),
    ev('commit', 5000, 5),
    ev('commit', 5003, 5), // overlaps the one before: time counted once
    ev('gc', 3000, 2, 'worker 1'),
    ev('gc', 1001, 1),
    ev('sweep', 20_000, 50), // after the run
  ];
  const slow = answers([
    [1003, 2000], // [1001, 1003]: commit and main gc
    [3001, 1500], // [2999.5, 3001]: worker gc
    [7000, 5000], // nothing near
    [1010, 1200], // [1008.8, 1010]: 3.8 ms after the commit ended
    [1002, 500], // fast: not counted
    [5004, 1000], // exactly the threshold: not slower than it
  ]);
  const o = { thresholdUs: 1000, windowMs: 1, fromMs: 0, toMs: 10_000 };

  it('counts each slow answer under every kind it overlaps, and the rest as unexplained', () => {
    const a = attribute(slow, events, o);
    expect(a.samples).toBe(4);
    const k = Object.fromEntries(a.kinds.map((x) => [x.kind, x]));
    expect(Object.keys(k).sort()).toEqual(['commit', 'gc', 'gc (worker)']);
    expect(k.commit!.samples).toBe(1);
    expect(k.commit!.events).toBe(3);
    expect(k.gc!.samples).toBe(1);
    expect(k['gc (worker)']!.samples).toBe(1);
    expect(a.unexplained).toEqual({ samples: 2, share: 0.5 });
    expect(k.commit!.share).toBe(0.25);
    // Widened by 1 ms: [999, 1006] + [4999, 5009] (two merged) = 17 ms of 10 s.
    expect(k.commit!.timeShare).toBeCloseTo(17 / 10_000, 9);
    expect(k.commit!.lift).toBeCloseTo(0.25 / (17 / 10_000), 6);
    // Sorted by share, then name.
    expect(a.kinds.map((x) => x.kind)).toEqual(['commit', 'gc', 'gc (worker)']);
  });

  it('a wider window explains more', () => {
    const a = attribute(slow, events, { ...o, windowMs: 4 });
    expect(a.kinds.find((x) => x.kind === 'commit')!.samples).toBe(2);
    expect(a.unexplained.samples).toBe(1);
  });

  it('with no events, everything slow is unexplained; with no slow answers, nothing is', () => {
    expect(attribute(slow, [], o).unexplained).toEqual({ samples: 4, share: 1 });
    const none = attribute(answers([[1000, 10]]), events, o);
    expect(none.samples).toBe(0);
    expect(none.unexplained).toEqual({ samples: 0, share: 0 });
    expect(none.kinds.every((k) => k.share === 0)).toBe(true);
  });
});

describe('latency chart with server events', () => {
  const tl = [1, 2, 3, 4].map((t) => ({ t, requests: 100, rps: 100, errors: 0, p50Us: 50, p99Us: 900, maxUs: 2000 }));

  it('draws a lane per kind and each event where it happened', () => {
    const svg = timelineSvg(tl, 'x', {
      startMs: 10_000,
      events: [ev('commit', 12_000, 250), ev('gc', 11_000, 3, 'worker 0')],
    });
    const lanes = [...svg.matchAll(/class="lane">([^<]+)</g)].map((m) => m[1]);
    expect(lanes).toEqual(['commit', 'gc (worker)']);
    // 4 seconds over the plot's width: 2 s in is half-way, 250 ms is 1/16 of it.
    const W = 640 - 56 - 56;
    const rect = /<rect class="ev" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"[^>]*><title>2\.000 s: commit/.exec(svg)!;
    expect(Number(rect[1])).toBeCloseTo(56 + W / 2, 0);
    expect(Number(rect[2])).toBeCloseTo(W / 16, 0);
    expect(svg).toContain('1.000 s: gc on worker 0, 3 ms');
  });

  it('draws no lanes without events', () => {
    expect(timelineSvg(tl, 'x')).not.toContain('class="lane"');
    expect(timelineSvg(tl, 'x', { startMs: 0, events: [] })).not.toContain('class="lane"');
  });
});

describe('Timeline ring', () => {
  it('keeps the last `capacity` events, and drains each once', () => {
    const t = new Timeline(4, 'worker 3');
    const t0 = performance.now() - 100;
    for (let i = 0; i < 3; i++) t.add('gc', t0 + i, i);
    expect(t.drain().map((e) => e.ms)).toEqual([0, 1, 2]);
    expect(t.drain()).toEqual([]);
    for (let i = 3; i < 10; i++) t.add('gc', t0 + i, i);
    // Overwritten before they were drained: lost.
    expect(t.drain().map((e) => e.ms)).toEqual([6, 7, 8, 9]);
    const a = t.since(0);
    expect(a.events.map((e) => e.seq)).toEqual([7, 8, 9, 10]);
    expect(a).toMatchObject({ capacity: 4, recorded: 10, oldestSeq: 7 });
    expect(a.events.every((e) => e.thread === 'worker 3')).toBe(true);
  });

  it('appends another thread’s events with its own order', () => {
    const main = new Timeline(8);
    const w = new Timeline(8, 'worker 0');
    w.add('loop-delay', performance.now() - 100, 100, { maxMs: 7 });
    main.mark('commit', performance.now() - 2);
    main.append(w.drain());
    const a = main.since(0);
    expect(a.events.map((e) => [e.kind, e.thread, e.seq])).toEqual([
      ['loop-delay', 'worker 0', 2],
      ['commit', 'main', 1],
    ]);
    expect(a.events[0]!.detail).toEqual({ maxMs: 7 });
  });
});
