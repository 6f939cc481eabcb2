// Feed file → loader → LMDB → lookup over real HTTP, in every answer format.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unpack, pack } from 'msgpackr';
import { startSegd, tempDir, feedLine, stopReport, waitFor, CLEAN_STOP, type Segd } from './helpers/server.js';
import { nowSeconds, secondsAt } from '../src/lookup/segments.js';

const now = () => Math.floor(Date.now() / 1000);

describe('lookups from a loaded feed', () => {
  let segd: Segd;
  beforeAll(async () => {
    const dir = tempDir();
    const seed = join(dir, 'seed.ndjson');
    writeFileSync(
      seed,
      [
        feedLine({ op: 'add', uid: 'alice', segments: [57, 12, { id: 99, ttl: 3600 }] }),
        feedLine({ op: 'add', uid: 'bob', segments: [7] }),
        // Expired before it was even loaded: ts 2 h ago, TTL 1 h.
        feedLine({ op: 'add', uid: 'bob', segments: [{ id: 8, ttl: 3600 }], ts: now() - 7200 }),
        // Expires two seconds after load: present now, gone later.
        // Long enough to be seen on a loaded machine (the seed loads while the workers start), short enough to wait out.
        feedLine({ op: 'add', uid: 'carol', segments: [1, { id: 2, ttl: 8 }] }),
        feedLine({ op: 'add', uid: 'dave', segments: [3, 4, 5] }),
        feedLine({ op: 'remove', uid: 'dave', segments: [4] }),
        feedLine({ op: 'add', uid: 'erin', segments: [1] }),
        feedLine({ op: 'replace', uid: 'erin', segments: [9, 8] }),
        feedLine({ op: 'add', uid: 'frank', segments: [1] }),
        feedLine({ op: 'delete', uid: 'frank' }),
        feedLine({ op: 'add', uid: 'ünïcødé/🙂 key', segments: [4294967295, 0] }),
      ].join(''),
    );
    segd = await startSegd({ env: { SEGD_SEED: seed, SEGD_WORKERS: '2' } });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  const get = (q: string, headers: Record<string, string> = {}) => fetch(`${segd.url}/v1/segments?${q}`, { headers });

  it('answers JSON with ascending segment ids', async () => {
    const r = await get('uid=alice');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(await r.json()).toEqual({ uid: 'alice', segments: [12, 57, 99] });
  });

  it('applies remove, replace and delete in feed order', async () => {
    expect(await (await get('uid=dave')).json()).toEqual({ uid: 'dave', segments: [3, 5] });
    expect(await (await get('uid=erin')).json()).toEqual({ uid: 'erin', segments: [8, 9] });
    expect(await (await get('uid=frank')).json()).toEqual({ uid: 'frank', segments: [] });
  });

  it('returns an unknown user as 200 with no segments', async () => {
    const r = await get('uid=nobody-at-all');
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ uid: 'nobody-at-all', segments: [] });
  });

  it('never returns an expired membership', async () => {
    expect(await (await get('uid=bob')).json()).toEqual({ uid: 'bob', segments: [7] });
    expect(((await (await get('uid=carol')).json()) as { segments: number[] }).segments).toEqual([1, 2]);
    // Gone once its TTL has passed, without a sweep or a reload.
    await waitFor(
      async () => ((await (await get('uid=carol')).json()) as { segments: number[] }).segments.length === 1,
    );
    expect(((await (await get('uid=carol')).json()) as { segments: number[] }).segments).toEqual([1]);
  });

  it('answers msgpack on Accept and ?format=msgpack', async () => {
    for (const r of [
      await get('uid=alice', { accept: 'application/msgpack' }),
      await get('uid=alice&format=msgpack'),
    ]) {
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/msgpack');
      expect(unpack(Buffer.from(await r.arrayBuffer()))).toEqual({ uid: 'alice', segments: [12, 57, 99] });
    }
  });

  it('answers ad-server key-values on ?format=kv', async () => {
    const r = await get('uid=alice&format=kv');
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await r.text()).toBe('seg=12,57,99');
    expect(await (await get('uid=nobody&format=kv')).text()).toBe('seg=');
  });

  it('handles percent-encoded unicode keys and the u32 range', async () => {
    const uid = 'ünïcødé/🙂 key';
    const r = await get(`uid=${encodeURIComponent(uid)}`);
    expect(await r.json()).toEqual({ uid, segments: [0, 4294967295] });
  });

  it('answers a batch in request order, in JSON and msgpack', async () => {
    const uids = ['bob', 'nobody', 'alice', 'dave'];
    const r = await fetch(`${segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uids }),
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({
      results: [
        { uid: 'bob', segments: [7] },
        { uid: 'nobody', segments: [] },
        { uid: 'alice', segments: [12, 57, 99] },
        { uid: 'dave', segments: [3, 5] },
      ],
    });
    const m = await fetch(`${segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/msgpack', accept: 'application/msgpack' },
      body: pack({ uids }),
    });
    expect(m.headers.get('content-type')).toBe('application/msgpack');
    expect((unpack(Buffer.from(await m.arrayBuffer())) as { results: unknown[] }).results).toEqual([
      { uid: 'bob', segments: [7] },
      { uid: 'nobody', segments: [] },
      { uid: 'alice', segments: [12, 57, 99] },
      { uid: 'dave', segments: [3, 5] },
    ]);
  });

  it('counts a batch read from its bytes as its GETs count: a hit per known uid, a miss per unknown one', async () => {
    const text = async () => (await fetch(`${segd.url}/metrics`)).text();
    const count = (t: string, result: string) =>
      Number(new RegExp(`segd_lookups_total\\{result="${result}"\\} (\\d+)`).exec(t)?.[1]);
    const before = await text();
    const r = await fetch(`${segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{ "uids": ["alice", "ghost-a", "bob", "ghost-b", "ghost-c"] }',
    });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { results: unknown[] }).results).toEqual([
      { uid: 'alice', segments: [12, 57, 99] },
      { uid: 'ghost-a', segments: [] },
      { uid: 'bob', segments: [7] },
      { uid: 'ghost-b', segments: [] },
      { uid: 'ghost-c', segments: [] },
    ]);
    const after = await text();
    expect(count(after, 'hit') - count(before, 'hit')).toBe(2);
    expect(count(after, 'miss') - count(before, 'miss')).toBe(3);
  });

  it('counts hits, misses and requests in /metrics across workers', async () => {
    const before = await (await fetch(`${segd.url}/metrics`)).text();
    const hits = (t: string) => Number(/segd_lookups_total\{result="hit"\} (\d+)/.exec(t)?.[1]);
    const misses = (t: string) => Number(/segd_lookups_total\{result="miss"\} (\d+)/.exec(t)?.[1]);
    // New connections each time, so both workers take some.
    for (let i = 0; i < 10; i++) await get('uid=alice', { connection: 'close' });
    for (let i = 0; i < 4; i++) await get(`uid=ghost-${i}`, { connection: 'close' });
    const after = await (await fetch(`${segd.url}/metrics`)).text();
    expect(hits(after) - hits(before)).toBe(10);
    expect(misses(after) - misses(before)).toBe(4);
    expect(after).toMatch(/segd_http_request_duration_seconds_bucket\{le="0.001",route="segments"\} \d+/);
    expect(after).toMatch(/segd_store_users \d+/);
    // alice bob carol dave erin ünïcødé, and frank's tombstone (deleted, but
    // kept so a late, older change cannot bring him back).
    expect(Number(/segd_store_users (\d+)/.exec(after)?.[1])).toBe(7);
  });
});

describe('secondsAt', () => {
  it("reads the wall clock's second from a performance.now() reading, repeatedly across a second", async () => {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 1100) {
      const before = nowSeconds();
      const s = secondsAt(performance.now());
      const after = nowSeconds();
      // At most 1 ms behind the wall clock: the second before at a boundary.
      expect(s).toBeGreaterThanOrEqual(before - 1);
      expect(s).toBeLessThanOrEqual(after);
      n++;
      if (n % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(n).toBeGreaterThan(1000);
  });
});
