// The adapters beside the webhook, against a real local receiver and a temp
// dir: `ttd` sends The Trade Desk Data API's shape (items keyed by the id
// field, Data[{Name, TtlInMinutes}], removals as TTL 0, the token in
// TTD-Auth), queues again the lines its FailedLines name, halves a batch on
// 413 and honours 429; `file` writes gzip NDJSON files, at most one per
// minIntervalMs, renamed into place whole.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { startSegd, tempDir, ingest, stopReport, type Segd } from './helpers/server.js';
import { startReceiver, accepted, type Receiver, type Received } from './helpers/receiver.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INGEST = 'ingest-key-0123456789abcdef';
const TOKEN = 'ttd-token-0123456789abcdef';
const INTERVAL_MS = 400;

interface TtdBody {
  DataProviderId: string;
  DataLoadTraceId: string;
  Items: { UID2: string; Data: { Name: string; TtlInMinutes: number }[] }[];
}
const ttdBody = (r: Received) => r.body as unknown as TtdBody;
const items = (got: readonly Received[]) => got.flatMap((g) => ttdBody(g).Items);

let segd: Segd;
let rx: Receiver;
let outDir: string;

const push = async (...recs: Record<string, unknown>[]) => {
  expect((await ingest(segd, INGEST, recs)).status).toBe(200);
};

beforeAll(async () => {
  rx = await startReceiver();
  outDir = tempDir('segd-out-');
  const configPath = join(tempDir('segd-config-'), 'segd.json');
  writeFileSync(
    configPath,
    JSON.stringify({
      adminKeys: [ADMIN],
      ingestKeys: [INGEST],
      partners: [
        { id: 'ttd', segments: [8001, 8002] },
        { id: 'xandr', segments: [9001] },
      ],
      segments: [8001, 8002, 9001].map((id) => ({ id, name: `s${id}`, segtax: 600 })),
      destinations: [
        {
          id: 'ttd1',
          partner: 'ttd',
          type: 'ttd',
          url: rx.url,
          bearer: TOKEN,
          ttd: { dataProviderId: 'segd-dp', idField: 'UID2', ttlMinutes: 1440 },
          maxDelayMs: 20,
          timeoutMs: 2000,
        },
        {
          id: 'files',
          partner: 'xandr',
          type: 'file',
          url: pathToFileURL(outDir).href,
          minIntervalMs: INTERVAL_MS,
          maxDelayMs: 0,
        },
      ],
    }),
  );
  segd = await startSegd({
    env: { SEGD_CONFIG: configPath, SEGD_OUTBOUND_BACKOFF_BASE_MS: '20', SEGD_OUTBOUND_BACKOFF_MAX_MS: '200' },
  });
});

afterAll(async () => {
  if (segd) expect((await stopReport(segd, { allowWarnings: true })).code).toBe(0);
  await rx?.close();
});

describe('outbound adapters', () => {
  it('ttd: items keyed by the id field with Data[{Name, TtlInMinutes}], removals as TTL 0, the token in TTD-Auth', async () => {
    await push({ op: 'add', uid: 't1', segments: [8001, 8002] });
    await rx.until((got) => items(got).some((i) => i.UID2 === 't1'));
    await push({ op: 'remove', uid: 't1', segments: [8002] });
    await rx.until((got) => items(got).filter((i) => i.UID2 === 't1').length === 2);
    expect(items(rx.received).filter((i) => i.UID2 === 't1')).toEqual([
      {
        UID2: 't1',
        Data: [
          { Name: '8001', TtlInMinutes: 1440 },
          { Name: '8002', TtlInMinutes: 1440 },
        ],
      },
      { UID2: 't1', Data: [{ Name: '8002', TtlInMinutes: 0 }] },
    ]);
    for (const g of rx.received) {
      expect(g.headers['ttd-auth']).toBe(TOKEN);
      expect(g.headers.authorization).toBeUndefined();
      expect(ttdBody(g)).toMatchObject({ DataProviderId: 'segd-dp', DataLoadTraceId: g.key });
    }
  });

  it('ttd: queues again the lines FailedLines names (by ItemNumber), halves a batch on 413, honours 429', async () => {
    const before = rx.received.length;
    let refusedT3 = false;
    rx.answer = (r) => {
      const its = ttdBody(r).Items;
      // First 429 (Retry-After 0), then 413 for anything of more than 2 items, then t3's item named failed once.
      if (rx.received.length === before + 1) return { status: 429, headers: { 'retry-after': '0' } };
      if (its.length > 2) return { status: 413 };
      const n = its.findIndex((i) => i.UID2 === 't3');
      if (n >= 0 && !refusedT3) {
        refusedT3 = true;
        return {
          status: 200,
          body: JSON.stringify({ FailedLines: [{ ErrorCode: 'UserNotMapped', ItemNumber: String(n + 1) }] }),
        };
      }
      return { status: 200 };
    };
    await push(...['t2', 't3', 't4', 't5', 't6'].map((uid) => ({ op: 'add', uid, segments: [8001] })));
    const got = () => rx.received.slice(before);
    await rx.until(() => ['t2', 't3', 't4', 't5', 't6'].every((u) => items(accepted(got())).some((i) => i.UID2 === u)));
    await rx.until(() => items(accepted(got())).filter((i) => i.UID2 === 't3').length === 2);
    const statuses = got().map((g) => (typeof g.answered === 'object' ? g.answered?.status : g.answered));
    expect(statuses[0]).toBe(429);
    expect(statuses).toContain(413);
    // The 429'd batch went again under its key; the halves of a 413'd one under keys of their own.
    expect(got()[1]!.key).toBe(got()[0]!.key);
    const taken = accepted(got());
    expect(taken.every((g) => ttdBody(g).Items.length <= 2)).toBe(true);
    expect(new Set(taken.map((g) => g.key)).size).toBe(taken.length);
    rx.answer = () => ({ status: 200 });
  });

  it('file: gzip NDJSON files, renamed into place whole, at most one per minIntervalMs', async () => {
    await push({ op: 'add', uid: 'x1', segments: [9001] }, { op: 'add', uid: 'x2', segments: [9001] });
    const files = () => readdirSync(outDir).filter((f) => f.endsWith('.ndjson.gz'));
    await expect.poll(files, { timeout: 10_000 }).toHaveLength(1);
    await push({ op: 'remove', uid: 'x1', segments: [9001] });
    await push({ op: 'add', uid: 'x3', segments: [9001] });
    await expect.poll(files, { timeout: 10_000 }).toHaveLength(2);
    expect(readdirSync(outDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const read = (f: string) =>
      gunzipSync(readFileSync(join(outDir, f)))
        .toString()
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const byTime = files().sort((a, b) => statSync(join(outDir, a)).mtimeMs - statSync(join(outDir, b)).mtimeMs);
    const [first, second] = byTime.map(read);
    expect(first![0]).toMatchObject({ version: 1, destination: 'files', resync: null, users: 2 });
    expect(first!.slice(1).map((u) => [u.id, u.segments])).toEqual([
      ['x1', [{ id: 9001, status: 1 }]],
      ['x2', [{ id: 9001, status: 1 }]],
    ]);
    // The two later changes, queued one at a time, wait for the interval (not for maxDelayMs, 0 here) and go in
    // one file: without the interval each would have its own.
    expect(second!.slice(1).map((u) => [u.id, u.segments])).toEqual([
      ['x1', [{ id: 9001, status: 0 }]],
      ['x3', [{ id: 9001, status: 1 }]],
    ]);
    expect(byTime[0]).toBe(`files_${String(first![0]!.batch).split(':')[1]}.ndjson.gz`);
    const r = await fetch(`${segd.url}/v1/admin/destinations/files`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    const { destination } = (await r.json()) as { destination: { delivery: Record<string, unknown> } };
    expect(destination.delivery).toMatchObject({ backlog: 0, sent: 4 });
  });
});
