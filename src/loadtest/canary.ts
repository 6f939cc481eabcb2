// Candidate against baseline (`--baseline URL`): the same scenarios driven at
// both in alternating rounds (A B A B …, so machine noise falls on both),
// each figure reduced to its median over the rounds and set beside the
// other's with their ratio; and, before any load, the same keys asked of both
// through each lookup route, answers compared after sorting — a rollout that
// answers differently on the same data is a regression unless expected.
import type { Percentiles } from './recorder.js';
import type { ScenarioResult } from './runner.js';
import { fmtPct, fmtUs } from './gate.js';

export interface SideFigures {
  /** Rounds that ran (the median is over these). */
  rounds: number;
  rps: number;
  errorCount: number;
  errorRate: number;
  latencyUs: Percentiles;
}

export interface CanaryRow {
  scenario: string;
  candidate: SideFigures;
  baseline: SideFigures;
  /** candidate / baseline for each latency percentile and rps. */
  ratio: Record<'p50' | 'p90' | 'p99' | 'p999' | 'max' | 'rps', number>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

/** The median of each figure over one target's rounds of one scenario (null: none ran). */
export function sideFigures(runs: ScenarioResult[]): SideFigures | null {
  const ran = runs.filter((r) => r.status === 'ran' && r.figures);
  if (!ran.length) return null;
  const f = ran.map((r) => r.figures!);
  const lat = (k: keyof Percentiles) => median(f.map((x) => x.latencyUs[k]));
  return {
    rounds: ran.length,
    rps: median(f.map((x) => x.rps)),
    errorCount: median(f.map((x) => x.errorCount)),
    errorRate: median(f.map((x) => x.errorRate)),
    latencyUs: {
      p50: lat('p50'),
      p90: lat('p90'),
      p99: lat('p99'),
      p999: lat('p999'),
      max: lat('max'),
      mean: lat('mean'),
    },
  };
}

export function canaryRow(scenario: string, results: ScenarioResult[]): CanaryRow | null {
  const of = (t: string) => results.filter((r) => r.scenario === scenario && r.target === t && !r.control);
  const candidate = sideFigures(of('segd'));
  const baseline = sideFigures(of('baseline'));
  if (!candidate || !baseline) return null;
  const r = (a: number, b: number) => (b > 0 ? a / b : a > 0 ? Infinity : 1);
  const c = candidate.latencyUs;
  const b = baseline.latencyUs;
  return {
    scenario,
    candidate,
    baseline,
    ratio: {
      p50: r(c.p50, b.p50),
      p90: r(c.p90, b.p90),
      p99: r(c.p99, b.p99),
      p999: r(c.p999, b.p999),
      max: r(c.max, b.max),
      rps: r(candidate.rps, baseline.rps),
    },
  };
}

export interface AnswerExample {
  key: string;
  candidate: string;
  baseline: string;
}

export interface RouteDiff {
  route: string;
  compared: number;
  differing: number;
  /** The first few keys whose answers differ, with both answers (normalised). */
  examples: AnswerExample[];
  /** Why the route could not be compared (it answered an error on either side). */
  error?: string;
}

const MAX_EXAMPLES = 20;
const BATCH = 100;

/** Segments without the load test's own marker segments (an earlier run's feed may have left some). */
const normalise = (segs: unknown, ignore: Set<number>): string =>
  Array.isArray(segs)
    ? JSON.stringify(
        (segs as number[])
          .filter((s) => !ignore.has(Number(s)))
          .map(Number)
          .sort((a, b) => a - b),
      )
    : JSON.stringify(segs ?? null);

async function getText(url: string, headers: Record<string, string>): Promise<[number, string]> {
  const r = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  return [r.status, await r.text()];
}

/**
 * Asks both targets the same keys through GET (JSON), GET format=kv and
 * batch, and counts the keys whose answers differ after sorting. Runs before
 * any load, so the feed scenarios' writes cannot tell the two apart.
 */
export async function compareAnswers(o: {
  candidate: string;
  baseline: string;
  keys: string[];
  partnerKey: string;
  /** Segment ids the load test itself writes (left out of the comparison). */
  ignore: number[];
}): Promise<RouteDiff[]> {
  const headers: Record<string, string> = o.partnerKey ? { Authorization: `Bearer ${o.partnerKey}` } : {};
  const ignore = new Set(o.ignore);
  const keys = [...new Set(o.keys)];
  const q = encodeURIComponent;
  // GET, one key at a time: `suffix` picks the format, `answer` reads what comes back.
  const perKey =
    (suffix: string, answer: (text: string) => string) =>
    async (origin: string): Promise<Map<string, string>> => {
      const out = new Map<string, string>();
      for (const k of keys) {
        const [st, text] = await getText(`${origin}/v1/segments?uid=${q(k)}${suffix}`, headers);
        if (st !== 200) throw new Error(`${origin} answered ${st} for uid=${k}${suffix}: ${text.slice(0, 160)}`);
        out.set(k, answer(text));
      }
      return out;
    };
  const routes: Array<{ route: string; ask: (origin: string) => Promise<Map<string, string>> }> = [
    {
      route: 'GET /v1/segments',
      ask: perKey('', (text) => normalise((JSON.parse(text) as { segments?: unknown }).segments, ignore)),
    },
    {
      route: 'GET /v1/segments?format=kv',
      // Pairs in any order; the marker segments cannot be told apart here, so kv is compared whole.
      ask: perKey('&format=kv', (text) =>
        JSON.stringify(
          text
            .split(/[;&\n]/)
            .filter(Boolean)
            .sort(),
        ),
      ),
    },
    {
      route: 'POST /v1/segments:batch',
      ask: async (origin) => {
        const out = new Map<string, string>();
        for (let i = 0; i < keys.length; i += BATCH) {
          const uids = keys.slice(i, i + BATCH);
          const r = await fetch(`${origin}/v1/segments:batch`, {
            method: 'POST',
            headers: { ...headers, 'Content-Type': 'application/json' },
            body: JSON.stringify({ uids }),
            signal: AbortSignal.timeout(10_000),
          });
          const text = await r.text();
          if (r.status !== 200) throw new Error(`${origin} answered ${r.status} to a batch: ${text.slice(0, 160)}`);
          const results = (JSON.parse(text) as { results: Array<{ segments?: unknown; error?: unknown }> }).results;
          uids.forEach((u, j) => out.set(u, normalise(results[j]?.segments ?? results[j]?.error ?? null, ignore)));
        }
        return out;
      },
    },
  ];
  const diffs: RouteDiff[] = [];
  for (const { route, ask } of routes) {
    try {
      const [a, b] = await Promise.all([ask(o.candidate), ask(o.baseline)]);
      const examples: AnswerExample[] = [];
      let differing = 0;
      for (const k of keys) {
        const ca = a.get(k)!;
        const ba = b.get(k)!;
        if (ca === ba) continue;
        differing++;
        if (examples.length < MAX_EXAMPLES) examples.push({ key: k, candidate: ca, baseline: ba });
      }
      diffs.push({ route, compared: keys.length, differing, examples });
    } catch (err) {
      diffs.push({ route, compared: 0, differing: 0, examples: [], error: (err as Error).message });
    }
  }
  return diffs;
}

export type CanaryVerdict = 'pass' | 'regression' | 'could not run';

/** The line ops paste: the verdict, and per scenario p99 and rps of both with ratios, and the answers. */
export function canaryLine(
  verdict: CanaryVerdict,
  rows: CanaryRow[],
  answers: RouteDiff[],
  why: string[],
  urls: { candidate: string; baseline: string },
): string {
  const figs = rows
    .map(
      (r) =>
        `${r.scenario} p99 ${fmtUs(r.candidate.latencyUs.p99)} vs ${fmtUs(r.baseline.latencyUs.p99)} (${r.ratio.p99.toFixed(2)}×), rps ${r.ratio.rps.toFixed(2)}×, errors ${fmtPct(r.candidate.errorRate)} vs ${fmtPct(r.baseline.errorRate)}`,
    )
    .join('; ');
  const compared = answers.filter((a) => !a.error);
  const differ = compared.filter((a) => a.differing > 0);
  const ans = !answers.length
    ? ''
    : differ.length
      ? `answers differ: ${differ.map((a) => `${a.route} ${fmtPct(a.differing / a.compared)}`).join(', ')}`
      : `answers identical (${compared.length} routes × ${compared[0]?.compared ?? 0} keys)`;
  return `canary: ${verdict.toUpperCase()} — ${urls.candidate} vs baseline ${urls.baseline}: ${[figs, ans, ...why].filter(Boolean).join('; ')}`;
}
