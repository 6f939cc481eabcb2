// The known-users filter: never a false negative, a false-positive rate near
// its target, and — through the real server — persisted, rebuilt when corrupt
// while answers stay right, and shared with workers as the loader adds users.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { BlockedBloom, sizeFor } from '../src/filters/blocked-bloom.js';
import { saveFilter, loadFilter, FilterFileError } from '../src/filters/persist.js';
import { uidFor } from '../src/gen/synthetic.js';
import { metric } from './helpers/metrics.js';
import {
  startSegd,
  runSegd,
  tempDir,
  dropFeed,
  feedLine,
  stopReport,
  CLEAN_STOP,
  segmentsOf,
  waitFor,
} from './helpers/server.js';

describe('blocked bloom filter', () => {
  it('never answers "not present" for a key that was added', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }), { maxLength: 300 }),
        fc.integer({ min: 1, max: 2000 }),
        (keys, capacity) => {
          const f = new BlockedBloom(sizeFor(capacity, 0.01));
          for (const k of keys) f.add(k);
          return keys.every((k) => f.mayContain(k));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('answers the same for a key checked from its ASCII bytes, so screening bytes has no false negative', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.string({
            unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)),
            minLength: 1,
            maxLength: 64,
          }),
          {
            maxLength: 200,
          },
        ),
        fc.array(fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 64 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.nat({ max: 16 }),
        (added, others, capacity, pad) => {
          const f = new BlockedBloom(sizeFor(capacity, 0.01));
          for (const k of added) f.add(k);
          for (const k of [...added, ...others]) {
            // The key somewhere inside a larger buffer, as a uid inside a request body.
            const bytes = Buffer.concat([Buffer.alloc(pad, 0x22), Buffer.from(k, 'latin1'), Buffer.alloc(pad, 0x2c)]);
            expect(f.mayContainAscii(bytes, pad, pad + k.length)).toBe(f.mayContain(k));
          }
          expect(added.every((k) => f.mayContainAscii(Buffer.from(k, 'latin1'), 0, k.length))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the false-positive rate near its target at capacity', () => {
    for (const target of [0.01, 0.001]) {
      const n = 100_000;
      const f = new BlockedBloom(sizeFor(n, target));
      for (let i = 0; i < n; i++) f.add(uidFor(11, i));
      let fp = 0;
      const probes = 200_000;
      for (let i = 0; i < probes; i++) if (f.mayContain(uidFor(11, n + i))) fp++;
      const rate = fp / probes;
      expect(rate).toBeGreaterThan(target * 0.3);
      expect(rate).toBeLessThan(target * 1.5);
    }
  });

  it('round-trips through its file and refuses a corrupt or truncated one', async () => {
    const dir = tempDir();
    const path = join(dir, 'f.bloom');
    const f = new BlockedBloom(sizeFor(1000, 0.01));
    for (let i = 0; i < 1000; i++) f.add(`user-${i}`);
    await saveFilter(path, f, 1000, 42);
    const back = await loadFilter(path);
    expect(back.writes).toBe(42);
    expect(back.added).toBe(1000);
    expect(back.filter.params).toEqual(f.params);
    expect(Buffer.from(back.filter.buffer).equals(Buffer.from(f.buffer))).toBe(true);

    const bytes = readFileSync(path);
    bytes[100]! ^= 0x10;
    writeFileSync(path, bytes);
    await expect(loadFilter(path)).rejects.toThrow(new FilterFileError('checksum mismatch'));
    writeFileSync(path, bytes.subarray(0, bytes.length - 7));
    await expect(loadFilter(path)).rejects.toThrow(/truncated/);
    writeFileSync(path, 'hello');
    await expect(loadFilter(path)).rejects.toThrow(/not a segd filter file/);
  });
});

describe('known-users filter in the server', () => {
  it('is persisted, reloaded without a rebuild, rebuilt when corrupt, and answers stay right throughout', async () => {
    const dataDir = tempDir();
    const seed = join(tempDir(), 'seed.ndjson');
    expect((await runSegd(['gen', '--users', '20000', '--out', seed, '--quiet'])).code).toBe(0);
    const env = { SEGD_SEED: seed, SEGD_BLOOM_USERS: '30000', SEGD_WORKERS: '2' };
    const known = [0, 1, 2, 19_999].map((i) => uidFor(1, i));
    const first = await startSegd({ dataDir, env });
    const want = await Promise.all(known.map((u) => segmentsOf(first, u)));
    expect(want.every((s) => s.length > 0)).toBe(true);
    expect(await stopReport(first)).toEqual(CLEAN_STOP);
    const file = join(dataDir, 'known-users.bloom');
    expect(existsSync(file)).toBe(true);

    // Restart: the saved filter matches the store, so it is loaded, not rebuilt.
    const second = await startSegd({ dataDir, env });
    expect(second.logs.some((l) => l.msg === 'known-users filter loaded' && l.keys === 20000)).toBe(true);
    expect(second.logs.some((l) => l.msg === 'known-users filter built')).toBe(false);
    expect(await (await fetch(`${second.url}/readyz`)).json()).toEqual({ status: 'ready', filter: 'ready' });
    expect(await Promise.all(known.map((u) => segmentsOf(second, u)))).toEqual(want);
    // Unknown users are answered by the filter, mostly without LMDB.
    for (let i = 0; i < 200; i++) expect(await segmentsOf(second, uidFor(1, 1_000_000 + i))).toEqual([]);
    expect(await metric(second.url, 'segd_bloom_checks_total', { result: 'negative' })).toBeGreaterThan(180);
    expect(await metric(second.url, 'segd_bloom_false_positive_rate')).toBeLessThan(0.1);
    expect(await stopReport(second)).toEqual(CLEAN_STOP);

    // Corrupt it: the server starts, answers correctly at once, and rebuilds.
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(file, bytes);
    const third = await startSegd({ dataDir, env, waitReady: false });
    expect(await Promise.all(known.map((u) => segmentsOf(third, u)))).toEqual(want);
    const built = await third.waitForLog((l) => l.msg === 'known-users filter built');
    expect(built.keys).toBe(20000);
    expect(
      third.logs.some((l) => l.msg === 'known-users filter unusable; rebuilding' && l.err === 'checksum mismatch'),
    ).toBe(true);
    expect(await Promise.all(known.map((u) => segmentsOf(third, u)))).toEqual(want);
    expect(await stopReport(third, { allowWarnings: true })).toEqual(CLEAN_STOP);
  });

  it('workers see users the loader adds, through the shared filter', async () => {
    const segd = await startSegd({ env: { SEGD_WORKERS: '2', SEGD_BLOOM_USERS: '1000' } });
    await segd.waitForLog((l) => l.msg === 'known-users filter built');
    const inbox = join(segd.dataDir, 'inbox');
    // Asked before it exists: the filter says no on every worker.
    for (let i = 0; i < 6; i++) expect(await segmentsOf(segd, 'newcomer')).toEqual([]);
    await dropFeed(inbox, '001.ndjson', feedLine({ op: 'add', uid: 'newcomer', segments: [77] }));
    await waitFor(async () => (await segmentsOf(segd, 'newcomer')).length > 0, 10_000);
    // Fresh connections land on both workers; every one must see the user.
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const h = (await (await fetch(`${segd.url}/healthz`, { headers: { connection: 'close' } })).json()) as {
        worker: number;
      };
      seen.add(h.worker);
      const r = await fetch(`${segd.url}/v1/segments?uid=newcomer`, { headers: { connection: 'close' } });
      expect(await r.json()).toEqual({ uid: 'newcomer', segments: [77] });
    }
    expect(seen.size).toBe(2);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('grows the filter when more users arrive than it was sized for', async () => {
    const seed = join(tempDir(), 'seed.ndjson');
    expect((await runSegd(['gen', '--users', '5000', '--out', seed, '--quiet'])).code).toBe(0);
    const segd = await startSegd({ env: { SEGD_SEED: seed, SEGD_BLOOM_USERS: '1000', SEGD_WORKERS: '2' } });
    const grown = await segd.waitForLog((l) => l.msg === 'known-users filter built' && (l.capacity as number) >= 5000);
    expect(grown.keys).toBe(5000);
    expect(segd.logs.some((l) => l.msg === 'known-users filter full; rebuilding at twice the size')).toBe(true);
    for (const i of [0, 2500, 4999]) expect((await segmentsOf(segd, uidFor(1, i))).length).toBeGreaterThan(0);
    // A user added after the swap is seen by every worker (each on the new filter).
    await dropFeed(
      join(segd.dataDir, 'inbox'),
      'after-swap.ndjson',
      feedLine({ op: 'add', uid: 'after-swap', segments: [5] }),
    );
    await waitFor(async () => (await segmentsOf(segd, 'after-swap')).length > 0, 10_000);
    const workers = new Set<number>();
    for (let i = 0; i < 30; i++) {
      workers.add(
        (
          (await (await fetch(`${segd.url}/healthz`, { headers: { connection: 'close' } })).json()) as {
            worker: number;
          }
        ).worker,
      );
      expect(
        await (await fetch(`${segd.url}/v1/segments?uid=after-swap`, { headers: { connection: 'close' } })).json(),
      ).toEqual({ uid: 'after-swap', segments: [5] });
    }
    expect(workers.size).toBe(2);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });
});

describe('segment export', () => {
  it('exports a segment as a bloom filter the partner reader understands; admin key required', async () => {
    const seed = join(tempDir(), 'seed.ndjson');
    const lines = [];
    for (let i = 0; i < 3000; i++)
      lines.push(feedLine({ op: 'add', uid: `u-${i}`, segments: i % 3 === 0 ? [500, 501] : [501] }));
    lines.push(
      feedLine({
        op: 'add',
        uid: 'expired',
        segments: [{ id: 500, ttl: 60 }],
        ts: Math.floor(Date.now() / 1000) - 3600,
      }),
    );
    writeFileSync(seed, lines.join(''));
    const key = 'admin-key-0123456789abcdef';
    const segd = await startSegd({ env: { SEGD_SEED: seed, SEGD_ADMIN_KEYS: `other-key-0000000000000,${key}` } });
    const get = (path: string, auth?: string) =>
      fetch(`${segd.url}${path}`, { headers: auth ? { authorization: `Bearer ${auth}` } : {} });

    for (const bad of [undefined, 'wrong-key-that-is-long-enough']) {
      const r = await get('/v1/segments/500/bloom', bad);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
    expect((await get('/v1/segments/99999999999/bloom', key)).status).toBe(400);
    expect((await get('/v1/segments/500/bloom?fp=2', key)).status).toBe(400);

    const r = await get('/v1/segments/500/bloom?fp=0.01', key);
    expect(r.status).toBe(200);
    const doc = (await r.json()) as { members: number; segment: number; format: string };
    expect(doc).toMatchObject({ format: 'segd-blocked-bloom', version: 1, segment: 500, members: 1000, fpRate: 0.01 });
    const { openSegmentExport } = (await import('../examples/segment-bloom-reader.mjs')) as {
      openSegmentExport: (d: unknown) => { mayContain: (k: string) => boolean };
    };
    const seg = openSegmentExport(doc);
    let fp = 0;
    for (let i = 0; i < 3000; i++) {
      if (i % 3 === 0) expect(seg.mayContain(`u-${i}`)).toBe(true);
      else if (seg.mayContain(`u-${i}`)) fp++;
    }
    expect(fp / 2000).toBeLessThan(0.03);
    // An expired membership is not exported.
    expect(doc.members).toBe(1000);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });
});
