// `segd loadtest --baseline`: a candidate against the running version on the
// same data, with real segd processes — rounds alternate, relative gates are
// checked on the medians, the known-users filter turned off on the candidate
// shows up as the miss-path difference in the server counters, and a
// candidate holding other data fails the answer comparison with the keys
// listed. Relative gate arithmetic is checked on fixed figures.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runSegd, startSegd, stopReport, CLEAN_STOP, tempDir, type Segd } from './helpers/server.js';
import { evaluate, parseGate, parseGates } from '../src/loadtest/gate.js';
import type { Results } from '../src/loadtest/runner.js';

const USERS = 4000;
const SEED = 31;

let work: string;
let baseline: Segd;
let noFilter: Segd;
let otherData: Segd;

beforeAll(async () => {
  work = tempDir('segd-lt-canary-');
  const feed = join(work, 'feed.ndjson');
  const other = join(work, 'other.ndjson');
  expect(
    (await runSegd(['gen', '--users', String(USERS), '--seed', String(SEED), '--out', feed, '--quiet'])).code,
  ).toBe(0);
  // Other data: the same user keys (same seed), other segments (another taxonomy size).
  expect(
    (
      await runSegd([
        'gen',
        '--users',
        String(USERS),
        '--seed',
        String(SEED),
        '--taxonomy',
        '50',
        '--out',
        other,
        '--quiet',
      ])
    ).code,
  ).toBe(0);
  [baseline, noFilter, otherData] = await Promise.all([
    startSegd({ env: { SEGD_SEED: feed } }),
    startSegd({ env: { SEGD_SEED: feed, SEGD_BLOOM_USERS: '0' } }),
    startSegd({ env: { SEGD_SEED: other } }),
  ]);
});

afterAll(async () => {
  for (const s of [baseline, noFilter, otherData]) if (s) expect(await stopReport(s)).toEqual(CLEAN_STOP);
  if (work) rmSync(work, { recursive: true, force: true });
});

function canary(out: string, candidate: Segd, extra: string[]) {
  return runSegd([
    'loadtest',
    '--target',
    candidate.url,
    '--baseline',
    baseline.url,
    '--scenario',
    'lookup',
    '--rate',
    '300',
    '--duration',
    '1.5',
    '--warmup',
    '0.3',
    '--connections',
    '4',
    '--users',
    String(USERS),
    '--seed',
    String(SEED),
    '--keys',
    '2000',
    '--answer-sample',
    '200',
    '--out',
    out,
    '--quiet',
    ...extra,
  ]);
}

describe('segd loadtest --baseline', () => {
  it('alternates rounds, gates on the medians, and shows the filter-off candidate taking the miss path', async () => {
    const out = join(work, 'pass');
    const r = await canary(out, noFilter, [
      '--rounds',
      '2',
      '--gate',
      'rps>=0.95x,rps<=1.05x,errors<=baseline+0.01%,p50<=20x',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    // A B A B, each candidate run followed by its control.
    expect(res.results.map((x) => [x.target, x.round, !!x.control])).toEqual([
      ['segd', 1, false],
      ['hello-world', 1, true],
      ['baseline', 1, false],
      ['segd', 2, false],
      ['hello-world', 2, true],
      ['baseline', 2, false],
    ]);
    const c = res.canary!;
    expect(c.verdict).toBe('pass');
    expect(c.rows).toHaveLength(1);
    const row = c.rows[0]!;
    expect(row.candidate.rounds).toBe(2);
    // The medians are the middle of the two rounds.
    const rps = res.results.filter((x) => x.target === 'segd' && !x.control).map((x) => x.figures!.rps);
    expect(row.candidate.rps).toBeCloseTo((rps[0]! + rps[1]!) / 2, 6);
    expect(row.ratio.rps).toBeCloseTo(row.candidate.rps / row.baseline.rps, 9);
    expect(res.gates.map((g) => [g.gate, g.pass])).toEqual([
      ['rps>=0.95x', true],
      ['rps<=1.05x', true],
      ['errors<=baseline+0.01%', true],
      ['p50<=20x', true],
    ]);
    // Same data, same answers on every route.
    expect(c.answers.map((a) => [a.route, a.compared, a.differing, a.error])).toEqual([
      ['GET /v1/segments', 200, 0, undefined],
      ['GET /v1/segments?format=kv', 200, 0, undefined],
      ['POST /v1/segments:batch', 200, 0, undefined],
    ]);
    // The miss path: the baseline's filter turns unknown users away before LMDB; the candidate has none.
    const negatives = (t: string) =>
      res.results
        .filter((x) => x.target === t)
        .map((x) => x.server!.diff['segd_bloom_checks_total{result="negative"}'] ?? 0);
    expect(negatives('baseline').every((n) => n > 100)).toBe(true);
    expect(negatives('segd')).toEqual([0, 0]);
    expect(r.stdout).toMatch(
      /^canary: PASS — http:\/\/127\.0\.0\.1:\d+ vs baseline .*lookup p99 .* \(\d+\.\d\d×\), rps 1\.0\d×.*answers identical \(3 routes × 200 keys\)$/m,
    );
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('Candidate against baseline');
    expect(html).toMatch(/<polyline class="p99" points="[^"]+"><title>candidate<\/title>/);
    expect(html).toMatch(/<polyline class="base" points="[^"]+"><title>baseline<\/title>/);
  }, 90_000);

  it('a candidate holding other data fails the answer comparison (exit 1), the differing keys listed; --expect-diff lets it pass', async () => {
    const out = join(work, 'diff');
    const r = await canary(out, otherData, ['--rounds', '1']);
    expect(r.code).toBe(1);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    const c = res.canary!;
    expect(c.verdict).toBe('regression');
    const get = c.answers.find((a) => a.route === 'GET /v1/segments')!;
    expect(get.differing).toBeGreaterThan(50);
    expect(get.examples.length).toBe(20);
    for (const e of get.examples) expect(e.candidate).not.toBe(e.baseline);
    expect(r.stdout).toMatch(
      /^canary: REGRESSION .*answers differ: GET \/v1\/segments \d+(\.\d+)?%.*--expect-diff allows it/m,
    );
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain(`<code>${get.examples[0]!.key}</code>`);

    const allowed = await canary(join(work, 'diff-ok'), otherData, ['--rounds', '1', '--expect-diff']);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^canary: PASS .*answers differ/m);
  }, 90_000);

  it('refuses relative gates without a baseline, and a baseline that cannot be reached is "could not run" (exit 2)', async () => {
    const noBase = await runSegd([
      'loadtest',
      '--target',
      baseline.url,
      '--scenario',
      'lookup',
      '--duration',
      '1',
      '--gate',
      'p99<=1.1x',
      '--out',
      join(work, 'x'),
    ]);
    expect(noBase.code).toBe(2);
    expect(noBase.stderr).toMatch(/relative gates \(p99<=1\.1x\) need --baseline/);
    const gone = await runSegd([
      'loadtest',
      '--target',
      baseline.url,
      '--baseline',
      'http://127.0.0.1:1',
      '--scenario',
      'lookup',
      '--duration',
      '1',
      '--out',
      join(work, 'y'),
    ]);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1/);
  });
});

describe('relative gates', () => {
  const subject = (p99: number, rps: number, errorRate: number) => ({
    scenario: 'lookup',
    latencyUs: { p50: 40, p90: 60, p99, p999: p99 * 2, max: p99 * 4, mean: 50 },
    errorCount: Math.round(errorRate * 10_000),
    errorRate,
    rps,
  });

  it('compares ratios and margins against the baseline, and fail without one', () => {
    const gates = parseGates('p99<=1.10x,rps>=0.95x,errors<=baseline+0.01%,errors<=baseline+3');
    expect(gates.map((g) => [g.metric, g.relative, g.value])).toEqual([
      ['p99', 'ratio', 1.1],
      ['rps', 'ratio', 0.95],
      ['errorRate', 'plus', 0.0001],
      ['errors', 'plus', 3],
    ]);
    const base = subject(1000, 20_000, 0.0001);
    expect(evaluate(gates, subject(1100, 19_000, 0.0002), base).map((g) => g.pass)).toEqual([true, true, true, true]);
    expect(evaluate(gates, subject(1101, 18_999, 0.00021), base).map((g) => g.pass)).toEqual([
      false,
      false,
      false,
      true,
    ]);
    expect(evaluate(gates, subject(1100, 19_000, 0.0006), base)[3]!.pass).toBe(false);
    expect(evaluate(gates, subject(1000, 20_000, 0), base)[0]!.measured).toBe('1.00 ms vs 1.00 ms = 1.00×');
    expect(evaluate([parseGate('p99<=1.1x')], base).map((g) => [g.pass, g.measured])).toEqual([
      [false, '1.00 ms (no baseline figure)'],
    ]);
    expect(() => parseGate('p99<=1.1y')).toThrow(/bad gate/);
    expect(() => parseGate('errors<=baseline+x')).toThrow(/bad gate/);
  });
});
