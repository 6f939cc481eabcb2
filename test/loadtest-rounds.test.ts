// Rounds: a scenario measured as short runs between controls and pooled over
// the rounds both controls vouch for. The pooling is checked against a brute
// force over raw latencies (fast-check), the bracketing rule case by case, and
// the whole path end to end: `segd loadtest --rounds 3` with the native
// client against a real hello-world, C S C S C S C, the pooled figures in
// results.json and the report, and no histogram dump in the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, runSegd, tempDir } from './helpers/server.js';
import { spawnTracked } from './helpers/procs.js';
import { pooledPercentiles, poolRounds, type Counts, type RoundRun } from '../src/loadtest/rounds.js';
import type { Results } from '../src/loadtest/runner.js';

const lat = (p99: number) => ({ p50: 1, p90: 1, p99, p999: p99, max: p99, mean: 1 });
const counts: Counts = [
  [10, 5],
  [20, 1],
];
const run = (lagP99 = 5): RoundRun => ({ m: { drive: { sendLagUs: lat(lagP99) } }, counts });
const control = (p99: number): RoundRun => ({ m: { figures: { latencyUs: lat(p99) } }, counts });

/** The client's rank rule over raw values: the ceil(p × n)-th smallest. */
const rank = (sorted: number[], p: number) => sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;

describe('pooledPercentiles', () => {
  it('equals the percentiles of all the values of all the histograms together', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 1, max: 50_000 }), { minLength: 1, maxLength: 200 }), {
          minLength: 1,
          maxLength: 5,
        }),
        (runs) => {
          const hist = (vals: number[]): Counts => {
            const m = new Map<number, number>();
            for (const v of vals) m.set(v, (m.get(v) ?? 0) + 1);
            return [...m.entries()].sort((a, b) => a[0] - b[0]);
          };
          const all = runs.flat().sort((a, b) => a - b);
          const p = pooledPercentiles(runs.map(hist))!;
          expect(p.requests).toBe(all.length);
          expect(p.p50).toBe(rank(all, 50));
          expect(p.p99).toBe(rank(all, 99));
          expect(p.p999).toBe(rank(all, 99.9));
          expect(p.max).toBe(all[all.length - 1]);
          expect(p.mean).toBeCloseTo(all.reduce((a, b) => a + b, 0) / all.length, 6);
        },
      ),
    );
  });
  it('is undefined for nothing', () => {
    expect(pooledPercentiles([])).toBeUndefined();
    expect(pooledPercentiles([[]])).toBeUndefined();
  });
});

describe('poolRounds', () => {
  it('counts a round only when the controls before and after it pass and it went out on time', () => {
    // C0 ok, S1 ok, C1 slow, S2 ok, C2 ok, S3 late, C3 ok, S4 ok, C4 ok
    const p = poolRounds(
      [run(), run(), run(2000), run()],
      [control(200), control(900), control(250), control(100), control(300)],
    );
    expect(p.rounds).toBe(4);
    expect(p.valid).toEqual([4]);
    expect(p.leftOut.map((l) => l.round)).toEqual([1, 2, 3]);
    expect(p.leftOut[0]!.why.join(' ')).toMatch(/control’s p99 is 0\.900 ms/);
    expect(p.leftOut[1]!.why.join(' ')).toMatch(/^before it: .*0\.900 ms/);
    expect(p.leftOut[2]!.why.join(' ')).toMatch(/this run’s send lag p99 is 2\.000 ms/);
    // One round's latencies, and the two controls around it.
    expect(p.run!.requests).toBe(6);
    expect(p.control!.requests).toBe(12);
  });
  it('pools nothing when no round counts, and leaves out rounds without a histogram', () => {
    const none = poolRounds([run()], [control(5000), control(100)]);
    expect(none.valid).toEqual([]);
    expect(none.run).toBeUndefined();
    const bare = poolRounds([{ m: run().m }], [control(100), control(100)]);
    expect(bare.valid).toEqual([]);
    expect(bare.leftOut[0]!.why).toEqual([expect.stringMatching(/no latency histogram/)]);
  });
  it('pools two counted rounds with the three controls around them once each', () => {
    const p = poolRounds([run(), run()], [control(100), control(100), control(100)]);
    expect(p.valid).toEqual([1, 2]);
    expect(p.run!.requests).toBe(12);
    expect(p.control!.requests).toBe(18);
  });
});

describe('segd loadtest --rounds', () => {
  let hello: ChildProcess;
  let port = 0;
  beforeAll(async () => {
    // The rounds are pooled from the native client's histograms: build it (gcc is in the image and in .ci/setup-system.sh).
    execFileSync('bash', [join(ROOT, 'native/build.sh'), '--require'], { stdio: 'inherit' });
    hello = spawnTracked(process.execPath, [join(ROOT, 'dist/src/loadtest/hello-world.js'), '0'], {
      env: { ...process.env, HELLO_HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    port = await new Promise<number>((ok, fail) => {
      let buf = '';
      hello.stdout!.setEncoding('utf8').on('data', (c: string) => {
        buf += c;
        const m = /"port":(\d+)/.exec(buf);
        if (m) ok(Number(m[1]));
      });
      hello.on('exit', (code) => fail(new Error(`hello-world exited ${code}`)));
    });
  });
  afterAll(async () => {
    if (hello?.exitCode === null) {
      const exited = new Promise((r) => hello.once('exit', r));
      hello.kill('SIGTERM');
      await exited;
    }
  });

  it('alternates control and segd, pools the rounds that count, and says so', async () => {
    // The hello-world stands in for the target too: it answers /healthz and every lookup with 200.
    const out = tempDir('segd-rounds-');
    try {
      const r = await runSegd([
        'loadtest',
        ...['--target', `http://127.0.0.1:${port}`, '--scenario', 'lookup', '--client', 'native', '--rounds', '3'],
        ...['--rate', '1000', '--duration', '1', '--warmup', '0', '--connections', '4', '--keys', '100'],
        ...['--users', '1000', '--out', out, '--quiet', '--gate', 'errors<=0.01%,p99<=10s'],
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const text = readFileSync(join(out, 'results.json'), 'utf8');
      expect(text).not.toMatch(/"counts"/);
      const res = JSON.parse(text) as Results;
      expect(res.results.map((x) => `${x.control ? 'C' : 'S'}${x.round}`)).toEqual([
        'C0',
        'S1',
        'C1',
        'S2',
        'C2',
        'S3',
        'C3',
      ]);
      const p = res.pooled![0]!;
      expect(p.scenario).toBe('lookup');
      expect(p.rounds).toBe(3);
      expect(p.valid.length + p.leftOut.length).toBe(3);
      // What counts is exactly what the bracketing rule says of the recorded runs.
      const runs = res.results.filter((x) => !x.control);
      const expected = runs.filter((x) => !x.generatorBound).map((x) => x.round);
      expect(p.valid.every((n) => expected.includes(n))).toBe(true);
      if (p.valid.length) {
        const counted = runs.filter((x) => p.valid.includes(x.round!));
        expect(p.run!.requests).toBe(counted.reduce((n, x) => n + x.figures!.requests, 0));
        expect(p.run!.p99).toBeGreaterThanOrEqual(Math.min(...counted.map((x) => x.figures!.latencyUs.p99)));
        expect(p.run!.p99).toBeLessThanOrEqual(Math.max(...counted.map((x) => x.figures!.latencyUs.p99)));
      }
      expect(r.stdout).toMatch(new RegExp(`lookup: ${p.valid.length} of 3 rounds count`));
      // The gates judge the scenario once, on the pooled rounds (or, with none that counts, the median round).
      expect(res.gates.map((g) => g.scenario)).toEqual([
        `lookup (${p.valid.length ? `${p.valid.length} rounds pooled` : 'no round counts'})`,
        `lookup (${p.valid.length ? `${p.valid.length} rounds pooled` : 'no round counts'})`,
      ]);
      expect(res.gates.every((g) => g.pass)).toBe(true);
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      expect(html).toMatch(/<h2>Rounds<\/h2>/);
      expect(html).toMatch(/aria-label="p99 of each round"/);
      expect((html.match(/<rect class="(bar|p99)[^"]*"/g) ?? []).length).toBeGreaterThanOrEqual(7);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
