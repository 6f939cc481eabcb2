// Identity over real HTTP against the real server: the consent matrix,
// open-redirect attempts, signed callbacks, the outbound sync, the ID graph
// (match upload, lookups by every key kind, cross-device merges), deletion
// with the resurrection case, and hostile input.
import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { dropFeed, waitFor, runSegd } from './helpers/server.js';
import { identityServer, ADMIN } from './helpers/identity.js';
import { metric } from './helpers/metrics.js';
import { cookieSettings, largestSetCookieBytes } from '../src/identity/cookie.js';
import { tcfString, gppUsp, gppUsNat, TEST_VENDOR } from './helpers/tcf.js';
import { sign } from '../src/identity/signature.js';
import { pack, unpack } from 'msgpackr';
import { FILTER_FILE } from '../src/filters/known-users.js';

const HMAC = 'dspb-hmac-key-0123456789';
const TEMPLATE_A =
  'https://sync.dspa.example/m?dmp=segd&u=${UID}&gdpr=${GDPR}&gc=${GDPR_CONSENT}&usp=${US_PRIVACY}&gpp=${GPP}&sid=${GPP_SID}';

const fx = identityServer({
  name: 'segd-identity-',
  env: { SEGD_GVL_VENDOR_ID: String(TEST_VENDOR), SEGD_SYNC_LIMIT: '2', SEGD_WORKERS: '2' },
  partners: [
    { id: 'dspa', name: 'A', sync: { url: TEMPLATE_A, type: 'redirect' } },
    { id: 'dspb', name: 'B', sync: { url: 'https://b.example/px?u=${UID}', type: 'pixel', hmacKey: HMAC } },
    { id: 'dspc', name: 'C', sync: { url: 'https://c.example/if?u=${UID}', type: 'iframe' } },
    { id: 'dspoff', name: 'Off', disabled: true, sync: { url: 'https://off.example/?u=${UID}', type: 'pixel' } },
    { id: 'nosync', name: 'No sync' },
  ],
});
const { get, lookup, push, del, dataDir } = fx;
const cookieNames = (r: Response) => r.headers.getSetCookie().map((c) => c.split('=')[0]);
const enc = encodeURIComponent;

describe('inbound sync: the consent matrix', () => {
  const both = tcfString({ vendors: [TEST_VENDOR], purposes: [1, 3, 4] });
  const noP1 = tcfString({ vendors: [TEST_VENDOR], purposes: [3, 4] });
  const noVendor = tcfString({ vendors: [77], purposes: [1, 3, 4] });
  const cases: Array<[string, string, boolean]> = [
    ['no gdpr', '', true],
    ['gdpr=0', 'gdpr=0', true],
    ['gdpr=1 with vendor consent and Purpose 1', `gdpr=1&gdpr_consent=${both}`, true],
    ['gdpr=1 without a consent string', 'gdpr=1', false],
    ['gdpr=1 without Purpose 1', `gdpr=1&gdpr_consent=${noP1}`, false],
    ['gdpr=1 without vendor consent', `gdpr=1&gdpr_consent=${noVendor}`, false],
    ['gdpr=1 with a malformed TCF string', 'gdpr=1&gdpr_consent=not-a-tcf-string!!', false],
    ['gdpr=1 with a truncated TCF string', `gdpr=1&gdpr_consent=${both.slice(0, 12)}`, false],
    ['gdpr=yes', 'gdpr=yes', false],
    ['GPP saying TCF EU applies, no TCF string', 'gpp_sid=2', false],
    ['malformed GPP', 'gpp=DBABMA~garbage&gpp_sid=7', false],
    ['gpp_sid not a list of integers', 'gpp_sid=abc', false],
    ['US Privacy opt-out of sale', 'us_privacy=1YYN', false],
    ['malformed US Privacy', 'us_privacy=1ZZZ', false],
    ['US Privacy without opt-out', 'us_privacy=1YNN', true],
    ['GPP US national sale opt-out', `gpp=${enc(gppUsNat(true))}&gpp_sid=7`, false],
    ['GPP US national, no opt-out', `gpp=${enc(gppUsNat(false))}&gpp_sid=7`, true],
    ['GPP USP section opt-out', `gpp=${enc(gppUsp(true))}&gpp_sid=6`, false],
  ];

  it.each(cases)('%s', async (_name, q, allowed) => {
    const puid = `consent-${Math.random().toString(36).slice(2)}`;
    const r = await get(`/sync/in?partner=dspa&puid=${puid}&f=i&${q}`);
    if (allowed) {
      expect([r.status, r.headers.get('content-type'), cookieNames(r)]).toEqual([200, 'image/gif', ['segd']]);
      expect((await r.arrayBuffer()).byteLength).toBe(42);
      await waitFor(async () => (await lookup(`partner=dspa&puid=${puid}`)).uid !== null, 5000);
    } else {
      // A fast no-op: 204, no cookie read or written, nothing stored.
      expect([r.status, cookieNames(r), await r.text()]).toEqual([204, [], '']);
      await fx.matchesWritten();
      expect(await lookup(`partner=dspa&puid=${puid}`)).toEqual({ uid: null, segments: [] });
    }
  });

  it('an 8 KB consent string is refused without a 5xx', async () => {
    const r = await get(`/sync/in?partner=dspa&puid=big&gdpr=1&gdpr_consent=${'A'.repeat(8300)}`);
    expect(r.status).toBeLessThan(500);
    expect(r.headers.getSetCookie()).toEqual([]);
  });
});

describe('inbound sync: formats, cookies, open redirects', () => {
  it('reuses a valid segd cookie and replaces one segd could not have written', async () => {
    const mine = 'AbCdEfGhIjKlMnOpQrStUv';
    let r = await get('/sync/in?partner=dspa&puid=keep-1&f=b', { Cookie: `other=1; segd=${mine}` });
    expect([r.status, r.headers.get('content-type'), await r.text()]).toEqual([200, 'text/html; charset=utf-8', '']);
    expect(r.headers.getSetCookie()[0]).toBe(`segd=${mine}; Max-Age=34560000; Path=/; Secure; HttpOnly; SameSite=None`);
    await waitFor(async () => (await lookup('partner=dspa&puid=keep-1')).uid === mine, 5000);
    r = await get('/sync/in?partner=dspa&puid=keep-2&f=n', { Cookie: 'segd=<script>alert(1)</script>' });
    expect(r.status).toBe(204);
    const fresh = /^segd=([A-Za-z0-9_-]{22});/.exec(r.headers.getSetCookie()[0]!)![1];
    expect(fresh).not.toBe(mine);
  });

  it('Set-Cookie headers stay within SEGD_COOKIE_MAX_BYTES: the opt-out answer is the largest, as computed at start', async () => {
    const r = await get('/optout', { Cookie: 'segd=QQQQQQQQQQQQQQQQQQQQQQ' });
    const lines = r.headers.getSetCookie();
    expect(lines.map((l) => l.split('=')[0])).toEqual(['segd_optout', 'segd']);
    const bytes = lines.reduce((n, l) => n + 'Set-Cookie: '.length + l.length + 2, 0);
    expect(bytes).toBe(
      largestSetCookieBytes(
        cookieSettings({
          cookieName: 'segd',
          cookieDomain: '',
          cookieMaxAge: 34_560_000,
          optoutCookieName: 'segd_optout',
        }),
      ),
    );
    expect(bytes).toBeLessThanOrEqual(1024);
    const refused = await runSegd(['serve'], {
      SEGD_DATA_DIR: join(dataDir, 'never'),
      SEGD_COOKIE_DOMAIN: `${'sub.'.repeat(40)}example.com`,
      SEGD_COOKIE_MAX_BYTES: '256',
    });
    expect([refused.code, refused.stderr]).toEqual([
      2,
      expect.stringMatching(/SEGD_COOKIE_MAX_BYTES: the cookie settings make answers with \d+ bytes/),
    ]);
  });

  it.each([
    ['a redirect parameter', 'puid=r1&redirect=https://evil.example/'],
    ['a protocol-relative redirect', 'puid=r2&redir=//evil.example'],
    ['a scheme-only redirect', 'puid=r3&url=https:evil.example'],
    ['javascript:', 'puid=r4&redirect=javascript:alert(1)'],
    ['a double-encoded redirect', 'puid=r5&redirect=%252F%252Fevil.example'],
    ['a double-encoded uid', 'puid=%252F%252Fevil.example%252F'],
  ])('never redirects: %s', async (_n, q) => {
    const r = await get(`/sync/in?partner=dspa&f=i&${q}`);
    expect([r.status, r.headers.get('location')]).toEqual([200, null]);
  });

  it.each([
    ['CR/LF in the uid', 'puid=x%0d%0aLocation:%20https://evil.example', 'UID_INVALID'],
    ['a NUL in the uid', 'puid=x%00y', 'UID_INVALID'],
    ['an empty uid', 'puid=', 'UID_MISSING'],
    ['a uid over 128 bytes', `puid=${'u'.repeat(129)}`, 'UID_INVALID'],
    ['an unfilled macro', `puid=${enc('${UID}')}`, 'UID_INVALID'],
    ['an unfilled template variable', `puid=${enc('{{.UID}}')}`, 'UID_INVALID'],
    ['a "not recognised" sentinel', 'puid=0', 'UID_INVALID'],
  ])('refuses %s', async (_n, q, code) => {
    const r = await get(`/sync/in?partner=dspa&${q}`);
    expect([
      r.status,
      r.headers.get('location'),
      r.headers.getSetCookie(),
      ((await r.json()) as { error: { code: string } }).error.code,
    ]).toEqual([400, null, [], code]);
  });

  it.each([
    ['missing', ''],
    ['unknown', 'partner=nobody'],
    ['disabled', 'partner=dspoff'],
    ['without sync', 'partner=nosync'],
    ['malformed', 'partner=%0d%0a'],
  ])('refuses a %s partner', async (_n, q) => {
    const r = await get(`/sync/in?${q}&puid=x`);
    expect([r.status, ((await r.json()) as { error: { code: string } }).error.code]).toEqual([
      400,
      'SYNC_NOT_CONFIGURED',
    ]);
  });

  it("signed callbacks: only a fresh, valid HMAC over partner + uid + time + this browser's segd uid is taken", async () => {
    const now = Math.floor(Date.now() / 1000);
    const mine = 'SignedBrowser000000001';
    const other = 'SignedBrowser000000002';
    const as = (uid: string) => ({ Cookie: `segd=${uid}` });
    const ok = await get(
      `/sync/in?partner=dspb&puid=signed-1&ts=${now}&sig=${sign(HMAC, 'dspb', 'signed-1', now, mine)}`,
      as(mine),
    );
    expect(ok.status).toBe(200);
    const good = `puid=signed-2&ts=${now}&sig=${sign(HMAC, 'dspb', 'signed-2', now, mine)}`;
    const bad: Array<[string, string, Record<string, string>]> = [
      ['missing', 'puid=signed-2', as(mine)],
      ['stale', `puid=signed-2&ts=${now - 3600}&sig=${sign(HMAC, 'dspb', 'signed-2', now - 3600, mine)}`, as(mine)],
      ['another uid', `puid=signed-2&ts=${now}&sig=${sign(HMAC, 'dspb', 'signed-1', now, mine)}`, as(mine)],
      ['another key', `puid=signed-2&ts=${now}&sig=${sign('x'.repeat(20), 'dspb', 'signed-2', now, mine)}`, as(mine)],
      ['a bad ts', `puid=signed-2&ts=1e9&sig=${sign(HMAC, 'dspb', 'signed-2', now, mine)}`, as(mine)],
      // Replayed into another browser, or into one without a segd uid.
      ['another browser', good, as(other)],
      ['no segd cookie', good, {}],
    ];
    for (const [why, q, headers] of bad) {
      const r = await get(`/sync/in?partner=dspb&${q}`, headers);
      expect([why, r.status, r.headers.getSetCookie()]).toEqual([why, 403, []]);
    }
    await waitFor(async () => (await lookup('partner=dspb&puid=signed-1')).uid === mine, 5000);
    expect((await lookup('partner=dspb&puid=signed-2')).uid).toBeNull();
  });
});

describe('outbound sync', () => {
  type Out = {
    status: string;
    partners: Array<{ partner: string; status: string; usersync?: { url: string; type: string } }>;
  };
  const uid = 'ZZZZZZZZZZZZZZZZZZZZZZ';

  it('lists registered templates filled and encoded, with per-partner statuses and a limit', async () => {
    const hostile = 'CO"><script>&evil=https://evil.example/#';
    const r = await get(
      `/sync/out?partners=dspa,dspb,dspc,dspoff,nosync,ghost,dspa&gdpr=0&gdpr_consent=${enc(hostile)}&us_privacy=1YNN&gpp_sid=6`,
      { Cookie: `segd=${uid}` },
    );
    const body = (await r.json()) as Out;
    expect(body.status).toBe('ok');
    expect(body.partners.map((p) => [p.partner, p.status, p.usersync?.type])).toEqual([
      ['dspa', 'ok', 'redirect'],
      ['dspb', 'ok', 'pixel'],
      ['dspc', 'over_limit', undefined],
      ['dspoff', 'not_configured', undefined],
      ['nosync', 'not_configured', undefined],
      ['ghost', 'unknown_partner', undefined],
    ]);
    const a = new URL(body.partners[0]!.usersync!.url);
    // Only the registered host and path; every macro value arrives intact as one parameter.
    expect([a.origin, a.pathname, [...a.searchParams.keys()]]).toEqual([
      'https://sync.dspa.example',
      '/m',
      ['dmp', 'u', 'gdpr', 'gc', 'usp', 'gpp', 'sid'],
    ]);
    expect(Object.fromEntries(a.searchParams)).toEqual({
      dmp: 'segd',
      u: uid,
      gdpr: '0',
      gc: hostile,
      usp: '1YNN',
      gpp: '',
      sid: '6',
    });
    expect(r.headers.getSetCookie()[0]).toMatch(new RegExp(`^segd=${uid};`));
  });

  it('skips partners synced recently — recorded in the store, so parallel syncs lose nothing — and takes a POST body like /cookie_sync', async () => {
    const me = 'YYYYYYYYYYYYYYYYYYYYYY';
    const now = Math.floor(Date.now() / 1000);
    // Two partners' callbacks at once, as a page firing both syncs would.
    const [ra, rb] = await Promise.all([
      get('/sync/in?partner=dspa&puid=par-a', { Cookie: `segd=${me}` }),
      get(`/sync/in?partner=dspb&puid=par-b&ts=${now}&sig=${sign(HMAC, 'dspb', 'par-b', now, me)}`, {
        Cookie: `segd=${me}`,
      }),
    ]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    await waitFor(
      async () =>
        (await lookup('partner=dspa&puid=par-a')).uid === me && (await lookup('partner=dspb&puid=par-b')).uid === me,
      5000,
    );
    const r = await fetch(`${fx.segd.url}/sync/out`, {
      method: 'POST',
      headers: { Cookie: `segd=${me}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ partners: '*', limit: 5, gdpr: 0, gpp_sid: [6] }),
    });
    const body = (await r.json()) as Out;
    expect(body.partners.map((p) => [p.partner, p.status])).toEqual([
      ['dspa', 'already_synced'],
      ['dspb', 'already_synced'],
      ['dspc', 'ok'],
    ]);
  });

  it.each([
    ['opted out', { Cookie: 'segd_optout=OPT_OUT' }, '', 'opted_out', 'opted_out'],
    ['no consent', {}, 'gdpr=1', 'no_consent', 'blocked_by_consent'],
    ['US sale opt-out', {}, 'us_privacy=1YYN', 'privacy_blocked', 'blocked_by_privacy'],
    ['malformed GPP', {}, 'gpp=xx&gpp_sid=7', 'no_consent', 'blocked_by_consent'],
  ])('%s: no sync URLs, no cookie', async (_n, headers, q, status, each) => {
    const r = await get(`/sync/out?${q}`, headers as Record<string, string>);
    const body = (await r.json()) as Out;
    expect([
      body.status,
      [...new Set(body.partners.map((p) => p.status))],
      body.partners.some((p) => p.usersync),
      r.headers.getSetCookie(),
    ]).toEqual([status, [each], false, []]);
  });

  it('the script only adds the frame; the frame fires each partner by its type and holds nothing a page could break out of', async () => {
    const r = await get(`/sync/script.js?partners=dspc,dspa&gdpr=0`);
    expect([r.headers.get('content-type'), r.headers.getSetCookie()]).toEqual([
      'application/javascript; charset=utf-8',
      [],
    ]);
    expect(await r.text()).toContain("'/sync/frame.html'");
    const f = await get(
      `/sync/frame.html?partners=dspc,dspa&gdpr=0&gdpr_consent=${enc('</script><script>alert(1)</script>\u2028')}`,
    );
    const html = await f.text();
    expect(f.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(f.headers.get('content-security-policy')).toMatch(
      /^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/]+=*'; img-src \*; frame-src \*; frame-ancestors \*/,
    );
    expect(f.headers.get('x-frame-options')).toBeNull();
    expect(html.match(/<\/script>/g)).toHaveLength(2);
    expect(html).not.toContain('\u2028');
    expect(html).toContain('"type":"iframe"');
  });

  it('metrics say why each sync ended as it did', async () => {
    const count = async (d: string, o: string) => metric(fx.segd.url, 'segd_sync_total', { direction: d, outcome: o });
    const optedOut = { Cookie: 'segd_optout=OPT_OUT' };
    const cases: Array<[string, string, () => Promise<Response>]> = [
      ['in', 'stored', () => get('/sync/in?partner=dspa&puid=metric-1&f=n')],
      ['in', 'opted_out', () => get('/sync/in?partner=dspa&puid=metric-2', optedOut)],
      ['in', 'no_consent', () => get('/sync/in?partner=dspa&puid=metric-3&gdpr=1')],
      ['in', 'privacy_blocked', () => get('/sync/in?partner=dspa&puid=metric-4&us_privacy=1YYN')],
      ['in', 'bad_partner', () => get('/sync/in?partner=dspoff&puid=metric-5')],
      ['in', 'bad_uid', () => get('/sync/in?partner=dspa&puid=null')],
      ['in', 'bad_signature', () => get('/sync/in?partner=dspb&puid=metric-6')],
      ['out', 'ok', () => get('/sync/out?partners=dspa')],
      ['out', 'opted_out', () => get('/sync/out', optedOut)],
      ['out', 'no_consent', () => get('/sync/out?gdpr=1')],
      ['out', 'privacy_blocked', () => get('/sync/out?us_privacy=1YYN')],
      ['out', 'bad_request', () => get('/sync/out?limit=-1')],
    ];
    for (const [d, o, request] of cases) {
      const before = await count(d, o);
      await (await request()).arrayBuffer();
      expect([d, o, await count(d, o)]).toEqual([d, o, before + 1]);
    }
  });

  it('refuses malformed requests with a 400', async () => {
    expect((await get('/sync/out?partners=A%20B')).status).toBe(400);
    expect((await get('/sync/out?limit=-1')).status).toBe(400);
    const surrogate = await fetch(`${fx.segd.url}/sync/out`, { method: 'POST', body: '{"gdpr_consent":"\\ud800"}' });
    expect(surrogate.status).toBe(200);
    expect(((await surrogate.json()) as Out).partners[0]!.usersync!.url).toMatch(/gc=%EF%BF%BD&/);
    const odd = await fetch(`${fx.segd.url}/sync/out`, { method: 'POST', body: '{"gpp_sid":"6","us_privacy":["x"]}' });
    expect([odd.status, ((await odd.json()) as { status: string }).status]).toEqual([200, 'no_consent']);
    const badSid = await fetch(`${fx.segd.url}/sync/out`, { method: 'POST', body: '{"gpp_sid":{"a":1}}' });
    expect([badSid.status, ((await badSid.json()) as { error: { code: string } }).error.code]).toEqual([
      400,
      'BAD_SYNC_REQUEST',
    ]);
    const r = await fetch(`${fx.segd.url}/sync/out`, { method: 'POST', body: '{"partners":' });
    expect([r.status, ((await r.json()) as { error: { code: string } }).error.code]).toEqual([400, 'BAD_JSON']);
  });
});

describe('ID graph, deletion and resurrection', () => {
  /** Two devices of one person, merged by a shared login, with every id kind: each test uploads a graph of its own. */
  const graph = (n: number) => {
    const g = {
      dev1: `g${n}-dev-1`,
      dev2: `g${n}-dev-2`,
      ifa: `6D92078A-8246-4BA4-AE5B-${String(n).padStart(12, '0')}`,
      eid: `ID5*graph-${n}`,
      puid: `pa-graph-${n}`,
      login: String(n).padStart(64, 'a'),
    };
    const records = [
      { op: 'add', uid: g.dev1, segments: [1, 2] },
      { op: 'add', uid: g.dev2, segments: [3, { id: 4, ttl: 86_400 }] },
      { op: 'match', ifa: g.ifa, uid: g.dev1 },
      { op: 'match', eid_source: 'id5-sync.com', eid: g.eid, uid: g.dev1 },
      { op: 'match', partner: 'dspa', puid: g.puid, uid: g.dev2 },
      { op: 'match', login: g.login, login_source: 'email-sha256', uid: g.dev1 },
      { op: 'match', login: g.login, login_source: 'email-sha256', uid: g.dev2 },
    ];
    /** A lookup query by each graph id. */
    const keys = [
      `ifa=${g.ifa.toLowerCase()}`,
      `ifa=${g.ifa}`,
      `eid_source=id5-sync.com&eid=${enc(g.eid)}`,
      `partner=dspa&puid=${g.puid}`,
      `login=${g.login}&login_source=email-sha256`,
    ];
    return { ...g, records, keys };
  };

  it('match upload: every key kind resolves, and a shared login id merges two devices into one profile', async () => {
    const g = graph(1);
    expect(await push(g.records)).toMatchObject({ applied: 7, rejected: 0 });
    const profile = { uid: g.dev1, segments: [1, 2, 3, 4] };
    for (const k of g.keys) expect([k, await lookup(k)]).toEqual([k, profile]);
    expect((await lookup(`uid=${g.dev2}`)).segments).toEqual([1, 2, 3, 4]);
    // Upstream keeps sending the merged device's uid: it lands on the profile.
    expect(await push([{ op: 'add', uid: g.dev2, segments: [5] }])).toMatchObject({ applied: 1 });
    expect((await lookup(`partner=dspa&puid=${g.puid}`)).segments).toEqual([1, 2, 3, 4, 5]);
  });

  it('batch lookups take graph ids too: resolved in request order, a bad id failing only its own entry', async () => {
    const g = graph(2);
    expect(await push(g.records)).toMatchObject({ applied: 7, rejected: 0 });
    const keys = [
      { partner: 'dspa', puid: g.puid },
      { ifa: g.ifa },
      { uid: g.dev2 },
      { partner: 'dspa' },
      { eid_source: 'id5-sync.com', eid: 'nobody' },
    ];
    const profile = { uid: g.dev1, segments: [1, 2, 3, 4] };
    // A segd uid is answered as sent (GET does the same), the profile's segments read through the merge.
    const want = [
      profile,
      profile,
      { ...profile, uid: g.dev2 },
      { uid: null, segments: [], error: { code: 'BAD_ID_KEY', message: expect.stringMatching(/id must be/) } },
      { uid: null, segments: [] },
    ];
    const r = await fetch(`${fx.segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ keys }),
    });
    expect(await r.json()).toEqual({ results: want });
    const m = await fetch(`${fx.segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/msgpack', Accept: 'application/msgpack' },
      body: pack({ keys }),
    });
    expect(unpack(Buffer.from(await m.arrayBuffer()))).toEqual({ results: want });
  });

  it('bad match records are rejected with their reason; the rest apply', async () => {
    const r = await push([
      { op: 'match', uid: 'dev-9' },
      { op: 'match', partner: 'Bad Partner', puid: 'x', uid: 'dev-9' },
      '{"op":"match","partner":"dspa","puid":"x\\r\\ny","uid":"dev-9"}',
      { op: 'match', eid_source: 'id5-sync.com', uid: 'dev-9' },
      { op: 'match', partner: 'dspa', puid: 'good-9', uid: 'dev-9' },
    ]);
    expect([r.applied, r.rejected, r.rejects.map((x) => x.line)]).toEqual([1, 4, [1, 2, 3, 4]]);
    expect(r.rejects[0]!.reason).toMatch(/needs "partner"\+"puid"/);
    expect((await lookup('partner=dspa&puid=good-9')).uid).toBe('dev-9');
  });

  it('matches from inbox files too', async () => {
    await dropFeed(
      join(dataDir, 'inbox'),
      '001-matches.ndjson',
      `${JSON.stringify({ op: 'match', partner: 'dspc', puid: 'inbox-1', uid: 'dev-9' })}\n`,
    );
    await waitFor(async () => (await lookup('partner=dspc&puid=inbox-1')).uid === 'dev-9');
  });

  it('deletion by any id removes the profile and every linked id, audited, and nothing brings it back', async () => {
    const g = graph(3);
    expect(await push(g.records)).toMatchObject({ applied: 7, rejected: 0 });
    const byPuid = `partner=dspa&puid=${g.puid}`;
    expect((await del(byPuid, 'wrong-key-0123456789')).status).toBe(401);
    expect((await del(`${byPuid}&ifa=x`)).status).toBe(400);
    const r = await del(byPuid);
    const body = (await r.json()) as {
      found: boolean;
      uid: string;
      ids: number;
      memberships: boolean;
      tombstoneUntil: string;
      audit: number;
    };
    expect([r.status, body.found, body.uid, body.ids, body.memberships]).toEqual([200, true, g.dev1, 5, true]);
    expect(Date.parse(body.tombstoneUntil) / 1000).toBeGreaterThan(Date.now() / 1000 + 399 * 86_400);
    const gone = { uid: null, segments: [] };
    const check = async () => {
      for (const k of g.keys) expect([k, await lookup(k)]).toEqual([k, gone]);
      expect((await lookup(`uid=${g.dev1}`)).segments).toEqual([]);
      expect((await lookup(`uid=${g.dev2}`)).segments).toEqual([]);
    };
    await check();

    // Resurrection: the upstream snapshot replayed (HTTP push and an inbox file), and a newer delta.
    expect(await push(g.records)).toMatchObject({ applied: 0, stale: 7 });
    const files = () => metric(fx.segd.url, 'segd_loader_files_total', { source: 'inbox' });
    const filesBefore = await files();
    await dropFeed(
      join(dataDir, 'inbox'),
      `${g.dev1}-snapshot.ndjson`,
      g.records.map((l) => JSON.stringify(l)).join('\n') + '\n',
    );
    await waitFor(async () => (await files()) === filesBefore + 1);
    expect(
      await push([{ op: 'add', uid: g.dev2, segments: [9], ts: Math.floor(Date.now() / 1000) + 60 }]),
    ).toMatchObject({ applied: 0, stale: 1 });
    // And a browser sync for a deleted partner id stores nothing: taken, and refused by the writer.
    const refused = () => metric(fx.segd.url, 'segd_loader_records_total', { source: 'sync', outcome: 'stale' });
    const refusedBefore = await refused();
    expect((await get(`/sync/in?${byPuid}`)).status).toBe(200);
    await fx.matchesWritten();
    expect(await refused()).toBe(refusedBefore + 1);

    await check();
    await fx.restart();
    await check();

    const audit = (await (await get('/v1/admin/audit?limit=5', { Authorization: `Bearer ${ADMIN}` })).json()) as {
      entries: Array<Record<string, unknown>>;
    };
    expect(audit.entries[0]).toMatchObject({
      seq: body.audit,
      action: 'delete',
      found: true,
      ids: 5,
      memberships: true,
      requested: { kind: 'p:dspa' },
    });
    expect(audit.entries[0]!.by).toMatch(/^admin:[0-9a-f]{16}$/);
    // Ids are kept only as digests.
    expect(JSON.stringify(audit.entries)).not.toMatch(/pa-graph|g3-dev|graph-3/);
    expect((await get('/v1/admin/audit')).status).toBe(401);
  });

  it('a merged device uid still finds its profile after the known-users filter is rebuilt from the store', async () => {
    const email = 'b'.repeat(64);
    expect(
      await push([
        { op: 'add', uid: 'dev-5', segments: [50] },
        { op: 'match', login: email, uid: 'dev-5' },
        { op: 'match', login: email, uid: 'dev-6' },
      ]),
    ).toMatchObject({ applied: 3 });
    expect(await lookup('uid=dev-6')).toEqual({ uid: 'dev-6', segments: [50] });
    await fx.restart(() => rmSync(join(dataDir, FILTER_FILE)));
    await waitFor(async () => (await (await get('/readyz')).text()).includes('"filter":"ready"'));
    expect(await lookup('uid=dev-6')).toEqual({ uid: 'dev-6', segments: [50] });
  });

  it('ids are resolved through the known-users filter: a synced partner id on the first lookup once stored, every id after a rebuild', async () => {
    await waitFor(async () => (await (await get('/readyz')).text()).includes('"filter":"ready"'));
    const puid = 'first-after-store';
    expect(await lookup(`partner=dspa&puid=${puid}`)).toEqual({ uid: null, segments: [] });
    const r = await get(`/sync/in?partner=dspa&puid=${puid}&f=i`);
    expect(r.status).toBe(200);
    const uid = /segd=([^;]+)/.exec(r.headers.getSetCookie().join(';'))![1]!;
    await fx.matchesWritten();
    expect(await lookup(`partner=dspa&puid=${puid}`)).toEqual({ uid, segments: [] });
    expect(
      await push([
        { op: 'add', uid: 'dev-7', segments: [70] },
        { op: 'match', partner: 'dspa', puid: 'pa-dev-7', uid: 'dev-7' },
        { op: 'match', ifa: '0f0f0f0f-1111-4222-8333-444444444444', uid: 'dev-7' },
      ]),
    ).toMatchObject({ applied: 3 });
    const profile = { uid: 'dev-7', segments: [70] };
    const byIds = ['partner=dspa&puid=pa-dev-7', 'ifa=0f0f0f0f-1111-4222-8333-444444444444'];
    for (const q of byIds) expect([q, await lookup(q)]).toEqual([q, profile]);
    await fx.restart(() => rmSync(join(dataDir, FILTER_FILE)));
    await waitFor(async () => (await (await get('/readyz')).text()).includes('"filter":"ready"'));
    for (const q of [...byIds, `partner=dspa&puid=${puid}`])
      expect([q, (await lookup(q)).uid]).toEqual([q, q.includes(puid) ? uid : 'dev-7']);
  });

  it('matches answered just before a graceful stop are stored', async () => {
    const n = 50;
    // 50 browsers (a partner links one id per profile).
    const browser = (i: number) => `Stop${String(i).padStart(2, '0')}`.padEnd(22, 'S');
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        get(`/sync/in?partner=dspc&puid=stop-${i}&f=n`, { Cookie: `segd=${browser(i)}` }),
      ),
    );
    expect(answers.every((r) => r.status === 204)).toBe(true);
    await fx.restart();
    const found = await Promise.all(Array.from({ length: n }, (_, i) => lookup(`partner=dspc&puid=stop-${i}`)));
    expect(found.filter((f, i) => f.uid === browser(i)).length).toBe(n);
  });

  it('deleting an id nothing is stored for still tombstones it', async () => {
    const r = await del('ifa=11111111-2222-3333-4444-555555555555');
    expect(((await r.json()) as { found: boolean }).found).toBe(false);
    expect(await push([{ op: 'match', ifa: '11111111-2222-3333-4444-555555555555', uid: 'dev-7' }])).toMatchObject({
      applied: 0,
      stale: 1,
    });
    expect((await lookup('ifa=11111111-2222-3333-4444-555555555555')).uid).toBeNull();
  });
});

describe('lookups by graph id: bad input', () => {
  it.each([
    ['two ids', 'partner=dspa&puid=x&ifa=y', 'BAD_ID_KEY'],
    ['a partner without puid', 'partner=dspa', 'BAD_ID_KEY'],
    ['a bad partner id', 'partner=DSP%20A&puid=x', 'BAD_ID_KEY'],
    ['an eid without source', 'eid=x', 'BAD_ID_KEY'],
    ['CR/LF in an ifa', 'ifa=a%0d%0ab', 'BAD_ID_KEY'],
    ['nothing', '', 'UID_MISSING'],
  ])('%s → 400', async (_n, q, code) => {
    const r = await get(`/v1/segments?${q}`);
    expect([r.status, ((await r.json()) as { error: { code: string } }).error.code]).toEqual([400, code]);
  });

  it('an unknown id is an empty answer, in every format', async () => {
    expect(await lookup('partner=dspa&puid=nobody')).toEqual({ uid: null, segments: [] });
    expect(await (await get('/v1/segments?ifa=nobody&format=kv')).text()).toBe('seg=');
    expect((await get('/healthz')).status).toBe(200);
  });
});
