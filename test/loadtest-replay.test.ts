// Capture and replay with real segd processes: one samples the lookups it
// takes (SEGD_CAPTURE_SAMPLE) while `segd loadtest` drives it; `segd
// loadtest --replay` sends the capture to a second segd that captures
// everything it takes, so what the replay sent can be compared with what was
// captured: the same route mix and keys, and the same gaps between requests
// within a stated bound. Capture files rotate and are bounded; bearer keys
// never reach them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runSegd, startSegd, stopReport, CLEAN_STOP, tempDir, type Segd } from './helpers/server.js';
import { planReplay } from '../src/loadtest/replay.js';
import type { Results } from '../src/loadtest/runner.js';

const USERS = 3000;
const SEED = 41;

let work: string;
let source: Segd;
let replica: Segd;

interface Line {
  t: number;
  route: string;
  q?: string;
  body?: string;
  partner: string;
}
const linesOf = (dir: string): Line[] =>
  readdirSync(dir)
    .filter((n) => n.startsWith('capture-'))
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as Line)
    .sort((a, b) => a.t - b.t);

beforeAll(async () => {
  work = tempDir('segd-lt-replay-');
  const feed = join(work, 'feed.ndjson');
  expect(
    (await runSegd(['gen', '--users', String(USERS), '--seed', String(SEED), '--out', feed, '--quiet'])).code,
  ).toBe(0);
  [source, replica] = await Promise.all([
    startSegd({ dataDir: join(work, 'a'), env: { SEGD_SEED: feed, SEGD_CAPTURE_SAMPLE: '0.1' } }),
    startSegd({ dataDir: join(work, 'b'), env: { SEGD_SEED: feed, SEGD_CAPTURE_SAMPLE: '1' } }),
  ]);
});

afterAll(async () => {
  for (const s of [source, replica]) if (s) expect(await stopReport(s)).toEqual(CLEAN_STOP);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('capture → replay', () => {
  it('replays what was captured: the same route mix and keys, gaps within 2 ms at the median', async () => {
    const drive = await runSegd([
      'loadtest',
      '--target',
      source.url,
      '--scenario',
      'lookup,batch',
      '--batch',
      '10',
      '--rate',
      '1000',
      '--duration',
      '2',
      '--warmup',
      '0',
      '--users',
      String(USERS),
      '--seed',
      String(SEED),
      '--keys',
      '3000',
      '--out',
      join(work, 'drive'),
      '--quiet',
    ]);
    expect(drive.code).toBe(0);
    // The source stops, so its buffered lines are on disk.
    expect(await stopReport(source)).toEqual(CLEAN_STOP);
    const captured = linesOf(join(work, 'a', 'capture'));
    expect(captured.length).toBeGreaterThan(200);
    const mix = (ls: Line[]) => ls.filter((l) => l.route === 'batch').length / ls.length;
    expect(mix(captured)).toBeGreaterThan(0.2);
    expect(mix(captured)).toBeLessThan(0.8);

    const r = await runSegd([
      'loadtest',
      '--target',
      replica.url,
      '--replay',
      join(work, 'a', 'capture'),
      '--warmup',
      '0',
      '--duration',
      '600',
      '--out',
      join(work, 'replay'),
      '--quiet',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(join(work, 'replay', 'results.json'), 'utf8')) as Results;
    expect(res.replay!.requests).toBe(captured.length);
    const run = res.results.find((x) => x.target === 'segd')!;
    expect(run.figures!.errorCount).toBe(0);
    expect(run.figures!.requests).toBe(captured.length);
    expect(run.drive!.generator).toMatch(/^replay/);
    // The replica captured every request it took: the replay itself, and the data check before it.
    expect(await stopReport(replica)).toEqual(CLEAN_STOP);
    const sent = linesOf(join(work, 'b', 'capture')).filter((l) => l.t >= run.figures!.startMs! - 5);
    expect(sent.length).toBe(captured.length);
    expect(Math.abs(mix(sent) - mix(captured))).toBeLessThan(0.02);
    const keys = (ls: Line[]) => ls.map((l) => l.q ?? l.body).sort();
    expect(keys(sent)).toEqual(keys(captured));
    // Inter-arrival: the replica's gaps against the captured ones, request by request.
    const gaps = (ls: Line[]) => ls.slice(1).map((l, i) => l.t - ls[i]!.t);
    const a = gaps(captured);
    const b = gaps(sent);
    const diffs = a.map((g, i) => Math.abs(g - b[i]!)).sort((x, y) => x - y);
    expect(diffs[Math.floor(diffs.length / 2)]!).toBeLessThan(2);
    const span = (ls: Line[]) => ls.at(-1)!.t - ls[0]!.t;
    expect(Math.abs(span(sent) - span(captured)) / span(captured)).toBeLessThan(0.05);
  }, 120_000);

  it('keeps each partner’s requests under its key, leaves out partners without one, and scales time by --speed', () => {
    const dir = join(work, 'plan');
    mkdirSync(dir, { recursive: true });
    const f = join(dir, 'capture-w0-1.ndjson');
    writeFileSync(
      f,
      [
        { t: 1000, route: 'segments', q: 'uid=a&format=kv', partner: 'dsp', format: 'kv' },
        { t: 1010, route: 'segments', q: 'uid=b', partner: '', format: 'json' },
        { t: 1020, route: 'batch', body: '{"uids":["a","b"]}', ct: 'application/json', partner: 'dsp' },
        { t: 1030, route: 'segments', q: 'uid=c', partner: 'nokey', format: 'json' },
        { t: 1040, route: 'batch', tooLarge: 70000, ct: 'application/json', partner: '' },
      ]
        .map((l) => JSON.stringify(l))
        .join('\n') + '\nnot json\n',
    );
    const p = planReplay([f], { dsp: 'k-dsp' }, 2);
    expect(p.requests.map((r) => [r.method, r.path, r.headers.Authorization])).toEqual([
      ['GET', '/v1/segments?uid=a&format=kv', 'Bearer k-dsp'],
      ['GET', '/v1/segments?uid=b', undefined],
      ['POST', '/v1/segments:batch', 'Bearer k-dsp'],
    ]);
    expect([...p.schedule]).toEqual([0, 5000, 10000]);
    expect(p.stats.skipped).toEqual({ bad: 1, tooLarge: 1, noKey: { nokey: 1 } });
    expect(p.stats.byRoute).toEqual({ segments: 2, batch: 1 });
  });
});

describe('capture files', () => {
  it('rotate at SEGD_CAPTURE_FILE_BYTES, stay within SEGD_CAPTURE_TOTAL_BYTES, and never hold a bearer key', async () => {
    const data = join(work, 'rot');
    const key = 'capture-partner-key-0123456789';
    const cfg = join(work, 'rot.json');
    writeFileSync(cfg, JSON.stringify({ partners: [{ id: 'p1', name: 'P1', keys: [key], segments: '*' }] }));
    const s = await startSegd({
      dataDir: data,
      env: {
        SEGD_CONFIG: cfg,
        SEGD_CAPTURE_SAMPLE: '1',
        SEGD_CAPTURE_FILE_BYTES: String(64 * 1024),
        SEGD_CAPTURE_TOTAL_BYTES: String(256 * 1024),
        SEGD_WORKERS: '1',
      },
    });
    try {
      const uid = 'u-' + 'x'.repeat(100);
      for (let i = 0; i < 4000; i++) {
        const r = await fetch(`${s.url}/v1/segments?uid=${uid}${i}`, { headers: { authorization: `Bearer ${key}` } });
        expect(r.status).toBe(200);
        await r.arrayBuffer();
      }
    } finally {
      expect(await stopReport(s)).toEqual(CLEAN_STOP);
    }
    const dir = join(data, 'capture');
    const files = readdirSync(dir);
    const sizes = files.map((n) => readFileSync(join(dir, n)).length);
    // 4000 lines of ~200 bytes ≈ 0.8 MB written: rotated many times, the oldest removed.
    expect(files.length).toBeGreaterThan(2);
    // A file stops at its size: the line that would pass it starts the next file.
    for (const n of sizes) expect(n).toBeLessThanOrEqual(64 * 1024);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(256 * 1024 + 64 * 1024 + 256 * 1024);
    const text = files.map((n) => readFileSync(join(dir, n), 'utf8')).join('');
    expect(text).not.toContain(key);
    expect(text).toContain('"partner":"p1"');
  }, 60_000);
});
