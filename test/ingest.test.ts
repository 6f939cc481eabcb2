// HTTP push through the real server: authenticated, NDJSON and msgpack,
// acked only after commit with counts and reasons, bad records rejected while
// the good ones around them are applied, retries with an idempotency key
// applied once, and hostile bodies refused without losing anything.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import { startSegd, stopReport, CLEAN_STOP, feedLine, type Segd } from './helpers/server.js';

const KEY = 'ingest-key-0123456789abcdef';
const KEY2 = 'second-collector-key-000000';

describe('POST /v1/ingest', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await startSegd({
      env: { SEGD_INGEST_KEYS: `${KEY},${KEY2}`, SEGD_MAX_INGEST_BYTES: '65536', SEGD_WORKERS: '2' },
    });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  const push = (body: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(`${segd.url}/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-ndjson', ...headers },
      body,
    });
  const segmentsOf = async (uid: string) =>
    ((await (await fetch(`${segd.url}/v1/segments?uid=${encodeURIComponent(uid)}`)).json()) as { segments: number[] })
      .segments;

  it('applies NDJSON and answers with counts after commit', async () => {
    const r = await push(
      feedLine({ op: 'add', uid: 'p1', segments: [1, 2] }) + feedLine({ op: 'add', uid: 'p2', segments: [3] }),
    );
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ applied: 2, stale: 0, rejected: 0, replay: false, rejects: [] });
    // Acked means visible on every worker right away.
    for (let i = 0; i < 10; i++) expect(await segmentsOf('p1')).toEqual([1, 2]);
  });

  it('applies msgpack streams and arrays', async () => {
    const stream = Buffer.concat([
      pack({ op: 'add', uid: 'm1', segments: [7] }),
      pack({ op: 'add', uid: 'm2', segments: [{ id: 8, ttl: 600 }] }),
    ]);
    const r = await push(stream, { 'content-type': 'application/msgpack' });
    expect(await r.json()).toMatchObject({ applied: 2, rejected: 0 });
    const arr = pack([{ op: 'replace', uid: 'm1', segments: [9] }]);
    expect(await (await push(arr, { 'content-type': 'application/msgpack' })).json()).toMatchObject({ applied: 1 });
    expect(await segmentsOf('m1')).toEqual([9]);
    expect(await segmentsOf('m2')).toEqual([8]);
  });

  it('rejects bad records with line and reason and keeps the good ones around them', async () => {
    const body = [
      feedLine({ op: 'add', uid: 'g1', segments: [1] }),
      '{"op":"add",\n',
      feedLine({ op: 'add', uid: 'g2', segments: [-5] }),
      feedLine({ op: 'add', uid: 'g3', segments: [3] }),
      // A far-future ts would pin the user: every later change would be stale.
      feedLine({ op: 'add', uid: 'g4', segments: [4], ts: Math.floor(Date.now() / 1000) + 10 * 86400 }),
    ].join('');
    const r = await push(body);
    expect(r.status).toBe(200);
    const j = (await r.json()) as {
      applied: number;
      rejected: number;
      rejects: Array<{ line: number; reason: string }>;
    };
    expect(j.applied).toBe(2);
    expect(j.rejected).toBe(3);
    expect(j.rejects.map((x) => x.line)).toEqual([2, 3, 5]);
    expect(j.rejects[2]!.reason).toBe('"ts" is more than 86400 s in the future');
    expect(j.rejects[0]!.reason).toMatch(/^malformed JSON/);
    expect(await segmentsOf('g1')).toEqual([1]);
    expect(await segmentsOf('g3')).toEqual([3]);
  });

  it('keeps the records before a truncated msgpack stream', async () => {
    const good = pack({ op: 'add', uid: 't1', segments: [5] });
    const cut = pack({ op: 'add', uid: 't2', segments: [6] }).subarray(0, 6);
    const r = await push(Buffer.concat([good, cut]), { 'content-type': 'application/msgpack' });
    const j = (await r.json()) as { applied: number; rejects: Array<{ line: number; reason: string }> };
    expect(j.applied).toBe(1);
    expect(j.rejects).toHaveLength(1);
    expect(j.rejects[0]!.reason).toMatch(/truncated msgpack/);
    expect(await segmentsOf('t1')).toEqual([5]);
    expect(await segmentsOf('t2')).toEqual([]);
  });

  it('answers each of many concurrent pushes with its own counts, keys and rejects (they may share one commit)', async () => {
    const body = (n: number, bad: number) => {
      let s = '';
      for (let k = 0; k < n; k++) s += feedLine({ op: 'add', uid: `gc-${n}-${k}`, segments: [40 + (n % 5)] });
      for (let k = 0; k < bad; k++) s += 'not a record\n';
      return s;
    };
    const sizes = [1, 2, 3, 5, 8, 13, 21, 34];
    const same = body(4, 0);
    const answers = await Promise.all([
      ...sizes.map((n, i) => push(body(n, i % 3), { 'idempotency-key': `gc-key-${n}` })),
      // The same key twice in one burst: one applies, the other is its replay or waits for it.
      push(same, { 'idempotency-key': 'gc-dup' }),
      push(same, { 'idempotency-key': 'gc-dup' }),
      // The same key with another body: a conflict, whichever comes second.
      push(body(6, 0), { 'idempotency-key': 'gc-clash' }),
      push(body(7, 0), { 'idempotency-key': 'gc-clash' }),
    ]);
    const json = (await Promise.all(answers.map((r) => r.json()))) as Array<{
      applied: number;
      rejected: number;
      replay: boolean;
      error?: { code: string };
    }>;
    sizes.forEach((n, i) => {
      expect(answers[i]!.status).toBe(200);
      expect(json[i]).toMatchObject({ applied: n, rejected: i % 3, replay: false });
    });
    const dup = json.slice(sizes.length, sizes.length + 2);
    expect(dup.map((d) => d.applied)).toEqual([4, 4]);
    expect(dup.map((d) => d.replay).sort()).toEqual([false, true]);
    const clash = answers
      .slice(sizes.length + 2)
      .map((r) => r.status)
      .sort();
    expect(clash).toEqual([200, 422]);
    for (const n of sizes) expect(await segmentsOf(`gc-${n}-${n - 1}`)).toEqual([40 + (n % 5)]);
  });

  it('applies a retried batch once per idempotency key', async () => {
    const body = feedLine({ op: 'add', uid: 'idem', segments: [1] });
    const first = await (await push(body, { 'idempotency-key': 'batch-42' })).json();
    expect(first).toMatchObject({ applied: 1, replay: false });
    // Upstream changes the user meanwhile; the retry must not re-apply the old batch.
    await push(feedLine({ op: 'replace', uid: 'idem', segments: [2] }));
    const retry = await (await push(body, { 'idempotency-key': 'batch-42' })).json();
    expect(retry).toMatchObject({ applied: 1, replay: true });
    expect(await segmentsOf('idem')).toEqual([2]);
    // The same key with another body is a conflict, not a silent replay.
    const other = await push(feedLine({ op: 'add', uid: 'idem', segments: [3] }), { 'idempotency-key': 'batch-42' });
    expect(other.status).toBe(422);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await segmentsOf('idem')).toEqual([2]);
    // Keys are per caller: another collector's "batch-42" is its own batch.
    const r2 = await push(feedLine({ op: 'add', uid: 'idem-2', segments: [4] }), {
      'idempotency-key': 'batch-42',
      authorization: `Bearer ${KEY2}`,
    });
    expect(await r2.json()).toMatchObject({ applied: 1, replay: false });
    expect(await segmentsOf('idem-2')).toEqual([4]);
    const m = await (await fetch(`${segd.url}/metrics`)).text();
    expect(m).toMatch(/segd_loader_records_total\{source="push",outcome="applied"\} \d+/);
  });

  it.each([
    ['no key', {}, '', 401, 'UNAUTHORIZED'],
    ['wrong key', { authorization: 'Bearer not-the-right-key-at-all' }, '', 401, 'UNAUTHORIZED'],
    ['JSON body', { 'content-type': 'application/json' }, '[]', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['bad idempotency key', { 'idempotency-key': 'has space' }, '', 400, 'BAD_IDEMPOTENCY_KEY'],
    ['everything rejected', {}, 'garbage\n{"op":1}\n', 422, 'ALL_REJECTED'],
    ['body over the limit', {}, feedLine({ op: 'add', uid: 'big', segments: [1] }).repeat(2000), 413, 'BODY_TOO_LARGE'],
  ])('refuses %s', async (_name, headers, body, status, code) => {
    const kept = `kept-${_name.replace(/ /g, '-')}`;
    expect(await (await push(feedLine({ op: 'add', uid: kept, segments: [1, 2] }))).json()).toMatchObject({
      applied: 1,
    });
    const h: Record<string, string> = { ...(headers as Record<string, string>) };
    const r = await fetch(`${segd.url}/v1/ingest`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-ndjson',
        ...(h.authorization === undefined && _name !== 'no key' ? { authorization: `Bearer ${KEY}` } : {}),
        ...h,
      },
      body: body as string,
    });
    expect(r.status).toBe(status);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe(code);
    expect(await segmentsOf('big')).toEqual([]);
    expect(await segmentsOf(kept)).toEqual([1, 2]); // still serving, nothing lost
  });
});
