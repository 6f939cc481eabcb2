// Hardening of the identity routes against the real server: hostile sync
// bodies, opt-outs for uids segd never issued, the strongest suppression
// winning, bounded links per profile, and signed callbacks bound to the
// browser they were made for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, tempDir, runSegd, waitFor, type Segd } from './helpers/server.js';
import { openStore } from '../src/store/env.js';

const ADMIN = 'admin-key-0123456789';
const INGEST = 'ingest-key-0123456789';
const dataDir = tempDir('segd-hard-identity-');
const cfgPath = join(dataDir, '..', `segd-hard-identity-${process.pid}.json`);
let segd: Segd;

const env = { SEGD_CONFIG: cfgPath, SEGD_INGEST_KEYS: INGEST, SEGD_WORKERS: '2' };
const start = () => startSegd({ dataDir, env });

beforeAll(async () => {
  writeFileSync(cfgPath, JSON.stringify({
    adminKeys: [ADMIN],
    partners: [
      { id: 'dspa', name: 'A', sync: { url: 'https://a.example/m?u=${UID}&sid=${GPP_SID}', type: 'redirect' } },
      ...Array.from({ length: 12 }, (_, i) => ({ id: `p${i}`, name: `P${i}`, sync: { url: `https://p${i}.example/m?u=\${UID}`, type: 'pixel' } })),
    ],
  }));
  segd = await start();
});

afterAll(async () => {
  await segd?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(cfgPath, { force: true });
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${segd.url}${path}`, { headers, redirect: 'manual' });
const lookup = async (q: string) => (await (await get(`/v1/segments?${q}`)).json()) as { uid: string | null; segments: number[] };
const code = async (r: Response) => ((await r.json()) as { error: { code: string } }).error.code;
const push = async (lines: object[]) => {
  const r = await fetch(`${segd.url}/v1/ingest`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${INGEST}`, 'Content-Type': 'application/x-ndjson' },
    body: lines.map((l) => JSON.stringify(l)).join('\n'),
  });
  return (await r.json()) as { applied: number; stale: number; rejected: number };
};
const postOut = (body: string) => fetch(`${segd.url}/sync/out`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });

describe('POST /sync/out: hostile bodies never reach a recursive built-in', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

  it.each([
    ['gpp_sid nested 32,000 deep', `{"partners":"*","gpp_sid":${deep(32_000)}}`],
    ['limit nested 32,000 deep', `{"partners":"*","limit":${deep(32_000)}}`],
    ['gpp_sid an object', '{"gpp_sid":{"a":1}}'],
    ['gpp_sid with a string inside', '{"gpp_sid":[2,"6"]}'],
    ['gpp_sid with a fraction', '{"gpp_sid":[2.5]}'],
    ['gpp_sid not a list of ids', '{"gpp_sid":"2;6"}'],
    ['limit an array', '{"limit":[2]}'],
    ['limit an object', '{"limit":{"n":2}}'],
  ])('%s → 400 BAD_SYNC_REQUEST, and the server goes on', async (_n, body) => {
    const r = await postOut(body);
    expect([r.status, await code(r)]).toEqual([400, 'BAD_SYNC_REQUEST']);
    expect((await get('/healthz')).status).toBe(200);
  });

  it('well-formed gpp_sid and limit, as an array, a string or a number, are still taken', async () => {
    for (const body of ['{"gpp_sid":[6,7],"limit":1}', '{"gpp_sid":"6,7","limit":"1"}']) {
      const r = await postOut(body);
      const out = (await r.json()) as { status: string; partners: Array<{ status: string; usersync?: { url: string } }> };
      expect([r.status, out.status, out.partners.filter((p) => p.usersync).length]).toEqual([200, 'ok', 1]);
      expect(out.partners[0]!.usersync!.url).toMatch(/sid=6%2C7$/);
    }
  });
});

const del = (q: string) => fetch(`${segd.url}/v1/users?${q}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN}` } });

/** The suppressions as stored, read with segd stopped (then started again). */
async function storedSuppressions(keys: string[]): Promise<Array<{ until: number; reason: string } | undefined>> {
  await segd.stop();
  const store = openStore(dataDir);
  try {
    return keys.map((k) => store.optout.get(k) as { until: number; reason: string } | undefined);
  } finally {
    await store.close();
    segd = await start();
  }
}

describe('the stronger suppression always wins', () => {
  it('a deletion after an opt-out keeps the tombstone that never lapses; an opt-out after a deletion makes it never lapse', async () => {
    const optedOut = 'OptOutThenDelete000001';
    const deleted = 'DeleteThenOptOut000002';
    expect(await push([
      { op: 'add', uid: optedOut, segments: [1] },
      { op: 'match', partner: 'dspa', puid: 'otd-1', uid: optedOut },
      { op: 'add', uid: deleted, segments: [2] },
    ])).toMatchObject({ applied: 3 });
    expect((await get('/optout', { Cookie: `segd=${optedOut}` })).status).toBe(200);
    for (const q of [`uid=${optedOut}`, 'partner=dspa&puid=otd-1']) {
      const r = await del(q);
      expect([q, r.status, ((await r.json()) as { tombstoneUntil: string | null }).tombstoneUntil]).toEqual([q, 200, null]);
    }
    const d = (await (await del(`uid=${deleted}`)).json()) as { tombstoneUntil: string | null };
    expect(Date.parse(d.tombstoneUntil!)).toBeGreaterThan(Date.now());
    expect((await get('/optout', { Cookie: `segd=${deleted}` })).status).toBe(200);

    const p = (puid: string) => `p\x1fdspa\x1f${puid}`;
    expect(await storedSuppressions([optedOut, p('otd-1'), deleted])).toEqual([
      expect.objectContaining({ until: 0, reason: 'optout' }),
      expect.objectContaining({ until: 0, reason: 'optout' }),
      expect.objectContaining({ until: 0, reason: 'optout' }),
    ]);
    // Upstream data for either user is still skipped after the restart.
    expect(await push([{ op: 'add', uid: optedOut, segments: [9] }, { op: 'add', uid: deleted, segments: [9] }])).toMatchObject({ applied: 0, stale: 2 });
  });
});
