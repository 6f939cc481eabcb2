// The rollout gate: thresholds on a run's figures, from `--gate` or a JSON
// file, each checked against every scenario that ran.
//
//   --gate 'p99<=1ms,p99.9<=2ms,errors<=0.01%,rps>=20000'
//   --gate-file gate.json   ["p99<=1ms", "errors<=0.01%"]  or  {"gates": [...]}
//
// metrics: p50 p90 p99 p99.9 (or p999) max mean — latencies, with a unit
// (us, µs, ms, s; a bare number is µs); errors — with % a rate of all
// requests, without it a count; rps — requests (or frames) per second, 20k ok.
// operators: <= < >= > ==
//
// Against a baseline (`--baseline`), a gate may be relative:
//   p99<=1.10x  rps>=0.95x   the candidate's figure over the baseline's
//   errors<=baseline+0.01%   the baseline's error rate (or count) plus a margin
import { readFileSync } from 'node:fs';

export type GateMetric = 'p50' | 'p90' | 'p99' | 'p999' | 'max' | 'mean' | 'errors' | 'errorRate' | 'rps';
type Op = '<=' | '<' | '>=' | '>' | '==';

export interface Gate {
  /** As written, for the table. */
  text: string;
  metric: GateMetric;
  op: Op;
  /** In the figure's own unit: µs, a rate 0..1, a count, or req/s; a ratio when `relative` is 'ratio'. */
  value: number;
  /** 'ratio': value × the baseline's figure; 'plus': the baseline's figure + value. Needs --baseline. */
  relative?: 'ratio' | 'plus';
}

export interface GateSubject {
  scenario: string;
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  errorCount: number;
  errorRate: number;
  rps: number;
}

export interface GateResult {
  scenario: string;
  gate: string;
  measured: string;
  pass: boolean;
}

const LAT = new Set(['p50', 'p90', 'p99', 'p999', 'max', 'mean']);
const UNIT_US: Record<string, number> = { '': 1, us: 1, µs: 1, ms: 1000, s: 1_000_000 };
const GATE =
  /^\s*(p50|p90|p99\.9|p999|p99|max|mean|errors|rps)\s*(<=|>=|==|<|>)\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s|%|k)?\s*$/i;

const RATIO_GATE = /^\s*(p50|p90|p99\.9|p999|p99|max|mean|rps)\s*(<=|>=|==|<|>)\s*([0-9]*\.?[0-9]+)\s*x\s*$/i;
const PLUS_GATE = /^\s*errors\s*(<=|<)\s*baseline\s*\+\s*([0-9]*\.?[0-9]+)\s*(%)?\s*$/i;

export function parseGate(text: string): Gate {
  const ratio = RATIO_GATE.exec(text);
  if (ratio) {
    const raw = ratio[1]!.toLowerCase();
    const metric = (raw === 'p99.9' ? 'p999' : raw) as GateMetric;
    return { text: text.trim(), metric, op: ratio[2] as Op, value: Number(ratio[3]), relative: 'ratio' };
  }
  const plus = PLUS_GATE.exec(text);
  if (plus) {
    const n = Number(plus[2]);
    const rate = plus[3] === '%';
    return {
      text: text.trim(),
      metric: rate ? 'errorRate' : 'errors',
      op: plus[1] as Op,
      value: rate ? n / 100 : n,
      relative: 'plus',
    };
  }
  const m = GATE.exec(text);
  if (!m)
    throw new Error(
      `bad gate ${JSON.stringify(text)}: expected METRIC OP VALUE, e.g. p99<=1ms, errors<=0.01%, rps>=20000 (metrics: p50 p90 p99 p99.9 max mean errors rps), or against --baseline p99<=1.10x, rps>=0.95x, errors<=baseline+0.01%`,
    );
  const raw = m[1]!.toLowerCase();
  const op = m[2] as Op;
  const n = Number(m[3]);
  const unit = (m[4] ?? '').toLowerCase();
  const metric = (raw === 'p99.9' ? 'p999' : raw) as GateMetric;
  if (LAT.has(metric)) {
    if (!(unit in UNIT_US)) throw new Error(`bad gate ${JSON.stringify(text)}: a latency takes us, ms or s`);
    return { text: text.trim(), metric, op, value: n * UNIT_US[unit]! };
  }
  if (metric === 'errors') {
    if (unit === '%') return { text: text.trim(), metric: 'errorRate', op, value: n / 100 };
    if (unit !== '') throw new Error(`bad gate ${JSON.stringify(text)}: errors take a % (a rate) or nothing (a count)`);
    return { text: text.trim(), metric: 'errors', op, value: n };
  }
  if (unit !== '' && unit !== 'k')
    throw new Error(`bad gate ${JSON.stringify(text)}: rps takes a number (20000 or 20k)`);
  return { text: text.trim(), metric, op, value: unit === 'k' ? n * 1000 : n };
}

export function parseGates(list: string): Gate[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseGate);
}

export function readGateFile(path: string): Gate[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`--gate-file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const list = Array.isArray(doc) ? doc : (doc as { gates?: unknown })?.gates;
  if (!Array.isArray(list) || !list.every((g) => typeof g === 'string')) {
    throw new Error(`--gate-file ${path}: expected a JSON array of gate strings, or {"gates": [...]}`);
  }
  return list.map(parseGate);
}

const cmp = (a: number, op: Op, b: number) =>
  op === '<=' ? a <= b : op === '<' ? a < b : op === '>=' ? a >= b : op === '>' ? a > b : a === b;

export function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return '–';
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 100_000) return `${(us / 1000).toFixed(2)} ms`;
  return `${(us / 1000).toFixed(0)} ms`;
}

/** A count or rate as people read it: 19,996. */
export const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

/** An error rate as a percentage people read: 0%, 0.0042%, 1.3%, 100%. */
export function fmtPct(rate: number): string {
  const p = rate * 100;
  if (p === 0) return '0%';
  return p >= 1 ? `${p.toFixed(1)}%` : `${p.toPrecision(2)}%`;
}

function figure(g: Gate, s: GateSubject): { v: number; shown: string } {
  if (g.metric === 'errorRate') return { v: s.errorRate, shown: `${fmtPct(s.errorRate)} (${s.errorCount})` };
  if (g.metric === 'errors') return { v: s.errorCount, shown: String(s.errorCount) };
  if (g.metric === 'rps') return { v: s.rps, shown: `${Math.round(s.rps).toLocaleString('en-US')}/s` };
  return { v: s.latencyUs[g.metric], shown: fmtUs(s.latencyUs[g.metric]) };
}

/** Each gate against `s`; relative gates against `base` too (without one they fail, saying so). */
export function evaluate(gates: Gate[], s: GateSubject, base?: GateSubject): GateResult[] {
  return gates.map((g) => {
    const { v, shown } = figure(g, s);
    if (!g.relative) return { scenario: s.scenario, gate: g.text, measured: shown, pass: cmp(v, g.op, g.value) };
    if (!base) return { scenario: s.scenario, gate: g.text, measured: `${shown} (no baseline figure)`, pass: false };
    const b = figure(g, base);
    if (g.relative === 'plus')
      return {
        scenario: s.scenario,
        gate: g.text,
        measured: `${shown} vs baseline ${b.shown}`,
        pass: cmp(v, g.op, b.v + g.value),
      };
    const ratio = b.v > 0 ? v / b.v : v > 0 ? Infinity : 1;
    return {
      scenario: s.scenario,
      gate: g.text,
      measured: `${shown} vs ${b.shown} = ${ratio.toFixed(2)}×`,
      pass: cmp(ratio, g.op, g.value),
    };
  });
}
