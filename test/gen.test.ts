// The synthetic feed generator: deterministic, realistic in shape, and the CLI
// writes exactly what the library generates (benchmarks rely on uidFor).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Synthetic, uidFor, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { runSegd, tempDir } from './helpers/server.js';

describe('gen', () => {
  it('writes the same users for the same seed, with the documented shape', async () => {
    const dir = tempDir();
    const a = join(dir, 'a.ndjson');
    const r = await runSegd(['gen', '--users', '5000', '--out', a, '--seed', '3', '--ts', '1700000000']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('5000 users');
    const lines = readFileSync(a, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(5000);
    const syn = new Synthetic({ ...DEFAULT_SYNTHETIC, seed: 3 });
    expect(lines[1234]).toBe(syn.line(1234, 1700000000).trimEnd());
    const recs = lines.map(
      (l) => JSON.parse(l) as { uid: string; segments: Array<number | { id: number; ttl: number }> },
    );
    expect(new Set(recs.map((x) => x.uid)).size).toBe(5000);
    expect(recs.every((x, i) => x.uid === uidFor(3, i))).toBe(true);
    const sizes = recs.map((x) => x.segments.length);
    expect(Math.min(...sizes)).toBe(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(30);
    const median = [...sizes].sort((x, y) => x - y)[2500]!;
    expect(median).toBeLessThanOrEqual(6); // skewed: most users in a handful
    const cookie = recs.filter((x) => /^[0-9A-Za-z]{22}$/.test(x.uid)).length;
    const uuid = recs.filter((x) =>
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(x.uid),
    ).length;
    expect(cookie + uuid).toBe(5000);
    expect(cookie / 5000).toBeGreaterThan(0.5);
    const all = recs.flatMap((x) => x.segments);
    const ttlShare = all.filter((s) => typeof s === 'object').length / all.length;
    expect(ttlShare).toBeGreaterThan(0.15);
    expect(ttlShare).toBeLessThan(0.25);
    // Zipf-like: the most popular segment is far more common than the median one.
    const freq = new Map<number, number>();
    for (const s of all) {
      const id = typeof s === 'number' ? s : s.id;
      freq.set(id, (freq.get(id) ?? 0) + 1);
    }
    const f = [...freq.values()].sort((x, y) => y - x);
    expect(f[0]! / f[Math.floor(f.length / 2)]!).toBeGreaterThan(20);
  });

  it('refuses bad flags with a clear message', async () => {
    const r = await runSegd(['gen', '--users', 'lots', '--out', join(tempDir(), 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--users must be a number');
    const r2 = await runSegd(['gen', '--users', '10']);
    expect(r2.stderr).toContain('--out FILE is required');
  });
});
