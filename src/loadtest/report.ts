// The run's report: DIR/results.json for machines and DIR/report.html for
// people — one self-contained page (inline CSS and SVG, no scripts, no
// network) with the verdict, the gate table, per scenario a latency-over-time
// chart and a latency histogram, the comparison, server-side counters and the
// settings.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmtPct, fmtUs, fmtInt as int } from './gate.js';
import {
  countedByPool,
  pooledLine,
  scenarioLabel,
  type PooledScenario,
  type Results,
  type ScenarioResult,
} from './runner.js';
import { CONTROL_P99_LIMIT_US } from './control.js';
import type { CanaryRow } from './canary.js';
import type { Bucket, Second } from './recorder.js';
import { kindOf, type Attribution, type ServerEvent } from './attribution.js';

const ENTITY: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ENTITY[c]!);

const W = 640;
const H = 220;
const PAD = { l: 56, r: 56, t: 14, b: 30 };

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/** Colours of the server's event kinds on the latency chart (worker-thread events share their kind's). */
const EVENT_COLOURS: Record<string, string> = {
  commit: '#7c3aed',
  'snapshot-flip': '#0e7490',
  sweep: '#a16207',
  'filter-save': '#be185d',
  'registry-reload': '#4d7c0f',
  'metrics-scrape': '#64748b',
  gc: '#dc2626',
  'loop-delay': '#ea580c',
};
const LANE = 9;
const LANE_LABEL_W = 44;

/** The server's events under the chart: one lane per kind, each event a bar from its start for its duration. */
function eventLanes(events: ServerEvent[], startMs: number, n: number, iw: number, top: number): [string, number] {
  const lanes = [...new Set(events.map(kindOf))].sort();
  const x = (ms: number) => PAD.l + Math.min(Math.max(((ms - startMs) / 1000) * (iw / n), 0), iw);
  const svg = lanes
    .map((lane, i) => {
      const y = top + i * LANE;
      const colour = EVENT_COLOURS[lane.replace(/ \(worker\)$/, '')] ?? '#334155';
      const marks = events
        .filter((e) => kindOf(e) === lane)
        .map((e) => {
          const x0 = x(e.t);
          const w = Math.max(1.2, x(e.t + e.ms) - x0);
          const detail = e.detail
            ? ' ' +
              Object.entries(e.detail)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')
            : '';
          return `<rect class="ev" x="${x0.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${LANE - 2}" fill="${colour}"><title>${esc(`${((e.t - startMs) / 1000).toFixed(3)} s: ${e.kind} on ${e.thread}, ${e.ms} ms${detail}`)}</title></rect>`;
        })
        .join('');
      return `<text x="${PAD.l - 6}" y="${y + LANE - 2}" text-anchor="end" class="lane">${esc(lane)}</text>${marks}`;
    })
    .join('');
  return [svg, lanes.length * LANE];
}

/**
 * p50 and p99 per second (left axis, µs) over requests per second (bars, right
 * axis); with the server's events (startMs: wall clock of the first second),
 * a lane per event kind under the time axis.
 */
export function timelineSvg(tl: Second[], title: string, server?: { startMs: number; events: ServerEvent[] }): string {
  if (!tl.length) return '<p class="muted">no answers to chart</p>';
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const yMax = niceMax(Math.max(...tl.map((s) => s.p99Us)));
  const rMax = niceMax(Math.max(...tl.map((s) => s.rps)));
  const n = tl.length;
  // One slot per second: the bar fills most of it and the latency points sit in its middle.
  const x = (i: number) => PAD.l + ((i + 0.5) * iw) / n;
  const y = (us: number) => PAD.t + ih - (Math.min(us, yMax) / yMax) * ih;
  const bw = Math.max(1, (iw / n) * 0.8);
  const bars = tl
    .map((s, i) => {
      const h = (s.rps / rMax) * ih;
      return `<rect x="${(x(i) - bw / 2).toFixed(1)}" y="${(PAD.t + ih - h).toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" class="rps"><title>${s.t} s: ${int(s.rps)} req/s (${int(s.requests)} answers), ${s.errors} errors</title></rect>`;
    })
    .join('');
  const line = (f: (s: Second) => number, cls: string) =>
    `<polyline class="${cls}" points="${tl.map((s, i) => `${x(i).toFixed(1)},${y(f(s)).toFixed(1)}`).join(' ')}"/>` +
    tl
      .map(
        (s, i) =>
          `<circle class="${cls}" cx="${x(i).toFixed(1)}" cy="${y(f(s)).toFixed(1)}" r="2.2"><title>${s.t} s: ${cls} ${fmtUs(f(s))}</title></circle>`,
      )
      .join('');
  const errs = tl
    .filter((s) => s.errors > 0)
    .map(
      (s) =>
        `<text class="err" x="${x(s.t - 1).toFixed(1)}" y="${PAD.t + 10}" text-anchor="middle">×<title>${s.errors} errors</title></text>`,
    )
    .join('');
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const yy = PAD.t + ih - f * ih;
      return `<line class="grid" x1="${PAD.l}" x2="${W - PAD.r}" y1="${yy}" y2="${yy}"/><text x="${PAD.l - 6}" y="${yy + 4}" text-anchor="end">${esc(fmtUs(f * yMax))}</text><text x="${W - PAD.r + 6}" y="${yy + 4}">${int(f * rMax)}</text>`;
    })
    .join('');
  const xt = [...new Set([0, Math.floor((n - 1) / 2), n - 1])]
    .map((i) => `<text x="${x(i)}" y="${H - 10}" text-anchor="middle">${tl[i]!.t} s</text>`)
    .join('');
  const [lanes, lanesH] = server?.events.length ? eventLanes(server.events, server.startMs, n, iw, H + 2) : ['', 0];
  const h = H + (lanesH ? lanesH + 6 : 0);
  // Lane names are wider than the left axis: the view starts further left.
  const x0 = lanesH ? -LANE_LABEL_W : 0;
  return `<svg viewBox="${x0} 0 ${W - x0} ${h}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>${ticks}${bars}${line((s) => s.p50Us, 'p50')}${line((s) => s.p99Us, 'p99')}${errs}${xt}${lanes}</svg>
<div class="legend"><span class="k p50"></span>p50 <span class="k p99"></span>p99 <span class="k rps"></span>requests/s (right axis) <span class="err">×</span> second with errors${lanesH ? ' · under the axis: the server’s events (hover for details)' : ''}</div>`;
}

/** Latency distribution: log-spaced buckets (10 per decade), share of answers, with p50/p99/p99.9 marked. */
export function histogramSvg(buckets: Bucket[], marks: Array<[string, number]>, title: string): string {
  if (!buckets.length) return '<p class="muted">no answers to chart</p>';
  const iw = W - PAD.l - 16;
  const ih = H - PAD.t - PAD.b;
  const total = buckets.reduce((a, b) => a + b.count, 0);
  const lo = Math.log10(buckets[0]!.fromUs);
  const hi = Math.max(lo + 1, Math.log10(buckets[buckets.length - 1]!.toUs));
  const x = (us: number) => PAD.l + ((Math.log10(Math.max(us, 1)) - lo) / (hi - lo)) * iw;
  const yMax = niceMax(Math.max(...buckets.map((b) => b.count / total)));
  const y = (share: number) => PAD.t + ih - (share / yMax) * ih;
  const bars = buckets
    .map((b) => {
      const share = b.count / total;
      return `<rect class="bar" x="${x(b.fromUs).toFixed(1)}" y="${y(share).toFixed(1)}" width="${Math.max(1, x(b.toUs) - x(b.fromUs) - 1).toFixed(1)}" height="${(PAD.t + ih - y(share)).toFixed(1)}"><title>${esc(fmtUs(b.fromUs))}–${esc(fmtUs(b.toUs))}: ${int(b.count)} (${(share * 100).toFixed(2)}%)</title></rect>`;
    })
    .join('');
  const decades: string[] = [];
  for (let d = Math.ceil(lo); d <= Math.floor(hi); d++)
    decades.push(
      `<line class="grid" x1="${x(10 ** d)}" x2="${x(10 ** d)}" y1="${PAD.t}" y2="${PAD.t + ih}"/><text x="${x(10 ** d)}" y="${H - 10}" text-anchor="middle">${esc(fmtUs(10 ** d))}</text>`,
    );
  const yt = [0, 0.5, 1]
    .map(
      (f) =>
        `<text x="${PAD.l - 6}" y="${y(f * yMax) + 4}" text-anchor="end">${(f * yMax * 100).toFixed(f ? 1 : 0)}%</text>`,
    )
    .join('');
  const mk = marks
    .map(
      ([name, us], i) =>
        `<line class="mark" x1="${x(us)}" x2="${x(us)}" y1="${PAD.t}" y2="${PAD.t + ih}"/><text class="mark" x="${x(us) + 3}" y="${PAD.t + 10 + i * 12}">${esc(name)} ${esc(fmtUs(us))}</text>`,
    )
    .join('');
  return `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>${decades.join('')}${yt}${bars}${mk}</svg>`;
}

function compareSvg(rows: Array<[string, number]>): string {
  const cw = 440;
  const max = Math.max(...rows.map((r) => r[1]));
  const h = 24 * rows.length + 6;
  const body = rows
    .map(([name, rps], i) => {
      const w = (rps / max) * (cw - 210);
      return `<text x="0" y="${i * 24 + 18}">${esc(name)}</text><rect class="${name === 'segd' ? 'p99' : 'bar'}" x="100" y="${i * 24 + 6}" width="${w.toFixed(1)}" height="16"/><text x="${(106 + w).toFixed(1)}" y="${i * 24 + 18}">${int(rps)}/s</text>`;
    })
    .join('');
  return `<svg class="cmp" viewBox="0 0 ${cw} ${h}" role="img" aria-label="requests per second by server">${body}</svg>`;
}

const anchor = (r: ScenarioResult) =>
  `${r.scenario}-${r.phase ?? 'run'}-${r.target}${r.control ? '-control' : ''}${r.round ? `-r${r.round}` : ''}`;
/** "segd", "baseline (round 2)", "hello-world (control, round 1)". */
const targetLabel = (r: ScenarioResult) => {
  const bits = [r.control ? 'control' : '', r.round ? `round ${r.round}` : ''].filter(Boolean);
  return bits.length ? `${r.target} (${bits.join(', ')})` : r.target;
};

const SIDE_CLASS = { candidate: 'p99', baseline: 'base' } as const;

/**
 * Candidate and baseline on one chart: each one's p99 per second over its
 * rounds laid end to end (the rounds alternate in time, so a disturbance
 * shows on whichever ran then).
 */
export function overlaySvg(series: Array<{ side: 'candidate' | 'baseline'; p99: number[] }>, title: string): string {
  const n = Math.max(0, ...series.map((s) => s.p99.length));
  if (!n) return '<p class="muted">no answers to chart</p>';
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const yMax = niceMax(Math.max(...series.flatMap((s) => s.p99)));
  const x = (i: number) => PAD.l + ((i + 0.5) * iw) / n;
  const y = (us: number) => PAD.t + ih - (Math.min(us, yMax) / yMax) * ih;
  const lines = series
    .map(
      (s) =>
        `<polyline class="${SIDE_CLASS[s.side]}" points="${s.p99.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"><title>${s.side}</title></polyline>`,
    )
    .join('');
  const ticks = [0, 0.5, 1]
    .map((f) => {
      const yy = PAD.t + ih - f * ih;
      return `<line class="grid" x1="${PAD.l}" x2="${W - PAD.r}" y1="${yy}" y2="${yy}"/><text x="${PAD.l - 6}" y="${yy + 4}" text-anchor="end">${esc(fmtUs(f * yMax))}</text>`;
    })
    .join('');
  return `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>${ticks}${lines}<text x="${PAD.l}" y="${H - 10}">measured seconds, rounds end to end</text></svg>
<div class="legend"><span class="k p99"></span>candidate p99 <span class="k base"></span>baseline p99</div>`;
}

/**
 * A scenario measured in rounds: each run's p99 in the order they ran
 * (control, segd, control, …) on a log scale, the control rule's limit as a
 * dashed line, and the segd rounds that count filled.
 */
export function roundsSvg(p: PooledScenario, results: ScenarioResult[]): string {
  const seq = results.filter((r) => r.scenario === p.scenario && r.round !== undefined && r.figures);
  if (!seq.length) return '<p class="muted">no rounds to chart</p>';
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const p99s = seq.map((r) => r.figures!.latencyUs.p99);
  const lo = Math.log10(Math.max(10, Math.min(...p99s, CONTROL_P99_LIMIT_US) / 2));
  const hi = Math.log10(Math.max(...p99s, CONTROL_P99_LIMIT_US) * 1.5);
  const y = (us: number) => PAD.t + ih - ((Math.log10(Math.max(us, 1)) - lo) / (hi - lo)) * ih;
  const bw = iw / seq.length;
  const bars = seq
    .map((r, i) => {
      const v = r.figures!.latencyUs.p99;
      const cls = r.control ? 'bar' : p.valid.includes(r.round!) ? 'p99' : 'p99 left';
      const top = y(v);
      return `<rect class="${cls}" x="${(PAD.l + i * bw + bw * 0.15).toFixed(1)}" y="${top.toFixed(1)}" width="${(bw * 0.7).toFixed(1)}" height="${(PAD.t + ih - top).toFixed(1)}"><title>${esc(r.control ? `control after round ${r.round}` : `segd round ${r.round}`)}: p99 ${esc(fmtUs(v))}</title></rect>`;
    })
    .join('');
  const ticks = [100, 300, 1000, 3000, 10_000, 30_000, 100_000]
    .filter((us) => Math.log10(us) >= lo && Math.log10(us) <= hi)
    .map(
      (us) =>
        `<line class="grid" x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(us).toFixed(1)}" y2="${y(us).toFixed(1)}"/><text x="${PAD.l - 6}" y="${(y(us) + 4).toFixed(1)}" text-anchor="end">${esc(fmtUs(us))}</text>`,
    )
    .join('');
  const limit = y(CONTROL_P99_LIMIT_US).toFixed(1);
  return `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="p99 of each round"><title>p99 of each run, in the order they ran</title>${ticks}${bars}<line class="mark" x1="${PAD.l}" x2="${W - PAD.r}" y1="${limit}" y2="${limit}"/><text class="mark" x="${W - PAD.r}" y="${(Number(limit) - 4).toFixed(1)}" text-anchor="end">control limit ${esc(fmtUs(CONTROL_P99_LIMIT_US))}</text><text x="${PAD.l}" y="${H - 10}">runs in order: control, segd round 1, control, segd round 2, …</text></svg>
<div class="legend"><span class="k sw" style="background:#7c93c3"></span>control <span class="k sw p99"></span>segd, counted <span class="k sw p99" style="opacity:.3"></span>segd, left out</div>`;
}

function roundsSection(res: Results): string {
  if (!res.pooled?.length) return '';
  return `<h2>Rounds</h2><p class="muted">Each scenario ran as short rounds between hello-world controls; a round counts when the controls before and after it pass the control rule and its requests went out on time. The figures that count are pooled over those rounds.</p>${res.pooled
    .map(
      (p) =>
        `<figure><figcaption>${esc(p.scenario)}</figcaption><p>${esc(pooledLine(p))}</p>${roundsSvg(p, res.results)}${p.leftOut.length ? `<details><summary>${p.leftOut.length} round(s) left out</summary><ul>${p.leftOut.map((l) => `<li>round ${l.round}: ${esc(l.why.join('; '))}</li>`).join('')}</ul></details>` : ''}</figure>`,
    )
    .join('')}`;
}

function canarySection(res: Results): string {
  const c = res.canary;
  if (!c) return '';
  const cls = c.verdict === 'pass' ? 'pass' : 'fail';
  const figs: Array<[string, (s: CanaryRow['candidate']) => string, keyof CanaryRow['ratio'] | null]> = [
    ['p50', (s) => fmtUs(s.latencyUs.p50), 'p50'],
    ['p90', (s) => fmtUs(s.latencyUs.p90), 'p90'],
    ['p99', (s) => fmtUs(s.latencyUs.p99), 'p99'],
    ['p99.9', (s) => fmtUs(s.latencyUs.p999), 'p999'],
    ['max', (s) => fmtUs(s.latencyUs.max), 'max'],
    ['requests/s', (s) => int(s.rps), 'rps'],
    ['errors', (s) => fmtPct(s.errorRate), null],
  ];
  const tables = c.rows
    .map((row) => {
      const body = figs
        .map(
          ([name, f, k]) =>
            `<tr><td>${esc(name)}</td><td class="num">${esc(f(row.candidate))}</td><td class="num">${esc(f(row.baseline))}</td><td class="num">${k ? `<b>${row.ratio[k].toFixed(2)}×</b>` : ''}</td></tr>`,
        )
        .join('');
      const runs = (t: string) =>
        res.results
          .filter((r) => r.scenario === row.scenario && r.target === t && !r.control && r.figures)
          .flatMap((r) => r.figures!.timeline.map((s) => s.p99Us));
      return `<figure><figcaption>${esc(row.scenario)} — medians over ${row.candidate.rounds} and ${row.baseline.rounds} rounds</figcaption>
<table class="grid"><tr><th>figure</th><th>candidate</th><th>baseline</th><th>candidate / baseline</th></tr>${body}</table>
${overlaySvg(
  [
    { side: 'candidate', p99: runs('segd') },
    { side: 'baseline', p99: runs('baseline') },
  ],
  `${row.scenario}: p99 per second, candidate and baseline`,
)}</figure>`;
    })
    .join('');
  const answers = c.answers
    .map(
      (a) =>
        `<tr class="${a.error || (a.differing && !c.expectDiff) ? 'fail' : 'pass'}"><td>${esc(a.route)}</td><td class="num">${int(a.compared)}</td><td class="num">${int(a.differing)}</td><td>${
          a.error
            ? esc(`not compared: ${a.error}`)
            : a.examples.length
              ? `<details><summary>${a.examples.length} of them</summary><table class="grid"><tr><th>key</th><th>candidate</th><th>baseline</th></tr>${a.examples
                  .map(
                    (e) =>
                      `<tr><td><code>${esc(e.key)}</code></td><td><code>${esc(e.candidate)}</code></td><td><code>${esc(e.baseline)}</code></td></tr>`,
                  )
                  .join('')}</table></details>`
              : 'identical'
        }</td></tr>`,
    )
    .join('');
  return `<h2>Candidate against baseline</h2>
<p class="${cls}"><b>${esc(c.line)}</b></p>
<p class="muted">Candidate ${esc(res.settings.target)}, baseline ${esc(c.baseline)}: the same scenarios and keys, ${c.rounds} alternating rounds each (A B A B …); each figure is the median of its rounds.</p>
<div class="charts">${tables}</div>
<h3>Same answers</h3>
<p class="muted">Asked of both before any load, segments sorted${c.expectDiff ? '; differences expected (--expect-diff)' : ''}.</p>
<table class="grid"><tr><th>route</th><th>keys</th><th>differing</th><th></th></tr>${answers}</table>`;
}

function errorsText(r: ScenarioResult): string {
  const f = r.figures!;
  const parts = Object.entries(f.errors.status).map(([k, v]) => `${k}: ${int(v)}`);
  if (f.errors.timeouts) parts.push(`timeouts: ${int(f.errors.timeouts)}`);
  if (f.errors.connection) parts.push(`connection: ${int(f.errors.connection)}`);
  if (f.errors.other) parts.push(`other: ${int(f.errors.other)}`);
  return parts.length ? `${int(f.errorCount)} (${fmtPct(f.errorRate)}) — ${parts.join(', ')}` : 'none';
}

function scenarioSection(r: ScenarioResult): string {
  const head = `<h2 id="${esc(anchor(r))}">${esc(scenarioLabel(r))} <span class="muted">→ ${esc(targetLabel(r))}</span></h2><p class="muted">${esc(r.what)}</p>`;
  if (r.status !== 'ran' || !r.figures)
    return `<section>${head}<p class="${r.status === 'skipped' ? 'skip' : 'fail'}">${esc(r.status.toUpperCase())}: ${esc(r.reason ?? '')}</p></section>`;
  const f = r.figures;
  const l = f.latencyUs;
  const rows: Array<[string, string]> = [
    ['requests', `${int(f.requests)} in ${f.seconds.toFixed(1)} s`],
    ['requests/s', int(f.rps) + (r.keysPerS && r.keysPerS !== f.rps ? ` (${int(r.keysPerS)} keys/s)` : '')],
    ['p50 / p90 / p99 / p99.9 / max', [l.p50, l.p90, l.p99, l.p999, l.max].map(fmtUs).join(' / ')],
    ['errors', errorsText(r)],
    ['generator', r.drive?.generator ?? ''],
    ['latency source', r.drive?.latencySource ?? ''],
  ];
  if (r.drive?.autocannonMs) {
    const a = r.drive.autocannonMs;
    rows.push([
      'autocannon’s own summary (whole ms)',
      [a.p50, a.p90, a.p99, a.p999, a.max].map((v) => `${Math.round(v / 1000)} ms`).join(' / '),
    ]);
  }
  if (r.drive?.sendLagUs)
    rows.push([
      'client send lag p99 / max',
      `${fmtUs(r.drive.sendLagUs.p99)} / ${fmtUs(r.drive.sendLagUs.max)} (how late the generator itself was)`,
    ]);
  if (r.stealPct)
    rows.push([
      'host steal (hypervisor)',
      Object.entries(r.stealPct)
        .map(([cpu, pct]) => `${cpu} ${pct}%`)
        .join(', ') + ' of CPU time the VM did not get',
    ]);
  if (r.background) rows.push([r.background.label, r.background.text]);
  let server = '';
  if (r.server) {
    const v = r.server.view;
    const bits: string[] = [];
    if (v.hitShare !== undefined) bits.push(`lookups ${int(v.lookups!)}, hit share ${(v.hitShare * 100).toFixed(1)}%`);
    if (v.meanUs !== undefined) bits.push(`mean time in the worker ${fmtUs(v.meanUs)}`);
    if (v.aborted) bits.push(`${int(v.aborted)} aborted`);
    rows.push(['server (/metrics diff)', (bits.join('; ') || '–') + (r.server.error ? ` (${r.server.error})` : '')]);
    const g = r.server.gaugesAfter ?? {};
    const mb = (k: string) => (g[k] === undefined ? '?' : `${int(g[k] / 1048576)} MB`);
    if (Object.keys(g).length) {
      rows.push([
        'server memory after',
        `RSS ${mb('segd_process_resident_memory_bytes')} (includes mapped LMDB pages), heap used ${mb('segd_nodejs_heap_size_used_bytes')}; store ${g.segd_store_users === undefined ? '?' : int(g.segd_store_users)} users, ${mb('segd_store_file_bytes')} file`,
      ]);
    }
    const d = Object.entries(r.server.diff);
    if (d.length)
      server = `<details><summary>segd_* counters, after − before (${d.length})</summary><table class="kv">${d.map(([k, n]) => `<tr><td><code>${esc(k)}</code></td><td class="num">${esc(n.toLocaleString('en-US'))}</td></tr>`).join('')}</table></details>`;
  }
  const warnings = (r.warnings ?? []).map((w) => `<p class="skip"><b>Note:</b> ${esc(w)}</p>`).join('');
  return `<section>${head}${warnings}
<table class="kv">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<div class="charts"><figure><figcaption>Latency over time</figcaption>${timelineSvg(
    f.timeline,
    `${r.scenario} latency over time`,
    r.events && f.startMs !== undefined ? { startMs: f.startMs, events: r.events } : undefined,
  )}</figure>
<figure><figcaption>Latency histogram</figcaption>${histogramSvg(
    f.histogram,
    [
      ['p50', l.p50],
      ['p99', l.p99],
      ['p99.9', l.p999],
    ],
    `${r.scenario} latency histogram`,
  )}</figure></div>
${r.attribution ? attributionTable(r.attribution) : ''}${server}</section>`;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Which server events the answers slower than p99 overlapped (attribution.ts). */
export function attributionTable(a: Attribution): string {
  const rows = a.kinds
    .map(
      (k) =>
        `<tr><td>${esc(k.kind)}</td><td class="num">${int(k.events)}</td><td class="num">${int(k.samples)}</td><td class="num"><b>${pct(k.share)}</b></td><td class="num">${pct(k.timeShare)}</td><td class="num">${k.lift.toFixed(2)}×</td></tr>`,
    )
    .join('');
  return `<h3>Slow answers against server events</h3>
<p class="muted">${int(a.samples)} answers slower than p99 (${esc(fmtUs(a.thresholdUs))}); an event explains one it overlaps, widened by ±${a.windowMs} ms. Time share: how much of the run those events cover — lift well above 1× means slow answers cluster around them.${a.truncated ? ' The generator kept only some slow answers.' : ''}</p>
<table class="grid"><tr><th>event kind</th><th>events</th><th>slow answers</th><th>share</th><th>time share</th><th>lift</th></tr>${rows}<tr><td><i>none (unexplained)</i></td><td></td><td class="num">${int(a.unexplained.samples)}</td><td class="num"><b>${pct(a.unexplained.share)}</b></td><td></td><td></td></tr></table>`;
}

export function renderHtml(res: Results): string {
  const verdictCls = res.verdict === 'fail' ? 'fail' : res.verdict === 'pass' ? 'pass' : 'muted';
  const gateRows = res.gates
    .map(
      (g) =>
        `<tr class="${g.pass ? 'pass' : 'fail'}"><td>${esc(g.scenario)}</td><td><code>${esc(g.gate)}</code></td><td class="num">${esc(g.measured)}</td><td><b>${g.pass ? 'PASS' : 'FAIL'}</b></td></tr>`,
    )
    .join('');
  const gates = res.gates.length
    ? `<table class="grid"><tr><th>scenario</th><th>gate</th><th>measured</th><th>result</th></tr>${gateRows}</table>`
    : '<p class="muted">No gate given (--gate / --gate-file).</p>';
  const comparisons = res.comparisons
    .map((c) => {
      const rows = res.results
        .filter((r) => r.scenario === c.scenario && r.phase !== 'half' && r.figures)
        .map((r) => [r.target, r.figures!.rps] as [string, number]);
      const ratios = [
        c.vsHello !== undefined ? `segd / hello-world = <b>${c.vsHello.toFixed(2)}×</b>` : '',
        c.vsFastify !== undefined ? `segd / Fastify + Redis = <b>${c.vsFastify.toFixed(2)}×</b>` : '',
      ]
        .filter(Boolean)
        .join(' · ');
      return `<figure class="cmp"><figcaption>${esc(c.scenario)} — requests/s</figcaption>${compareSvg(rows)}<p>${ratios}</p></figure>`;
    })
    .join('');
  const s = res.settings;
  const settings: Array<[string, unknown]> = [
    ['target', s.target],
    ['scenarios', s.scenarios.join(', ')],
    ['mode', s.mode],
    ['duration / warm-up', `${s.durationS} s / ${s.warmupS} s (warm-up not counted)`],
    ['data set', `${int(s.users)} users, seed ${s.seed}`],
    [
      'keys',
      `${int(res.keyMix.draws)} draws: ${(res.keyMix.knownShare * 100).toFixed(1)}% known users (Zipf s=${s.zipf}), ${int(res.keyMix.distinct)} distinct, most drawn key ${(res.keyMix.topKeyShare * 100).toFixed(2)}% of draws`,
    ],
    ['pinning', res.pinning.why],
    ['data set check', res.dataCheck?.note ?? '–'],
    ['gates', s.gates.join(', ') || '–'],
    ['node', s.node],
    ['started / finished', `${res.startedAt} / ${res.finishedAt}`],
  ];
  const nav = res.results
    .map((r) => `<a href="#${esc(anchor(r))}">${esc(scenarioLabel(r))} → ${esc(targetLabel(r))}</a>`)
    .join(' · ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>segd load test — ${esc(res.verdict.toUpperCase())}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1360px;padding:18px 24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 2px;border-top:1px solid #dde2ea;padding-top:16px}h3{font-size:15px;margin:12px 0 4px}
.muted{color:#6b7486}.verdict{display:inline-block;padding:3px 12px;border-radius:4px;font-weight:700;margin-left:8px;font-size:16px}
.verdict.pass{background:#d7f5df;color:#11602a}.verdict.fail{background:#fde0de;color:#9b1c14}.verdict.muted{background:#eceff3}
table{border-collapse:collapse;margin:8px 0}td,th{padding:4px 10px;text-align:left;vertical-align:top}
table.grid td,table.grid th{border-bottom:1px solid #e3e7ee}tr.pass td:last-child{color:#11602a}tr.fail td:last-child{color:#b3261e}tr.fail{background:#fff4f3}
table.kv th{font-weight:600;color:#4a5366;white-space:nowrap}.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;flex:1 1 560px;background:#fff;border:1px solid #e3e7ee;border-radius:6px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:auto;font-size:11px;fill:#4a5366}
.grid{stroke:#e8ebf0}.rps{fill:#dbe4f3}.bar{fill:#7c93c3}polyline{fill:none;stroke-width:1.8}polyline.p50{stroke:#2f7d4f}polyline.p99{stroke:#c2410c}
text.lane{font-size:8px}rect.ev{opacity:.75}circle.p50{fill:#2f7d4f}circle.p99{fill:#c2410c}polyline.base{stroke:#2563eb}.k.base{background:#2563eb}rect.p99{fill:#c2410c}rect.left{opacity:.3}line.mark{stroke:#c2410c;stroke-dasharray:3 3}text.mark{fill:#c2410c}.err{fill:#b3261e;font-weight:700}
.legend{font-size:12px;color:#4a5366}.legend .k{display:inline-block;width:14px;height:4px;margin:0 4px 2px 10px;vertical-align:middle}
.k.sw{height:10px}.k.p50{background:#2f7d4f}.k.p99{background:#c2410c}.k.rps{background:#dbe4f3;height:10px}.skip{color:#8a5a00}.fail{color:#b3261e}
code{font-size:12px}figure.cmp{flex:0 1 440px}svg.cmp{font-size:13px}figure.cmp p{margin:4px 0 0;font-size:13px}details{margin-top:8px}
</style></head><body>
<h1>segd load test <span class="verdict ${verdictCls}">${esc(res.verdict.toUpperCase())}</span></h1>
<p class="muted">${esc(s.target)} · ${esc(s.mode)} · ${esc(s.durationS)} s per scenario · ${esc(res.startedAt)}</p>
<p>${nav}</p>
${res.dataCheck && !res.dataCheck.ok ? `<p class="fail"><b>Warning:</b> ${esc(res.dataCheck.note)}</p>` : ''}
${res.results
  .filter((r) => r.generatorBound && !countedByPool(r, res.pooled))
  .map(
    (r) =>
      `<p class="fail"><b>Generator-bound:</b> ${esc(scenarioLabel(r))} → ${esc(r.target)}: its tail figures do not count (${esc(r.generatorBoundWhy!.join('; '))})</p>`,
  )
  .join('')}
${canarySection(res)}
${roundsSection(res)}
<h2>Rollout gate</h2>${gates}
${res.comparisons.length ? `<h2>Compared in the same run, same settings</h2><div class="charts">${comparisons}</div>` : ''}
${res.results.map(scenarioSection).join('\n')}
<h2>Settings</h2><table class="kv">${settings.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<p class="muted">Written by <code>segd loadtest</code>. Latencies are µs-resolution figures recorded per answer; autocannon’s own whole-ms summary is listed beside them where it drove the load.</p>
</body></html>
`;
}

export function writeReport(dir: string, res: Results): { html: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const html = join(dir, 'report.html');
  const json = join(dir, 'results.json');
  writeFileSync(json, JSON.stringify(res, null, 2) + '\n');
  writeFileSync(html, renderHtml(res));
  return { html, json };
}
