// `segd insights` against a real node: the tables carry the exact sizes,
// overlap, Jaccard, affinity and reach of a seeded data set; the node is found
// from the config (host, port, first admin key) as ops run it on the node's
// host; a partner key sees only its licensed segments; a node that is down, a
// bad key and a bad id each give one clear line and a non-zero exit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { runSegd, startSegd, tempDir, type Segd } from './helpers/server.js';
import { ADMIN_KEY, KEYS, PARTNERS, SEGMENTS } from './helpers/activation.js';
import { insightsAudience } from './helpers/insights-audience.js';

const { count, inAll, seed } = insightsAudience(600, 150);
const int = (n: number) => n.toLocaleString('en');

const dir = tempDir('segd-insights-cli-');
const config = join(dir, 'segd.json');
let segd: Segd;

beforeAll(async () => {
  writeFileSync(join(dir, 'seed.ndjson'), seed());
  writeFileSync(config, JSON.stringify({ adminKeys: [ADMIN_KEY], partners: PARTNERS, segments: SEGMENTS }));
  segd = await startSegd({
    env: { SEGD_SEED: join(dir, 'seed.ndjson'), SEGD_CONFIG: config, SEGD_INSIGHTS: 'on' },
  });
});
afterAll(async () => {
  await segd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `segd insights …` with the node's own config: host, port and admin key from it. */
const local = (args: string[]) =>
  runSegd(['insights', ...args], { SEGD_CONFIG: config, SEGD_HOST: '127.0.0.1', SEGD_PORT: String(segd.port) });
/** `segd insights …` naming the node and key, with no config at all. */
const remote = (args: string[], key: string, url = segd.url) =>
  runSegd(['insights', ...args, '--url', url, '--key', key]);
/** The cells of a table line that starts with `first` (header and rule lines excluded). */
function row(stdout: string, first: string | number): string[] {
  const line = stdout.split('\n').find((l) => l.trim().split(/\s+/)[0] === String(first));
  expect(line, `no row ${first} in:\n${stdout}`).toBeDefined();
  return line!.trim().split(/\s{2,}/);
}

describe('segd insights', () => {
  it('prints sizes, overlap with Jaccard, affinity and reach from the node its config names', async () => {
    const sizes = await local(['sizes', '1001,3005,777']);
    expect(sizes.stderr).toBe('');
    expect(sizes.code).toBe(0);
    expect(
      sizes.stdout
        .split('\n')[0]!
        .trim()
        .split(/\s{2,}/),
    ).toEqual(['segment', 'size', 'members changed']);
    expect(row(sizes.stdout, 1001).slice(0, 2)).toEqual(['1001', int(inAll(1001))]);
    expect(row(sizes.stdout, 1001)[2]).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(row(sizes.stdout, 777)).toEqual(['777', '0', '—']);

    const o = await local(['overlap', '1001,1002,3005']);
    expect(o.code).toBe(0);
    const [counts, jaccard] = o.stdout.split('\n\n');
    const ids = [1001, 1002, 3005];
    for (const a of ids) {
      expect(row(counts!, a)).toEqual([String(a), int(inAll(a)), ...ids.map((b) => int(inAll(a, b)))]);
      const j = (b: number) => (inAll(a, b) / (inAll(a) + inAll(b) - inAll(a, b))).toFixed(4);
      expect(row(jaccard!, a)).toEqual([String(a), int(inAll(a)), ...ids.map(j)]);
    }

    const a = await local(['affinity', '3005', '--min', '1', '--limit', '2']);
    expect(a.code).toBe(0);
    const base = count((s) => s.length > 0);
    expect(a.stdout).toContain(`segment 3005: ${inAll(3005)} users of ${base}`);
    const index = (b: number) => (inAll(3005, b) / inAll(3005) / (inAll(b) / base)) * 100;
    const top = [1001, 1002, 2001].sort((x, y) => index(y) - index(x)).slice(0, 2);
    for (const b of top)
      expect(row(a.stdout, b)).toEqual([
        String(b),
        int(inAll(b)),
        int(inAll(3005, b)),
        ((inAll(3005, b) / inAll(3005)) * 100).toFixed(1) + '%',
        index(b).toFixed(0),
      ]);
    expect(a.stdout.trim().split('\n')).toHaveLength(1 + 2 + top.length);

    const r = await local(['reach', '--all', '1001', '--any', '1002,2001', '--none', '3005', '--json']);
    expect(r.code).toBe(0);
    const users = count((s) => s.includes(1001) && (s.includes(1002) || s.includes(2001)) && !s.includes(3005));
    expect(JSON.parse(r.stdout)).toEqual({ all: [1001], any: [1002, 2001], none: [3005], users });
    const every = await local(['reach']);
    expect(row(every.stdout, 'every')).toEqual(['every user', int(base)]);
  });

  it('shows a partner key only its licensed segments', async () => {
    // dsp1: 1001, 1002 and 2001 (open to all); not 3005.
    const ok = await remote(['sizes', '1001'], KEYS.dsp1);
    expect(ok.code).toBe(0);
    expect(row(ok.stdout, 1001)[1]).toBe(int(inAll(1001)));
    for (const args of [
      ['sizes', '1001,3005'],
      ['overlap', '1001,3005'],
      ['reach', '--none', '3005'],
    ]) {
      const r = await remote(args, KEYS.dsp1);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stdout).not.toContain(int(inAll(3005)));
      expect(r.stderr).toMatch(/^segd insights: .* HTTP 403 FORBIDDEN_SEGMENT: .*3005/);
    }
    const aff = await remote(['affinity', '1002', '--min', '1', '--json'], KEYS.dsp1);
    expect(aff.code).toBe(0);
    const listed = (JSON.parse(aff.stdout) as { results: Array<{ segment: number }> }).results.map((x) => x.segment);
    expect(listed.sort()).toEqual([1001, 2001]);
    // The admin key sees 3005 in the same affinity: the partner's list is narrower, not empty by accident.
    const all = await remote(['affinity', '1002', '--min', '1', '--json'], ADMIN_KEY);
    expect((JSON.parse(all.stdout) as { results: Array<{ segment: number }> }).results.map((x) => x.segment)).toContain(
      3005,
    );
  });

  it('says why in one line and exits non-zero when the node is down, the key is bad or an id is wrong', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const down = await remote(['sizes', '1001'], ADMIN_KEY, `http://127.0.0.1:${closed}`);
    expect(down.code).not.toBe(0);
    expect(down.stdout).toBe('');
    expect(down.stderr).toBe(`segd insights: cannot reach segd at http://127.0.0.1:${closed}: ECONNREFUSED\n`);

    const bad = await remote(['overlap', '1001,1002'], 'not-a-key-0123456789');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/^segd insights: .* HTTP 401 UNAUTHORIZED: /);

    const id = await remote(['sizes', '1001,x'], ADMIN_KEY);
    expect(id.code).not.toBe(0);
    expect(id.stderr).toBe('segd insights: sizes: "x" is not a segment id\n');

    const noKey = await runSegd(['insights', 'sizes', '1001', '--url', segd.url]);
    expect(noKey.code).not.toBe(0);
    expect(noKey.stderr).toContain('no key: pass --key');

    const unknown = await runSegd(['insights', 'size']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^insights: unknown query "size"\nusage: segd insights/);
  });
});
