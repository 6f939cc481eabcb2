// Hardening of the identity routes against the real server: hostile sync
// bodies, opt-outs for uids segd never issued, the strongest suppression
// winning, bounded links per profile, and signed callbacks bound to the
// browser they were made for.
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startSegd, tempDir, runSegd, waitFor } from './helpers/server.js';
import { identityServer, ADMIN, INGEST } from './helpers/identity.js';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { IdGraph } from '../src/identity/graph.js';
import { TokenBucket } from '../src/identity/token-bucket.js';
import { forgetting, tempStore } from './helpers/store.js';

const fx = identityServer({
  name: 'segd-hard-identity-',
  env: { SEGD_WORKERS: '2' },
  partners: [
    { id: 'dspa', name: 'A', sync: { url: 'https://a.example/m?u=${UID}&sid=${GPP_SID}', type: 'redirect' } },
    ...Array.from({ length: 12 }, (_, i) => ({
      id: `p${i}`,
      name: `P${i}`,
      sync: { url: `https://p${i}.example/m?u=\${UID}`, type: 'pixel' },
    })),
  ],
});
const { get, lookup, push, del, dataDir } = fx;
const code = async (r: Response) => ((await r.json()) as { error: { code: string } }).error.code;
const postOut = (body: string) =>
  fetch(`${fx.segd.url}/sync/out`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });

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
      const out = (await r.json()) as {
        status: string;
        partners: Array<{ status: string; usersync?: { url: string } }>;
      };
      expect([r.status, out.status, out.partners.filter((p) => p.usersync).length]).toEqual([200, 'ok', 1]);
      expect(out.partners[0]!.usersync!.url).toMatch(/sid=6%2C7$/);
    }
  });
});

/** The suppressions as stored, read with segd stopped (then started again). */
async function storedSuppressions(keys: string[]): Promise<Array<{ until: number; reason: string } | undefined>> {
  let stored: Array<{ until: number; reason: string } | undefined> = [];
  await fx.restart(async () => {
    const store = openStore(dataDir);
    try {
      stored = keys.map((k) => store.optout.get(k) as { until: number; reason: string } | undefined);
    } finally {
      await store.close();
    }
  });
  return stored;
}

describe('the stronger suppression always wins', () => {
  it('a deletion after an opt-out keeps the tombstone that never lapses; an opt-out after a deletion makes it never lapse', async () => {
    const optedOut = 'OptOutThenDelete000001';
    const deleted = 'DeleteThenOptOut000002';
    expect(
      await push([
        { op: 'add', uid: optedOut, segments: [1] },
        { op: 'match', partner: 'dspa', puid: 'otd-1', uid: optedOut },
        { op: 'add', uid: deleted, segments: [2] },
      ]),
    ).toMatchObject({ applied: 3 });
    expect((await get('/optout', { Cookie: `segd=${optedOut}` })).status).toBe(200);
    for (const q of [`uid=${optedOut}`, 'partner=dspa&puid=otd-1']) {
      const r = await del(q);
      expect([q, r.status, ((await r.json()) as { tombstoneUntil: string | null }).tombstoneUntil]).toEqual([
        q,
        200,
        null,
      ]);
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
    expect(
      await push([
        { op: 'add', uid: optedOut, segments: [9] },
        { op: 'add', uid: deleted, segments: [9] },
      ]),
    ).toMatchObject({ applied: 0, stale: 2 });
  });
});

const audit = async () =>
  (
    (await (await get('/v1/admin/audit?limit=9999', { Authorization: `Bearer ${ADMIN}` })).json()) as {
      entries: Array<{ seq: number; action: string; found: boolean }>;
    }
  ).entries;
const status = async (dir: string) => {
  const r = await runSegd(['status', '--json'], { SEGD_DATA_DIR: dir });
  return (JSON.parse(r.stdout) as { identity: { suppressed: number; auditEntries: number } }).identity;
};
const randomUid = () =>
  Array.from(
    { length: 22 },
    () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'[Math.floor(Math.random() * 64)],
  ).join('');

describe('GET /optout stores nothing for uids segd never knew, and at a bounded rate', () => {
  it('300 opt-outs with made-up cookies: 300 opt-out cookies, 0 suppressions, 0 audit entries', async () => {
    const before = { status: await status(dataDir), audit: (await audit()).length };
    const answers = await Promise.all(
      Array.from({ length: 300 }, () => get('/optout', { Cookie: `segd=${randomUid()}` })),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(300).fill(200));
    expect(answers.every((r) => r.headers.getSetCookie()[0]!.startsWith('segd_optout=OPT_OUT;'))).toBe(true);
    expect(await status(dataDir)).toEqual(before.status);
    expect((await audit()).length).toBe(before.audit);
  });

  it('a known user’s opt-out still works end to end, once: a repeated opt-out writes nothing', async () => {
    const uid = 'KnownUserOptsOut000003';
    expect(await push([{ op: 'add', uid, segments: [7] }])).toMatchObject({ applied: 1 });
    const sync = await get('/sync/in?partner=dspa&puid=known-3&f=n', { Cookie: `segd=${uid}` });
    expect(sync.status).toBe(204);
    await waitFor(async () => (await lookup('partner=dspa&puid=known-3')).uid === uid, 5000);
    const before = (await audit()).length;
    expect((await get('/optout', { Cookie: `segd=${uid}` })).status).toBe(200);
    expect(await lookup(`uid=${uid}`)).toEqual({ uid, segments: [] });
    expect((await lookup('partner=dspa&puid=known-3')).uid).toBeNull();
    expect((await get('/optout', { Cookie: `segd=${uid}` })).status).toBe(200);
    const after = await audit();
    expect(after.length).toBe(before + 1);
    expect(after[0]).toMatchObject({ action: 'optout', found: true });
    expect(await push([{ op: 'add', uid, segments: [8] }])).toMatchObject({ applied: 0, stale: 1 });
  });

  it('over SEGD_OPTOUT_BURST (no refill) the cookie is still set and the store write refused', async () => {
    const dir = tempDir('segd-optout-rate-');
    const s = await startSegd({
      dataDir: dir,
      env: { SEGD_INGEST_KEYS: INGEST, SEGD_OPTOUT_RATE: '0', SEGD_OPTOUT_BURST: '3' },
    });
    try {
      const users = Array.from({ length: 8 }, (_, i) => `RateLimitedUser0000${String(i).padStart(3, '0')}`);
      const r = await fetch(`${s.url}/v1/ingest`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${INGEST}`, 'Content-Type': 'application/x-ndjson' },
        body: users.map((uid) => JSON.stringify({ op: 'add', uid, segments: [1] })).join('\n'),
      });
      expect(((await r.json()) as { applied: number }).applied).toBe(8);
      for (const uid of users) {
        const a = await fetch(`${s.url}/optout`, { headers: { Cookie: `segd=${uid}` } });
        expect([a.status, a.headers.getSetCookie()[0]!.split(';')[0]]).toEqual([200, 'segd_optout=OPT_OUT']);
      }
      const left = await Promise.all(
        users.map(
          async (uid) =>
            ((await (await fetch(`${s.url}/v1/segments?uid=${uid}`)).json()) as { segments: number[] }).segments.length,
        ),
      );
      expect(left).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
      await s.waitForLog((l) => l.msg === 'browser opt-outs over SEGD_OPTOUT_RATE: cookie set, store write refused');
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('suppressed users in memory are bounded', () => {
  const store = tempStore();

  it('past the cap the store is the list: every suppression still holds, before and after a restart', () => {
    const writer = new Writer(store, { suppressedInMemory: 3 });
    const users = Array.from({ length: 10 }, (_, i) => `capped-${i}`);
    const now = Math.floor(Date.now() / 1000);
    writer.apply(
      users.map((uid) => ({ op: 'add', uid, ids: [1], ttls: [0], ts: now })),
      now,
    );
    for (const uid of users) forgetting(store, writer).forget({ uid }, 'optout', now, 0, 'test');
    expect([...writer.suppressed.keys()].length).toBe(3);
    expect(users.map((u) => writer.isSuppressed(u, now))).toEqual(Array(10).fill(true));
    expect(
      writer.apply(
        users.map((uid) => ({ op: 'add', uid, ids: [2], ttls: [0], ts: now + 1 })),
        now,
      ),
    ).toMatchObject({ applied: 0, stale: 10 });
    const again = new Writer(store, { suppressedInMemory: 3 });
    expect([...again.suppressed.keys()].length).toBe(3);
    expect(users.map((u) => again.isSuppressed(u, now))).toEqual(Array(10).fill(true));
    expect(again.isSuppressed('never-suppressed', now)).toBe(false);
  });
});

describe('links per profile are bounded', () => {
  it('500 syncs of distinct partner uids for one partner and one cookie leave one link: the latest', async () => {
    const uid = 'OneCookieManyPuids0004';
    const n = 500;
    for (let i = 0; i < n; i += 50) {
      const rs = await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          get(`/sync/in?partner=dspa&puid=many-${i + j}&f=n`, { Cookie: `segd=${uid}` }),
        ),
      );
      expect(rs.every((r) => r.status === 204)).toBe(true);
    }
    // All 500 through the writer before the last one is sent, so it is the latest.
    await fx.matchesWritten();
    const last = await get(`/sync/in?partner=dspa&puid=many-last&f=n`, { Cookie: `segd=${uid}` });
    expect(last.status).toBe(204);
    await waitFor(async () => (await lookup('partner=dspa&puid=many-last')).uid === uid, 5000);
    const resolved = await Promise.all(Array.from({ length: n }, (_, i) => lookup(`partner=dspa&puid=many-${i}`)));
    expect(resolved.filter((r) => r.uid !== null).length).toBe(0);
    // Deletion still finds every linked id: the one link left.
    const d = (await (await del(`uid=${uid}`)).json()) as { ids: number };
    expect(d.ids).toBe(1);
  });

  it('past SEGD_MAX_IDS_PER_PROFILE a new partner id is refused; a partner already linked may still replace its own', async () => {
    const dir = tempDir('segd-links-cap-');
    const s = await startSegd({ dataDir: dir, env: { SEGD_CONFIG: fx.cfgPath, SEGD_MAX_IDS_PER_PROFILE: '5' } });
    try {
      const uid = 'ManyPartnersOneCookie5';
      const at = async (q: string) =>
        ((await (await fetch(`${s.url}/v1/segments?${q}`)).json()) as { uid: string | null }).uid;
      for (let i = 0; i < 12; i++) {
        expect(
          (await fetch(`${s.url}/sync/in?partner=p${i}&puid=cap-${i}&f=n`, { headers: { Cookie: `segd=${uid}` } }))
            .status,
        ).toBe(204);
      }
      await waitFor(async () => (await at('partner=p4&puid=cap-4')) === uid, 5000);
      // Every match of the 12 has been through the writer once the last one was: sequential requests, one queue per worker.
      const latest = await fetch(`${s.url}/sync/in?partner=p0&puid=cap-0-new&f=n`, {
        headers: { Cookie: `segd=${uid}` },
      });
      expect(latest.status).toBe(204);
      await waitFor(async () => (await at('partner=p0&puid=cap-0-new')) === uid, 5000);
      const linked = await Promise.all(Array.from({ length: 12 }, (_, i) => at(`partner=p${i}&puid=cap-${i}`)));
      expect(linked).toEqual([null, uid, uid, uid, uid, null, null, null, null, null, null, null]);
    } finally {
      await s.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('links written by earlier versions (one list per profile)', () => {
  const store = tempStore();

  it('are read, moved to one key per id when the profile changes, and deleted with it', () => {
    const now = Math.floor(Date.now() / 1000);
    const keys = ['p\x1fdspa\x1fold-a', 'ifa\x1f\x1fold-ifa'];
    store.links.putSync('legacy-1', keys);
    for (const k of keys) store.idmap.putSync(k, 'legacy-1');
    store.links.putSync('legacy-2', ['p\x1fdspa\x1fold-b']);
    store.idmap.putSync('p\x1fdspa\x1fold-b', 'legacy-2');
    const writer = new Writer(store);
    const graph = new IdGraph(store);
    expect(graph.links('legacy-1')).toEqual(keys);
    // A new id of the same partner replaces the old one, and the list is rewritten per id.
    writer.apply([{ op: 'match', uid: 'legacy-1', ids: [], ttls: [], ts: now, key: 'p\x1fdspa\x1fnew-a' }], now);
    expect(graph.links('legacy-1').sort()).toEqual(['ifa\x1f\x1fold-ifa', 'p\x1fdspa\x1fnew-a']);
    expect([store.idmap.get('p\x1fdspa\x1fold-a'), store.links.get('legacy-1')]).toEqual([undefined, undefined]);
    expect(forgetting(store, writer).forget({ uid: 'legacy-2' }, 'deletion', now, now + 60, 'test')).toMatchObject({
      ids: 1,
    });
    expect([graph.links('legacy-2'), store.idmap.get('p\x1fdspa\x1fold-b'), store.links.get('legacy-2')]).toEqual([
      [],
      undefined,
      undefined,
    ]);
  });
});

describe('token bucket', () => {
  it('gives `burst` at once, then `rate` per second, never more than `burst` saved up', () => {
    let t = 0;
    const b = new TokenBucket(2, 3, () => t);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    t = 0.5;
    expect([b.take(), b.take()]).toEqual([true, false]);
    t = 100;
    expect(Array.from({ length: 4 }, () => b.take())).toEqual([true, true, true, false]);
  });
});
