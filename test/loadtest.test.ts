// `segd loadtest` on short real runs against a real segd loaded with a
// generated data set: the keys it draws (hit ratio as the server counts it,
// Zipf skew, no single repeated key), the rollout gate and its exit status,
// the report files, scenarios whose endpoints are missing, and --compare
// against a real redis-server. Speed is never asserted here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { runSegd, startSegd, stopReport, CLEAN_STOP, tempDir, type Segd } from './helpers/server.js';
import { prng, sampleKeys } from '../src/loadtest/key-mix.js';
import { bidRequest } from '../src/loadtest/openrtb.js';
import { parseGate, parseGates } from '../src/loadtest/gate.js';
import type { Results } from '../src/loadtest/runner.js';
import type { FeedFigures } from '../src/loadtest/feed-stream.js';

const USERS = 20_000;
const SEED = 11;
const INGEST_KEY = 'loadtest-ingest-key-0123456789';

let segd: Segd;
let work: string;

beforeAll(async () => {
  work = tempDir('segd-loadtest-test-');
  const feed = join(work, 'feed.ndjson');
  const gen = await runSegd(['gen', '--users', String(USERS), '--seed', String(SEED), '--out', feed, '--quiet']);
  expect(gen.code).toBe(0);
  segd = await startSegd({ env: { SEGD_SEED: feed, SEGD_INGEST_KEYS: INGEST_KEY } });
});

const dirs: string[] = [];
const outDir = () => {
  const d = tempDir('segd-lt-out-');
  dirs.push(d);
  return d;
};

afterAll(async () => {
  if (segd) expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  for (const d of [work, ...dirs]) if (d) rmSync(d, { recursive: true, force: true });
});

/** A loopback port nothing listens on (it was free a moment ago). */
function closedPort(): Promise<number> {
  return new Promise((ok) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

/** A short run: 0.5 s warm-up, `duration` s measured, 8 connections. */
async function loadtest(out: string, extra: string[], duration = 2) {
  const r = await runSegd([
    'loadtest',
    '--target',
    segd.url,
    '--duration',
    String(duration),
    '--warmup',
    '0.5',
    '--connections',
    '8',
    '--users',
    String(USERS),
    '--seed',
    String(SEED),
    '--keys',
    '5000',
    '--out',
    out,
    '--quiet',
    ...extra,
  ]);
  const results =
    r.code === 0 || r.code === 1 ? (JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results) : null;
  return { ...r, results };
}

describe('key sampling', () => {
  it('draws known users with Zipf skew and unknown users uniformly, never one repeated key', () => {
    const skewed = sampleKeys({ seed: SEED, users: USERS, hitRatio: 0.6, zipf: 1, count: 20_000 });
    const flat = sampleKeys({ seed: SEED, users: USERS, hitRatio: 0.6, zipf: 0, count: 20_000 });
    expect(skewed.knownShare).toBeGreaterThan(0.58);
    expect(skewed.knownShare).toBeLessThan(0.62);
    // Known draws: the hottest 1% of known users take a large share under Zipf(1), about 1% when uniform.
    const topShare = (m: typeof skewed) => {
      const counts = new Map<number, number>();
      let known = 0;
      for (const i of m.index)
        if (i < USERS) {
          counts.set(i, (counts.get(i) ?? 0) + 1);
          known++;
        }
      const sorted = [...counts.values()].sort((a, b) => b - a);
      return sorted.slice(0, USERS / 100).reduce((a, b) => a + b, 0) / known;
    };
    expect(topShare(skewed)).toBeGreaterThan(0.3);
    expect(topShare(flat)).toBeLessThan(0.1);
    // Many distinct keys, and the hottest one is a small share of all requests.
    expect(skewed.distinct).toBeGreaterThan(5000);
    expect(skewed.topKeyShare).toBeLessThan(0.1);
    // Unknown draws are users past the data set; known ones are inside it.
    expect(skewed.index.every((i) => i >= 0 && i < 2 * USERS)).toBe(true);
    // Deterministic: the same flags give the same keys.
    expect(sampleKeys({ seed: SEED, users: USERS, hitRatio: 0.6, zipf: 1, count: 20_000 }).uids).toEqual(skewed.uids);
  });

  it('the server counts the requested hit ratio; a lenient gate passes with exit 0 and the report is written', async () => {
    const out = outDir();
    const r = await loadtest(out, [
      '--scenario',
      'lookup',
      '--hit-ratio',
      '0.3',
      '--gate',
      'p99<=10s,errors<=1%,rps>=10',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = r.results!;
    expect(res.verdict).toBe('pass');
    expect(res.dataCheck?.ok).toBe(true);
    const lookup = res.results.find((x) => x.scenario === 'lookup' && x.target === 'segd')!;
    expect(lookup.status).toBe('ran');
    const f = lookup.figures!;
    expect(f.requests).toBeGreaterThan(100);
    expect(f.errorCount).toBe(0);
    // What segd itself counted over the measured window: about 30% of lookups found a user.
    const view = lookup.server!.view;
    expect(view.hitShare).toBeGreaterThan(0.25);
    expect(view.hitShare).toBeLessThan(0.35);
    // The server counted the client's measured requests, plus at most one in flight per connection at the end.
    expect(view.lookups).toBeGreaterThanOrEqual(f.requests);
    expect(view.lookups).toBeLessThanOrEqual(f.requests + 8);
    // And the store it answered from: the generated users, read from its gauges after the run.
    expect(lookup.server!.gaugesAfter!['segd_store_users']).toBe(USERS);
    expect(lookup.server!.gaugesAfter!['segd_process_resident_memory_bytes']).toBeGreaterThan(0);
    // µs figures, ordered, and the histogram holds every answer.
    const l = f.latencyUs;
    expect(l.p50).toBeGreaterThan(0);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p90).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.p999);
    expect(l.p999).toBeLessThanOrEqual(l.max);
    expect(f.histogram.reduce((a, b) => a + b.count, 0)).toBe(f.requests);
    expect(f.timeline.length).toBeGreaterThanOrEqual(2);
    expect(f.timeline.reduce((a, s) => a + s.requests, 0)).toBe(f.requests);
    expect(res.gates.map((g) => [g.scenario, g.gate, g.pass])).toEqual([
      ['lookup', 'p99<=10s', true],
      ['lookup', 'errors<=1%', true],
      ['lookup', 'rps>=10', true],
    ]);

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('segd load test <span class="verdict pass">PASS</span>');
    expect(html).toContain('Latency over time');
    expect(html).toContain('Latency histogram');
    expect((html.match(/<svg /g) ?? []).length).toBe(2);
    expect(html).toContain('<code>p99&lt;=10s</code>');
    expect(html).toContain(`${USERS.toLocaleString('en-US')} users, seed ${SEED}`);
    // Self-contained: nothing loaded from anywhere, no scripts.
    expect(html).not.toMatch(/<script|<link|src=|@import|url\(/i);
    expect(r.stdout).toContain('verdict: PASS');
    expect(r.stdout).toMatch(/lookup\s+segd\s+[\d,]+\s/);
  });
});

describe('rollout gate', () => {
  it('an impossible threshold fails the run: exit 1, FAIL in the table, the report says so', async () => {
    const out = outDir();
    const gateFile = join(work, 'gate.json');
    writeFileSync(gateFile, JSON.stringify({ gates: ['errors<=0.01%'] }));
    const r = await loadtest(out, ['--scenario', 'kv', '--gate', 'p99<=1us', '--gate-file', gateFile, '--rate', '500']);
    expect(r.code).toBe(1);
    const res = r.results!;
    expect(res.verdict).toBe('fail');
    expect(res.gates.map((g) => [g.gate, g.pass])).toEqual([
      ['p99<=1us', false],
      ['errors<=0.01%', true],
    ]);
    expect(r.stdout).toMatch(/p99<=1us\s+kv\s+\S+ [µm]?s\s+FAIL/);
    expect(r.stdout).toMatch(/errors<=0.01%\s+kv\s+.*PASS/);
    expect(r.stdout).toContain('verdict: FAIL');
    // Open loop at 500 req/s for 2 s: about 1,000 answers, from the µs client.
    const kv = res.results[0]!;
    expect(kv.drive!.generator).toContain('open loop at 500 req/s');
    expect(kv.figures!.requests).toBeGreaterThan(800);
    expect(kv.figures!.requests).toBeLessThan(1100);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<span class="verdict fail">FAIL</span>');
    expect(html).toMatch(/<tr class="fail"><td>kv<\/td><td><code>p99&lt;=1us<\/code>/);
  });

  it('reads thresholds in the units people write', () => {
    const g = parseGates('p99<=1ms, p99.9<=2ms,p50<250us,max<1s,errors<=0.01%,errors==0,rps>=20k');
    expect(g.map((x) => [x.metric, x.op, x.value])).toEqual([
      ['p99', '<=', 1000],
      ['p999', '<=', 2000],
      ['p50', '<', 250],
      ['max', '<', 1_000_000],
      ['errorRate', '<=', 0.0001],
      ['errors', '==', 0],
      ['rps', '>=', 20_000],
    ]);
    for (const bad of ['p98<=1ms', 'p99<=1kb', 'rps>=1ms', 'errors<=1ms', 'p99=<1ms'])
      expect(() => parseGate(bad)).toThrow(/bad gate/);
  });

  it('a malformed gate or an unreachable target is a usage error (exit 2) before any load is sent', async () => {
    const out = outDir();
    const r = await runSegd([
      'loadtest',
      '--target',
      segd.url,
      '--scenario',
      'lookup',
      '--duration',
      '1',
      '--out',
      out,
      '--gate',
      'p99 about 1ms',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bad gate "p99 about 1ms"');
    // A target nobody listens on is the same kind of problem, not a failed gate.
    const port = await closedPort();
    const gone = await runSegd([
      'loadtest',
      '--target',
      `http://127.0.0.1:${port}`,
      '--scenario',
      'lookup',
      '--duration',
      '1',
      '--out',
      out,
    ]);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain(`cannot reach http://127.0.0.1:${port}: connect ECONNREFUSED`);
  });
});

describe('openrtb bodies', () => {
  it('are 2–3 KB OpenRTB 2.6 BidRequests carrying the drawn key where segd resolves users', () => {
    const keys = sampleKeys({ seed: SEED, users: USERS, hitRatio: 0.6, zipf: 1, count: 500 });
    const r = prng(1);
    for (const [n, uid] of keys.uids.entries()) {
      const body = JSON.stringify(bidRequest(uid, n, r));
      expect(body.length).toBeGreaterThanOrEqual(2048);
      expect(body.length).toBeLessThanOrEqual(3072);
      const req = JSON.parse(body) as {
        user: { id: string; buyeruid: string };
        device: { ifa?: string };
        imp: unknown[];
        site?: unknown;
        app?: unknown;
      };
      expect([req.user.id, req.user.buyeruid]).toEqual([uid, uid]);
      // App traffic (device ad ids are UUIDs) carries the key as device.ifa too; web traffic has a site.
      if (req.app) expect(req.device.ifa).toBe(uid);
      else expect(req.site).toBeDefined();
      expect(req.imp.length).toBeGreaterThanOrEqual(1);
    }
  });
});

// Before the mixed scenario, whose ingest stream adds a (short-lived) segment to some users.
describe('--compare', () => {
  it("measures the hello-world and Fastify + Redis holding the same users in the same run (max, then all at half of segd's max) and prints the ratios", async () => {
    const out = outDir();
    const r = await loadtest(
      out,
      ['--scenario', 'lookup', '--compare', '--rate', 'half', '--gate', 'rps>=1,p99<=10s'],
      1,
    );
    expect(r.code).toBe(0);
    const res = r.results!;
    expect(res.results.map((x) => [x.phase, x.target, x.status])).toEqual([
      ['max', 'segd', 'ran'],
      ['max', 'hello-world', 'ran'],
      ['max', 'fastify+redis', 'ran'],
      ['half', 'segd', 'ran'],
      ['half', 'hello-world', 'ran'],
      ['half', 'fastify+redis', 'ran'],
    ]);
    // A baseline slower than half of segd's max cannot keep that rate: its late requests may time out. The rest answer everything.
    for (const x of res.results) if (x.phase === 'max' || x.target === 'segd') expect(x.figures!.errorCount).toBe(0);
    // Every target's half-load run goes at the same rate: half of segd's closed-loop max.
    const segdMax = res.results[0]!.figures!.rps;
    for (const x of res.results.slice(3))
      expect(x.drive!.generator).toContain(`open loop at ${Math.floor(segdMax / 2)} req/s`);
    // Redis was loaded with the same generated users: the same keys give the same answers.
    expect(res.dataCheck!.baselineEqual).toBe(res.dataCheck!.known);
    // Ratios compare the max runs.
    const c = res.comparisons[0]!;
    const rps = (t: string) => res.results.find((x) => x.target === t && x.phase === 'max')!.figures!.rps;
    expect(c.vsHello).toBeCloseTo(segdMax / rps('hello-world'), 6);
    expect(c.vsFastify).toBeCloseTo(segdMax / rps('fastify+redis'), 6);
    // Throughput is gated at the max, latency at half load.
    expect(res.gates.map((g) => [g.scenario, g.gate, g.pass])).toEqual([
      ['lookup max', 'rps>=1', true],
      ['lookup @½max', 'p99<=10s', true],
    ]);
    expect(r.stdout).toMatch(/compare lookup: segd \/ hello-world [\d.]+×, segd \/ fastify\+redis [\d.]+×/);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('segd / Fastify + Redis = <b>');
  });
});

describe('scenarios', () => {
  it('batch and mixed (with an ingest stream) run; endpoints the target lacks are skipped with a reason', async () => {
    const out = outDir();
    const r = await loadtest(
      out,
      [
        '--scenario',
        'batch,mixed,openrtb,sync,ws',
        '--batch',
        '50',
        '--ingest-key',
        INGEST_KEY,
        '--ingest-rate',
        '1000',
        '--ingest-batch',
        '100',
      ],
      1.5,
    );
    expect(r.code).toBe(0);
    const res = r.results!;
    const by = (name: string) => res.results.find((x) => x.scenario === name && x.target === 'segd')!;
    const batch = by('batch');
    expect(batch.figures!.errorCount).toBe(0);
    expect(batch.keysPerS).toBeCloseTo(batch.figures!.rps * 50, 5);
    expect(batch.server!.diff['segd_http_requests_total{route="batch",status="200"}']).toBeGreaterThanOrEqual(
      batch.figures!.requests,
    );

    const mixed = by('mixed');
    expect(mixed.figures!.errorCount).toBe(0);
    const feed = mixed.background!.figures as FeedFigures;
    expect(feed.batch.errorCount).toBe(0);
    expect(feed.acked).toBeGreaterThan(0);
    // Every record acked was applied, and the freshness probes (one per acked probe batch) besides.
    expect(feed.applied).toBeGreaterThanOrEqual(feed.acked);
    expect(feed.applied).toBeLessThanOrEqual(feed.acked + feed.batches);
    expect(mixed.server!.diff['segd_loader_records_total{source="push",outcome="applied"}']).toBe(feed.applied);

    // Built by other teams: until the target serves them, a 404 skips them, and says why.
    for (const name of ['openrtb', 'sync', 'ws']) {
      const s = by(name);
      if (s.status === 'skipped') expect(s.reason).toMatch(/404/);
      else expect(s.status).toBe('ran');
    }
    expect(res.verdict).toBe('no gates');
  });
});
