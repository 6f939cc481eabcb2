// The read routes over the real server with two partners and a shared ID
// graph (SEGD_LOOKUP_AUTH=required):
// - a lookup by a device id, universal id or login answers a partner its
//   licensed segments but never the segd uid the id resolved to (segd is no
//   identity-resolution oracle across partners); a partner's own uid shows
//   the segd uid it synced, unless that profile holds merged devices (a link
//   built from other data); admin keys see everything;
// - every route reads one way: the same keys give the same answers on GET,
//   batch (JSON and msgpack, by uids and by keys), /v1/ws and enrichment —
//   including a device uid merged into another profile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack, unpack } from 'msgpackr';
import { stopReport, waitFor, CLEAN_STOP, type Segd } from './helpers/server.js';
import { bearer, KEYS, ADMIN_KEY, PARTNERS, DMP_DOMAIN, startActivation } from './helpers/activation.js';
import { WsLookupClient } from '../src/client/ws-client.js';

type Obj = Record<string, any>;
const LOGIN = 'b'.repeat(64);
const SYNCED = 'SyncedBrowserUid000001';
const V = { ifa: '11111111-2222-4333-8444-555555555555', login: 'c'.repeat(64), id5: 'ID5*victim', dsp1: 'd1-victim' };

// Segments all in the taxonomy (so enrichment's user.data shows every one).
const USERS: Record<string, number[]> = {
  // Licensed to dsp1 only (1001): dsp2 may learn nothing about this user.
  'victim-1': [1001],
  // Two devices of one person: dev-b is merged into dev-a by a shared login.
  'dev-a': [1002, 2001],
  'dev-b': [1001, 3005],
  // A user dsp2 synced itself, never merged.
  plain: [1002, 3005],
  // A browser's segd uid (a cookie value segd could have written) both partners sync through /sync/in.
  [SYNCED]: [1001, 1002, 3005],
};
const MATCHES = [
  { op: 'match', ifa: V.ifa, uid: 'victim-1' },
  { op: 'match', login: V.login, uid: 'victim-1' },
  { op: 'match', eid_source: 'id5-sync.com', eid: V.id5, uid: 'victim-1' },
  { op: 'match', partner: 'dsp1', puid: V.dsp1, uid: 'victim-1' },
  { op: 'match', partner: 'dsp1', puid: 'd1-a', uid: 'dev-a' },
  { op: 'match', partner: 'dsp2', puid: 'd2-b', uid: 'dev-b' },
  { op: 'match', ifa: 'aaaaaaaa-0000-4000-8000-00000000000b', uid: 'dev-b' },
  { op: 'match', partner: 'dsp2', puid: 'd2-plain', uid: 'plain' },
  { op: 'match', login: LOGIN, uid: 'dev-a' },
  { op: 'match', login: LOGIN, uid: 'dev-b' },
];
/** What each caller may see (the licences of test/helpers/activation.ts). */
const LICENSED: Record<string, (s: number) => boolean> = {
  dsp1: (s) => [1001, 1002, 2001].includes(s),
  dsp2: (s) => [1002, 2001, 3005, 4002].includes(s),
  all: () => true,
  admin: () => true,
};
const PROFILE: Record<string, number[]> = {
  'victim-1': [1001],
  'dev-a': [1001, 1002, 2001, 3005],
  plain: [1002, 3005],
};
const seen = (who: string, profile: string | null) =>
  profile === null ? [] : PROFILE[profile]!.filter(LICENSED[who]!);
const keyOf = (who: string) => (who === 'admin' ? ADMIN_KEY : KEYS[who as keyof typeof KEYS]);

let segd: Segd;
beforeAll(async () => {
  // dsp1 and dsp2 take part in cookie sync.
  const partners = PARTNERS.map((p) =>
    p.id === 'all' ? p : { ...p, sync: { url: `https://${p.id}.example/sync?u=\${UID}`, type: 'pixel' } },
  );
  segd = await startActivation(
    { SEGD_WORKERS: '2', SEGD_ENRICH_BUDGET_MS: '10000' },
    { users: USERS, matches: MATCHES, partners },
  );
});
afterAll(async () => {
  expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

const get = async (who: string, q: string): Promise<Obj> => {
  const r = await fetch(`${segd.url}/v1/segments?${q}`, { headers: bearer(keyOf(who)) });
  expect(r.status, `${who} ${q}`).toBe(200);
  return (await r.json()) as Obj;
};
const batchJson = async (who: string, body: Obj): Promise<Obj[]> => {
  const r = await fetch(`${segd.url}/v1/segments:batch`, {
    method: 'POST',
    headers: { ...bearer(keyOf(who)), 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(r.status).toBe(200);
  return ((await r.json()) as Obj).results;
};
const batchMsgpack = async (who: string, body: Obj): Promise<Obj[]> => {
  const r = await fetch(`${segd.url}/v1/segments:batch`, {
    method: 'POST',
    headers: { ...bearer(keyOf(who)), 'Content-Type': 'application/msgpack', Accept: 'application/msgpack' },
    body: pack(body),
  });
  expect(r.status).toBe(200);
  return (unpack(Buffer.from(await r.arrayBuffer())) as Obj).results;
};
/** Enrichment's segments (user.data ids) and the user object it sent back; GDPR stated so consent is not the question. */
const enrich = async (who: string, user: Obj, device: Obj = {}): Promise<{ segments: number[]; user: Obj | null }> => {
  const r = await fetch(`${segd.url}/openrtb2/enrich`, {
    method: 'POST',
    headers: { ...bearer(keyOf(who)), 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: 'r', imp: [{ id: '1' }], regs: { gdpr: 0 }, user, device }),
  });
  if (r.status === 204) {
    expect(r.headers.get('x-segd-empty')).toBe('empty');
    return { segments: [], user: null };
  }
  expect(r.status).toBe(200);
  const out = (await r.json()) as Obj;
  const segments = (out.user.data as Obj[])
    .filter((d) => d.name === DMP_DOMAIN)
    .flatMap((d) => d.segment.map((s: Obj) => Number(s.id)));
  return { segments: segments.sort((a, b) => a - b), user: out.user };
};

describe('the segd uid is shown only to callers entitled to it', () => {
  it("reproduction: a partner licensed none of a user's segments learns nothing from the user's login or device id", async () => {
    for (const q of [`login=${V.login}`, `ifa=${V.ifa}`, `eid_source=id5-sync.com&eid=${encodeURIComponent(V.id5)}`]) {
      expect(await get('dsp2', q), q).toEqual({ uid: null, segments: [] });
    }
  });

  it('GET by ifa, eid or login: licensed segments, no uid, for every partner key', async () => {
    for (const who of ['dsp1', 'dsp2', 'all']) {
      for (const q of [
        `login=${V.login}`,
        `ifa=${V.ifa}`,
        `eid_source=id5-sync.com&eid=${encodeURIComponent(V.id5)}`,
        `login=${LOGIN}`,
      ]) {
        const profile = q.includes(LOGIN) ? 'dev-a' : 'victim-1';
        expect(await get(who, q), `${who} ${q}`).toEqual({ uid: null, segments: seen(who, profile) });
      }
    }
  });

  it("GET by the partner's own uid: the segd uid it synced; withheld when the profile holds merged devices", async () => {
    expect(await get('dsp1', `partner=dsp1&puid=${V.dsp1}`)).toEqual({ uid: 'victim-1', segments: [1001] });
    expect(await get('dsp2', 'partner=dsp2&puid=d2-plain')).toEqual({ uid: 'plain', segments: [1002, 3005] });
    // dsp2 synced dev-b; dev-b was merged into dev-a through a login it never saw.
    expect(await get('dsp2', 'partner=dsp2&puid=d2-b')).toEqual({ uid: null, segments: [1002, 2001, 3005] });
    expect(await get('dsp1', 'partner=dsp1&puid=d1-a')).toEqual({ uid: null, segments: [1001, 1002, 2001] });
  });

  it("cookie sync: each partner sees the segd uid it synced by its own uid, and nothing of the other's", async () => {
    for (const [partner, puid] of [
      ['dsp1', 'sync-d1'],
      ['dsp2', 'sync-d2'],
    ]) {
      const r = await fetch(`${segd.url}/sync/in?partner=${partner}&puid=${puid}&f=n`, {
        headers: { Cookie: `segd=${SYNCED}` },
      });
      expect(r.status).toBe(204);
    }
    // Matches are stored in the background: wait for the admin key to see both.
    await waitFor(
      async () =>
        (await get('admin', 'partner=dsp1&puid=sync-d1')).uid === SYNCED &&
        (await get('admin', 'partner=dsp2&puid=sync-d2')).uid === SYNCED,
      10_000,
    );
    expect(await get('dsp1', 'partner=dsp1&puid=sync-d1')).toEqual({ uid: SYNCED, segments: [1001, 1002] });
    expect(await get('dsp2', 'partner=dsp2&puid=sync-d2')).toEqual({ uid: SYNCED, segments: [1002, 3005] });
    const other = await fetch(`${segd.url}/v1/segments?partner=dsp1&puid=sync-d1`, { headers: bearer(KEYS.dsp2) });
    expect(other.status).toBe(403);
    expect(await batchJson('dsp2', { keys: [{ partner: 'dsp1', puid: 'sync-d1' }] })).toMatchObject([
      { uid: null, segments: [], error: { code: 'BAD_ID_KEY' } },
    ]);
  });

  it('GET by a segd uid answers the uid as sent, never the profile it was merged into', async () => {
    expect(await get('dsp1', 'uid=dev-b')).toEqual({ uid: 'dev-b', segments: [1001, 1002, 2001] });
  });

  it('admin keys see every segment and the resolved uid', async () => {
    expect(await get('admin', `ifa=${V.ifa}`)).toEqual({ uid: 'victim-1', segments: [1001] });
    expect(await get('admin', `login=${LOGIN}`)).toEqual({ uid: 'dev-a', segments: [1001, 1002, 2001, 3005] });
    expect(await get('admin', 'partner=dsp2&puid=d2-b')).toEqual({ uid: 'dev-a', segments: [1001, 1002, 2001, 3005] });
    // A segd uid is answered as sent, for every caller (the profile's segments read through the merge).
    expect(await get('admin', 'uid=dev-b')).toEqual({ uid: 'dev-b', segments: [1001, 1002, 2001, 3005] });
  });

  it('batch by keys, JSON and msgpack: the same rule per item', async () => {
    const keys = [
      { login: V.login },
      { ifa: V.ifa },
      { eid_source: 'id5-sync.com', eid: V.id5 },
      { partner: 'dsp2', puid: 'd2-plain' },
      { partner: 'dsp2', puid: 'd2-b' },
      { uid: 'dev-b' },
    ];
    const want = [
      { uid: null, segments: [] },
      { uid: null, segments: [] },
      { uid: null, segments: [] },
      { uid: 'plain', segments: [1002, 3005] },
      { uid: null, segments: [1002, 2001, 3005] },
      { uid: 'dev-b', segments: [1002, 2001, 3005] },
    ];
    expect(await batchJson('dsp2', { keys })).toEqual(want);
    expect(await batchMsgpack('dsp2', { keys })).toEqual(want);
    const asAdmin = await batchJson('admin', { keys });
    expect(asAdmin.map((r) => r.uid)).toEqual(['victim-1', 'victim-1', 'victim-1', 'plain', 'dev-a', 'dev-b']);
  });

  it('/v1/ws answers carry no uid', async () => {
    const c = await WsLookupClient.connect(`ws://127.0.0.1:${segd.port}/v1/ws`, KEYS.dsp2);
    const frames: Obj[] = [];
    c.socket.on('message', (b: Buffer) => frames.push(unpack(b) as Obj));
    try {
      expect((await c.lookup({ ifa: V.ifa })).segments).toEqual([]);
      expect((await c.lookup({ puid: 'd2-b' })).segments).toEqual([1002, 2001, 3005]);
      expect((await c.lookup({ uid: 'dev-b' })).segments).toEqual([1002, 2001, 3005]);
    } finally {
      await c.close();
    }
    expect(frames.map((f) => Object.keys(f).sort())).toEqual([
      ['id', 'segments'],
      ['id', 'segments'],
      ['id', 'segments'],
    ]);
  });

  it('enrichment never writes the resolved uid into the request', async () => {
    const cases: Array<[string, Obj, Obj]> = [
      ['dsp1', {}, { ifa: V.ifa }],
      ['dsp1', { eids: [{ source: 'id5-sync.com', uids: [{ id: V.id5 }] }] }, {}],
      ['dsp2', { buyeruid: 'd2-b' }, {}],
      ['dsp1', { id: 'dev-b' }, {}],
    ];
    for (const [who, user, device] of cases) {
      const r = await enrich(who, user, device);
      expect(r.segments.length, JSON.stringify(user)).toBeGreaterThan(0);
      const { data: _data, ...rest } = r.user!;
      expect(rest, JSON.stringify(user)).toEqual(user);
    }
  });
});

describe('one read path: the same keys give the same answers on every route', () => {
  // [key, the profile it reads]: segd uids (one merged), own partner uids, a device id, unknown keys.
  const KEYS_BY_KIND: Record<string, Array<[Obj, string | null]>> = {
    uid: [
      [{ uid: 'victim-1' }, 'victim-1'],
      [{ uid: 'dev-a' }, 'dev-a'],
      [{ uid: 'dev-b' }, 'dev-a'],
      [{ uid: 'plain' }, 'plain'],
      [{ uid: 'nobody' }, null],
    ],
    ifa: [
      [{ ifa: V.ifa }, 'victim-1'],
      [{ ifa: 'AAAAAAAA-0000-4000-8000-00000000000B' }, 'dev-a'],
      [{ ifa: '99999999-0000-4000-8000-000000000000' }, null],
    ],
  };
  const ownPuids: Record<string, Array<[string, string | null]>> = {
    dsp1: [
      [V.dsp1, 'victim-1'],
      ['d1-a', 'dev-a'],
      ['d1-unknown', null],
    ],
    dsp2: [
      ['d2-b', 'dev-a'],
      ['d2-plain', 'plain'],
      ['d2-unknown', null],
    ],
  };

  for (const who of ['dsp1', 'dsp2', 'all']) {
    it(`as ${who}: GET, batch (uids and keys, JSON and msgpack), ws and enrich agree`, async () => {
      const cases: Array<{ key: Obj; profile: string | null }> = [];
      for (const list of Object.values(KEYS_BY_KIND)) for (const [key, profile] of list) cases.push({ key, profile });
      for (const [puid, profile] of ownPuids[who] ?? []) cases.push({ key: { puid }, profile });
      const partner = who;
      const query = (k: Obj) =>
        'uid' in k ? `uid=${k.uid}` : 'ifa' in k ? `ifa=${k.ifa}` : `partner=${partner}&puid=${k.puid}`;
      const batchKey = (k: Obj) => ('puid' in k ? { partner, puid: k.puid } : k);

      const viaGet = await Promise.all(cases.map(async (c) => (await get(who, query(c.key))).segments));
      const viaKeysJson = (await batchJson(who, { keys: cases.map((c) => batchKey(c.key)) })).map((r) => r.segments);
      const viaKeysMsgpack = (await batchMsgpack(who, { keys: cases.map((c) => batchKey(c.key)) })).map(
        (r) => r.segments,
      );
      const uidCases = cases.filter((c) => 'uid' in c.key);
      const viaUidsJson = (await batchJson(who, { uids: uidCases.map((c) => c.key.uid) })).map((r) => r.segments);
      const viaUidsMsgpack = (await batchMsgpack(who, { uids: uidCases.map((c) => c.key.uid) })).map((r) => r.segments);
      const ws = await WsLookupClient.connect(`ws://127.0.0.1:${segd.port}/v1/ws`, keyOf(who));
      let viaWs: number[][];
      try {
        viaWs = await Promise.all(cases.map(async (c) => (await ws.lookup(c.key as { uid: string })).segments));
      } finally {
        await ws.close();
      }
      const viaEnrich = await Promise.all(
        cases.map(async (c) => {
          const k = c.key;
          const r =
            'uid' in k
              ? await enrich(who, { id: k.uid })
              : 'ifa' in k
                ? await enrich(who, {}, { ifa: k.ifa })
                : await enrich(who, { buyeruid: k.puid });
          return r.segments;
        }),
      );

      const want = cases.map((c) => seen(who, c.profile));
      const uidWant = uidCases.map((c) => seen(who, c.profile));
      expect(viaGet, 'GET').toEqual(want);
      expect(viaKeysJson, 'batch keys JSON').toEqual(want);
      expect(viaKeysMsgpack, 'batch keys msgpack').toEqual(want);
      expect(viaUidsJson, 'batch uids JSON').toEqual(uidWant);
      expect(viaUidsMsgpack, 'batch uids msgpack').toEqual(uidWant);
      expect(viaWs, 'ws').toEqual(want);
      expect(viaEnrich, 'enrich').toEqual(want);
    });
  }

  it('counts a merged uid as a hit on every route', async () => {
    const hits = async () =>
      Number(
        /^segd_lookups_total\{result="hit"\} (\d+)/m.exec(await (await fetch(`${segd.url}/metrics`)).text())?.[1] ??
          NaN,
      );
    const before = await hits();
    await get('dsp1', 'uid=dev-b');
    await batchJson('dsp1', { uids: ['dev-b'] });
    await batchMsgpack('dsp1', { uids: ['dev-b'] });
    const ws = await WsLookupClient.connect(`ws://127.0.0.1:${segd.port}/v1/ws`, KEYS.dsp1);
    try {
      await ws.lookup({ uid: 'dev-b' });
    } finally {
      await ws.close();
    }
    await enrich('dsp1', { id: 'dev-b' });
    expect((await hits()) - before).toBe(5);
  });
});
