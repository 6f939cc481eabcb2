// The insights page: an overlap heat map and an affinity bar chart as
// server-side SVG inside one HTML document, with no script and nothing
// fetched from elsewhere (the route sends a CSP that forbids both). Pure: data
// in, markup out; every text from the taxonomy is escaped.
import type { Affinity, Overlap } from './queries.js';

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const CELL = 56;
const LABEL = 180;
const BAR_W = 420;
const BAR_H = 22;

/** Colour of a Jaccard share 0..1: white to deep blue. */
function shade(x: number): string {
  const t = Math.max(0, Math.min(1, x));
  const c = (a: number, b: number) => Math.round(a + (b - a) * t);
  return `rgb(${c(247, 8)},${c(251, 48)},${c(255, 107)})`;
}

const label = (id: number, names: ReadonlyMap<number, string>) => {
  const n = names.get(id);
  return n === undefined ? String(id) : `${id} ${n.length > 24 ? `${n.slice(0, 23)}…` : n}`;
};

/** The overlap matrix as a heat map (colour: Jaccard; text: users in both). */
export function heatMap(o: Overlap, names: ReadonlyMap<number, string>): string {
  const n = o.segments.length;
  const size = LABEL + n * CELL;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" role="img" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">`,
    '<title>Overlap of the chosen segments (colour: Jaccard index; number: users in both)</title>',
  ];
  o.segments.forEach((id, i) => {
    const text = esc(label(id, names));
    parts.push(
      `<text class="row-label" x="${LABEL - 6}" y="${LABEL + i * CELL + CELL / 2 + 4}" text-anchor="end">${text}</text>`,
      `<text class="col-label" transform="translate(${LABEL + i * CELL + CELL / 2 + 4},${LABEL - 6}) rotate(-60)">${text}</text>`,
    );
  });
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const jac = o.jaccard[i]![j]!;
      const x = LABEL + j * CELL;
      const y = LABEL + i * CELL;
      parts.push(
        `<rect class="cell" data-row="${o.segments[i]}" data-col="${o.segments[j]}" x="${x}" y="${y}" width="${CELL - 2}" height="${CELL - 2}" fill="${shade(jac)}"><title>${o.segments[i]} ∩ ${o.segments[j]}: ${o.matrix[i]![j]} users, Jaccard ${jac}</title></rect>`,
        `<text class="cell-value" x="${x + CELL / 2 - 1}" y="${y + CELL / 2 + 4}" text-anchor="middle" fill="${jac > 0.5 ? '#fff' : '#111'}">${o.matrix[i]![j]}</text>`,
      );
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Affinity results as horizontal bars (length: index; 100 = as likely as any user). */
export function affinityBars(a: Affinity, names: ReadonlyMap<number, string>): string {
  const rows = a.results;
  const max = Math.max(100, ...rows.map((r) => r.index));
  const height = 30 + Math.max(1, rows.length) * (BAR_H + 6);
  const scale = (v: number) => (v / max) * BAR_W;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="affinity" role="img" width="${LABEL + BAR_W + 120}" height="${height}" viewBox="0 0 ${LABEL + BAR_W + 120} ${height}">`,
    `<title>Segments over-indexing among the members of ${a.segment} (index 100 = as likely as any user)</title>`,
    `<line class="baseline" x1="${LABEL + scale(100)}" y1="0" x2="${LABEL + scale(100)}" y2="${height}" stroke="#c00" stroke-dasharray="4 3"/>`,
  ];
  if (rows.length === 0)
    parts.push(`<text x="${LABEL}" y="20">no segment shares enough members with ${a.segment}</text>`);
  rows.forEach((r, i) => {
    const y = 10 + i * (BAR_H + 6);
    parts.push(
      `<text class="bar-label" x="${LABEL - 6}" y="${y + BAR_H / 2 + 4}" text-anchor="end">${esc(label(r.segment, names))}</text>`,
      `<rect class="bar" data-segment="${r.segment}" x="${LABEL}" y="${y}" width="${scale(r.index).toFixed(1)}" height="${BAR_H}" fill="#2b6cb0"><title>${r.segment}: index ${r.index}, ${r.overlap} users in both, share ${r.share}</title></rect>`,
      `<text class="bar-value" x="${LABEL + scale(r.index) + 6}" y="${y + BAR_H / 2 + 4}">${Math.round(r.index)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

/** The whole page. */
export function insightsPage(o: Overlap, a: Affinity | null, names: ReadonlyMap<number, string>): string {
  const sizes = o.segments
    .map((id, i) => `<tr><td>${esc(label(id, names))}</td><td class="size">${o.sizes[i]}</td></tr>`)
    .join('');
  return [
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>segd insights</title>',
    '<style>body{font:14px system-ui,sans-serif;margin:24px;color:#111}h1{font-size:20px}h2{font-size:16px;margin-top:28px}',
    'svg text{font:12px system-ui,sans-serif}table{border-collapse:collapse}td{padding:2px 10px}td.size{text-align:right}</style>',
    '</head><body><h1>Audience insights</h1>',
    `<h2>Sizes</h2><table class="sizes">${sizes}</table>`,
    `<h2>Overlap</h2>${heatMap(o, names)}`,
    a === null
      ? ''
      : `<h2>Affinity of ${esc(label(a.segment, names))} (${a.size} users of ${a.base})</h2>${affinityBars(a, names)}`,
    '</body></html>',
  ].join('');
}
