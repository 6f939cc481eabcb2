// Outbound delivery against real local receivers: changes arrive in order per
// user under a stable Idempotency-Key, signed; nothing unlicensed or of a
// deleted user is sent as membership; 429/Retry-After, 500, a hang past the
// timeout and a dropped connection are retried until delivered; lines a
// receiver refuses are retried, then dead-lettered and replayed; a licence
// revoked before a send stops it; destinations are managed through the admin API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, runSegd, tempDir, stopReport, ingest, type Segd } from './helpers/server.js';
import {
  startReceiver,
  historyOf,
  deduplicated,
  accepted,
  segmentIdsOf,
  type Receiver,
  type Received,
} from './helpers/receiver.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INGEST = 'ingest-key-0123456789abcdef';
const HMAC = 'hmac-secret-0123456789abcdef';
const auth = { Authorization: `Bearer ${ADMIN}` };

let segd: Segd;
const rx: Record<string, Receiver> = {};
/** Per destination: whether its receiver refuses everything for now (a 500). */
let holdD4 = true;

const push = async (...recs: Record<string, unknown>[]) => {
  expect((await ingest(segd, INGEST, recs)).status).toBe(200);
};
const destination = async (id: string) => {
  const r = await fetch(`${segd.url}/v1/admin/destinations/${id}`, { headers: auth });
  return {
    status: r.status,
    body: (await r.json()) as { destination: Record<string, unknown> & { delivery: Record<string, number> } },
  };
};

beforeAll(async () => {
  rx.d1 = await startReceiver();
  // d2: 429 with Retry-After, 500, a hang past the timeout, a dropped connection, 500 again, then 200.
  const script = [
    { status: 429, headers: { 'retry-after': '1' } },
    { status: 500 },
    'hang',
    'drop',
    { status: 503 },
  ] as const;
  rx.d2 = await startReceiver((_r, n) => script[n] ?? { status: 200 });
  rx.d3 = await startReceiver((r) =>
    r.body.users.some((u) => u.id === 'bad-user') && rx.d3!.received.length < 100
      ? { status: 200, body: JSON.stringify({ failed: ['bad-user'] }) }
      : { status: 200 },
  );
  rx.d4 = await startReceiver(() => (holdD4 ? { status: 500 } : { status: 200 }));
  rx.d5 = await startReceiver();
  rx.d6 = await startReceiver();
  const seg = (id: number, partners: string[]) => ({ id, name: `s${id}`, segtax: 600, partners });
  const dest = (id: string, partner: string, extra: Record<string, unknown> = {}) => ({
    id,
    partner,
    url: rx[id]!.url,
    maxDelayMs: 20,
    timeoutMs: 300,
    ...extra,
  });
  const config = {
    adminKeys: [ADMIN],
    ingestKeys: [INGEST],
    partners: [
      { id: 'dsp1', segments: [1001, 1002] },
      { id: 'dsp2', segments: [2001] },
      { id: 'dsp3', segments: [3001] },
      { id: 'dsp4', segments: [4001, 4002] },
      { id: 'dsp5', segments: [5001] },
      { id: 'dsp6', segments: [6001] },
    ],
    segments: [
      seg(1001, []),
      seg(1002, []),
      seg(1003, []),
      seg(2001, []),
      seg(3001, []),
      seg(4001, []),
      seg(4002, []),
      seg(5001, []),
      seg(6001, []),
    ],
    destinations: [
      // A generous timeout: a retry here would resend u2's join after its deletion, as a removal (right, but not this test's point).
      dest('d1', 'dsp1', {
        timeoutMs: 10_000,
        hmacSecret: HMAC,
        bearer: 'bearer-token-0123456789',
        headers: { 'X-Account': 'acme' },
      }),
      dest('d2', 'dsp2'),
      dest('d3', 'dsp3'),
      dest('d4', 'dsp4', { segments: [4001, 4002] }),
      dest('d5', 'dsp5', { idType: 'partner' }),
      dest('d6', 'dsp6', { idType: 'partner' }),
    ],
  };
  const configPath = join(tempDir('segd-config-'), 'segd.json');
  writeFileSync(configPath, JSON.stringify(config));
  segd = await startSegd({
    env: {
      SEGD_CONFIG: configPath,
      SEGD_OUTBOUND_BACKOFF_BASE_MS: '20',
      SEGD_OUTBOUND_BACKOFF_MAX_MS: '1500',
      SEGD_OUTBOUND_MAX_ATTEMPTS: '2',
    },
  });
});

afterAll(async () => {
  if (segd) {
    const report = await stopReport(segd, { allowWarnings: true });
    expect(report.code).toBe(0);
    expect(report.stderr).toBe('');
    expect(segd.logs.filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
  }
  await Promise.all(Object.values(rx).map((r) => r.close()));
});

describe('outbound delivery', () => {
  it('delivers each change in order per user, signed, under one key per batch; unlicensed segments never; a deletion as removals', async () => {
    // Each step waits for its delivery: a join still queued when the user is deleted goes out as a removal (see the crash test).
    const has = (uid: string, n: number) => rx.d1!.until((got) => (historyOf(got).get(uid)?.length ?? 0) >= n);
    await push({ op: 'add', uid: 'u1', segments: [1001, 1003] });
    await has('u1', 1);
    await push({ op: 'add', uid: 'u2', segments: [1002] });
    await has('u2', 1);
    await push({ op: 'remove', uid: 'u1', segments: [1001] });
    await has('u1', 2);
    const del = await fetch(`${segd.url}/v1/users?uid=u2`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(200);
    await has('u2', 2);
    const want = new Map([
      [
        'u1',
        [
          [1001, 1],
          [1001, 0],
        ],
      ],
      [
        'u2',
        [
          [1002, 1],
          [1002, 0],
        ],
      ],
    ]);
    expect(historyOf(deduplicated(rx.d1!.received))).toEqual(want);
    for (const g of rx.d1!.received) {
      expect(g.headers['x-segd-signature']).toBe('sha256=' + createHmac('sha256', HMAC).update(g.raw).digest('hex'));
      expect(g.headers.authorization).toBe('Bearer bearer-token-0123456789');
      expect(g.headers['x-account']).toBe('acme');
      expect(g.body).toMatchObject({ version: 1, destination: 'd1', batch: g.key, resync: null });
      expect(g.key).toMatch(/^d1:\d+-\d+$/);
    }
    expect(new Set(rx.d1!.received.map((g) => g.key)).size).toBe(rx.d1!.received.length);
    // Another destination's segments never reach d1 (ids compared, not text: a timestamp may hold the digits).
    expect([...segmentIdsOf(rx.d1!.received)].sort((a, b) => a - b)).toEqual([1001, 1002]);
  });

  it('sends a destination keyed by the partner’s own ids the removals of a deleted user, under the id it had', async () => {
    const seen = (n: number) => rx.d5!.until((got) => (historyOf(got).get('P5')?.length ?? 0) >= n);
    await push({ op: 'match', uid: 'u5', partner: 'dsp5', puid: 'P5' });
    await push({ op: 'add', uid: 'u5', segments: [5001] });
    await seen(1);
    // The deletion unlinks P5 in the transaction that queues the removal: the removal still goes to P5.
    const del = await fetch(`${segd.url}/v1/users?uid=u5`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(200);
    await seen(2);
    expect(historyOf(deduplicated(rx.d5!.received))).toEqual(
      new Map([
        [
          'P5',
          [
            [5001, 1],
            [5001, 0],
          ],
        ],
      ]),
    );
    expect(JSON.stringify(rx.d5!.received.map((g) => g.body))).not.toContain('u5');
  });

  it('sends a line queued again (refused, or a dead letter replayed) under the partner id it went under, after a deletion unlinked it', async () => {
    const leaves = (got: readonly Received[], puid: string) =>
      got.filter((g) => g.body.users.some((u) => u.id === puid && u.segments.some((s) => s.status === 0)));
    const del = async (uid: string) =>
      expect((await fetch(`${segd.url}/v1/users?uid=${uid}`, { method: 'DELETE', headers: auth })).status).toBe(200);

    // Refused: P6's leave is answered `failed` only once u6 is deleted, so its line is queued again with no P6 linked.
    let release!: () => void;
    const deleted = new Promise<void>((r) => (release = r));
    rx.d6!.answer = (r) =>
      leaves([r], 'P6').length && leaves(rx.d6!.received, 'P6').length === 1
        ? deleted.then(() => ({ status: 200, body: JSON.stringify({ failed: ['P6'] }) }))
        : { status: 200 };
    await push({ op: 'match', uid: 'u6', partner: 'dsp6', puid: 'P6' });
    await push({ op: 'add', uid: 'u6', segments: [6001] });
    await rx.d6!.until((got) => historyOf(got).has('P6'));
    await push({ op: 'remove', uid: 'u6', segments: [6001] });
    await rx.d6!.until((got) => leaves(got, 'P6').length === 1);
    // u6 holds nothing of d6's by now: the deletion queues nothing for it, only the line queued again can tell P6.
    await del('u6');
    release();
    await rx.d6!.until((got) => leaves(accepted(got), 'P6').length === 2);

    // Dead-lettered: P7's leave is refused until it is a dead letter; u7 is deleted, then the dead letter replayed.
    rx.d6!.answer = (r) =>
      leaves([r], 'P7').length ? { status: 200, body: JSON.stringify({ failed: ['P7'] }) } : { status: 200 };
    await push({ op: 'match', uid: 'u7', partner: 'dsp6', puid: 'P7' });
    await push({ op: 'add', uid: 'u7', segments: [6001] });
    await rx.d6!.until((got) => historyOf(got).has('P7'));
    await push({ op: 'remove', uid: 'u7', segments: [6001] });
    await expect
      .poll(async () => (await destination('d6')).body.destination.delivery.deadLetters, { timeout: 10_000 })
      .toBe(1);
    await del('u7');
    rx.d6!.answer = () => ({ status: 200 });
    const before = rx.d6!.received.length;
    const replay = await fetch(`${segd.url}/v1/admin/destinations/d6/replay`, { method: 'POST', headers: auth });
    expect(await replay.json()).toEqual({ replayed: 1 });
    await rx.d6!.until((got) => leaves(got.slice(before), 'P7').length === 1);

    const h = historyOf(deduplicated(rx.d6!.received));
    expect(h.get('P6')).toEqual([
      [6001, 1],
      [6001, 0],
      [6001, 0],
    ]);
    expect(h.get('P7')).toEqual([
      [6001, 1],
      [6001, 0],
      [6001, 0],
      [6001, 0],
    ]);
    expect(JSON.stringify(rx.d6!.received.map((g) => g.body))).not.toMatch(/"u[67]"/);
  });

  it('retries 429 (after Retry-After), 5xx, a hang past the timeout and a dropped connection, under the same key, until delivered', async () => {
    await push({ op: 'add', uid: 'r1', segments: [2001] });
    await rx.d2!.until((got) => got.length >= 6, 30_000);
    const keys = new Set(rx.d2!.received.map((g) => g.key));
    expect(keys.size).toBe(1);
    expect(new Set(rx.d2!.received.map((g) => g.raw.toString())).size).toBe(1);
    expect(historyOf(deduplicated(accepted(rx.d2!.received)))).toEqual(new Map([['r1', [[2001, 1]]]]));
    expect(accepted(rx.d2!.received)).toHaveLength(1);
    // The receiver has answered 200; segd records it once that answer is read (later on a loaded machine).
    await expect
      .poll(async () => (await destination('d2')).body.destination.delivery, { timeout: 10_000 })
      .toMatchObject({ backlog: 0, sent: 1, retried: 5, failed: 0 });
    const { body } = await destination('d2');
    expect(body.destination.delivery.lastError).toBeTruthy();
    const metrics = await (await fetch(`${segd.url}/metrics`)).text();
    expect(metrics).toMatch(/segd_outbound_retried_requests\{destination="d2"\} 5/);
    expect(metrics).toMatch(/segd_outbound_backlog\{destination="d2"\} 0/);
  });

  it('retries a line the receiver names as failed, dead-letters it after SEGD_OUTBOUND_MAX_ATTEMPTS, and replays it', async () => {
    await push({ op: 'add', uid: 'bad-user', segments: [3001] }, { op: 'add', uid: 'good-user', segments: [3001] });
    await rx.d3!.until((got) => got.filter((g) => g.body.users.some((u) => u.id === 'bad-user')).length >= 2);
    await expect
      .poll(async () => (await destination('d3')).body.destination.delivery, { timeout: 10_000 })
      .toMatchObject({ deadLetters: 1, dead: 1, failed: 2, backlog: 0 });
    const before = rx.d3!.received.length;
    rx.d3!.answer = () => ({ status: 200 });
    const replay = await runSegd(['outbound', 'replay', 'd3', '--url', segd.url, '--key', ADMIN]);
    expect(replay).toMatchObject({ code: 0, stdout: '1 dead letter(s) of d3 queued again\n' });
    await rx.d3!.until((got) => got.slice(before).some((g) => g.body.users.some((u) => u.id === 'bad-user')));
    await expect
      .poll(async () => (await destination('d3')).body.destination.delivery.deadLetters, { timeout: 10_000 })
      .toBe(0);
    const good = rx.d3!.received.flatMap((g) => g.body.users.filter((u) => u.id === 'good-user'));
    expect(good.length).toBeGreaterThanOrEqual(1);
  });

  it('does not send what a licence revoked before the send no longer covers', async () => {
    await push({ op: 'add', uid: 'v1', segments: [4001, 4002] });
    await rx.d4!.until((got) => got.length >= 1);
    expect(rx.d4!.received[0]!.body.users[0]!.segments).toEqual([
      { id: 4001, status: 1 },
      { id: 4002, status: 1 },
    ]);
    const put = await fetch(`${segd.url}/v1/admin/partners/dsp4`, {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ segments: [4001] }),
    });
    expect(put.status).toBe(200);
    const after = rx.d4!.received.length;
    holdD4 = false;
    await push({ op: 'add', uid: 'v2', segments: [4002, 4001] });
    await rx.d4!.until((got) => historyOf(got.slice(after)).has('v2'));
    // The first request after the change may have left before it; every later one is cut to the licence.
    const later = rx.d4!.received.slice(after + 1);
    expect(later.length).toBeGreaterThan(0);
    expect(segmentIdsOf(later).has(4002)).toBe(false);
    expect(historyOf(later).get('v2')).toEqual([[4001, 1]]);
  });

  it('manages destinations through the admin API, secrets hidden', async () => {
    const list = await fetch(`${segd.url}/v1/admin/destinations`, { headers: auth });
    expect(list.status).toBe(200);
    const { destinations } = (await list.json()) as { destinations: Record<string, unknown>[] };
    expect(destinations.map((d) => d.id).sort()).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6']);
    const d1 = destinations.find((d) => d.id === 'd1')!;
    expect(d1).toMatchObject({ partner: 'dsp1', bearer: '(set)', hmacSecret: '(set)', idType: 'uid' });
    expect(d1.delivery).toMatchObject({ running: true, backlog: 0, sent: 4 });
    expect(JSON.stringify(destinations)).not.toContain(HMAC);

    const put = (id: string, body: unknown) =>
      fetch(`${segd.url}/v1/admin/destinations/${id}`, {
        method: 'PUT',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const bad = await put('d9', {
      partner: 'dsp1',
      url: 'ftp://x',
      maxUsers: 0,
      idType: 'email',
      headers: { Authorization: 'x' },
    });
    expect(bad.status).toBe(400);
    const err = (await bad.json()) as { error: { code: string; problems: string[] } };
    expect(err.error.code).toBe('BAD_DESTINATION');
    expect(err.error.problems).toHaveLength(4);
    expect((await put('d9', { partner: 'nobody', url: 'http://127.0.0.1:9/' })).status).toBe(400);
    expect((await put('d9', { partner: 'dsp1', url: 'http://127.0.0.1:9/', disabled: true })).status).toBe(201);
    expect((await destination('d9')).body.destination.delivery).toMatchObject({ running: false });
    expect((await fetch(`${segd.url}/v1/admin/destinations/d9`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect((await destination('d9')).status).toBe(404);
    expect((await fetch(`${segd.url}/v1/admin/destinations`)).status).toBe(401);
  });

  it('shows each destination in segd status, read from the store beside the running server', async () => {
    const st = await runSegd(['status', '--json'], { SEGD_DATA_DIR: segd.dataDir });
    expect(st.code).toBe(0);
    const report = JSON.parse(st.stdout) as { outbound: { id: string; sent: number; backlog: number }[] };
    expect(report.outbound.map((d) => d.id).sort()).toEqual(['d1', 'd2', 'd3', 'd4', 'd5', 'd6']);
    expect(report.outbound.find((d) => d.id === 'd1')).toMatchObject({ sent: 4, backlog: 0 });
    const text = await runSegd(['status'], { SEGD_DATA_DIR: segd.dataDir });
    expect(text.stdout).toMatch(
      /^outbound d2: delivered through seq \d+ · 0 queued .* 1 sent · 0 refused · 5 retried · 0 dead letter\(s\) · last error /m,
    );
  });
});
