// GET /v1/rtd (and its preflight) over real HTTP against a real segd: CORS
// for configured origins only, the cookie as the only identity, consent and
// opt-out before any read, licences, and hostile queries (400s, never a crash).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { startRtdSegd, UID, type RtdSegd } from './fixtures/prebid/segd.js';
import { tcfString, gppUsNat, TEST_VENDOR } from './helpers/tcf.js';
import { metric } from './helpers/metrics.js';
import { loadConfig, ConfigError } from '../src/config/load.js';

const ORIGIN = 'https://news.example';
const CONSENT = tcfString({ vendors: [TEST_VENDOR], purposes: [1, 4] });
const NO_P4 = tcfString({ vendors: [TEST_VENDOR], purposes: [1] });
const OK = `gdpr=1&gdpr_consent=${CONSENT}`;
const COOKIE = `segd=${UID}`;

let fx: RtdSegd;
beforeAll(async () => {
  fx = await startRtdSegd(ORIGIN);
}, 30_000);
afterAll(async () => {
  await fx?.stop();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A raw request: fetch would not send Origin or Cookie as given. */
function call(method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: fx.segd.port, path, method, headers: { Origin: ORIGIN, Cookie: COOKIE, ...headers } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
const rtd = (q: string, headers?: Record<string, string>) => call('GET', `/v1/rtd?${q}`, headers);

describe('GET /v1/rtd', () => {
  it('answers the publisher’s licensed segments as Data objects per segtax, bidder extras, and GAM targeting', async () => {
    const a = await rtd(`pub=pubnews&bidders=dspa,dspb,dspc&${OK}`);
    expect(a.status).toBe(200);
    expect(a.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(a.headers['access-control-allow-credentials']).toBe('true');
    expect(a.headers['vary']).toBe('Origin');
    expect(a.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(a.text)).toEqual({
      data: [
        { id: 'acme', name: 'segd.test', segment: [{ id: '1001' }], ext: { segtax: 4 } },
        { id: 'acme', name: 'segd.test', segment: [{ id: '2001' }], ext: { segtax: 600 } },
      ],
      // dspa: its own 3001; dspb (licensed '*'): 3001 and 9001 beyond the global data; dspc: not this site's.
      bidders: {
        dspa: [{ id: 'acme', name: 'segd.test', segment: [{ id: '3001' }], ext: { segtax: 4 } }],
        dspb: [{ id: 'acme', name: 'segd.test', segment: [{ id: '3001' }, { id: '9001' }], ext: { segtax: 4 } }],
      },
      targeting: { seg: '1001,2001' },
    });
  });

  it('the preflight: allowed origin reflected with credentials; any other origin refused without CORS headers', async () => {
    const ok = await call('OPTIONS', '/v1/rtd', { 'Access-Control-Request-Method': 'GET' });
    expect(ok.status).toBe(204);
    expect(ok.headers).toMatchObject({
      'access-control-allow-origin': ORIGIN,
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET',
      vary: 'Origin',
    });
    for (const origin of ['https://evil.example', 'null', '*', `${ORIGIN}.evil.example`, ORIGIN.toUpperCase()]) {
      const no = await call('OPTIONS', '/v1/rtd', { Origin: origin });
      expect([origin, no.status, no.headers['access-control-allow-origin']]).toEqual([origin, 403, undefined]);
    }
  });

  it('another origin, or none, gets a 403 without CORS headers: another site cannot read the browser’s segments', async () => {
    for (const origin of ['https://evil.example', '']) {
      const a = await rtd(`pub=pubnews&${OK}`, { Origin: origin });
      expect(a.status).toBe(403);
      expect(a.headers['access-control-allow-origin']).toBeUndefined();
      expect(JSON.parse(a.text).error.code).toBe('ORIGIN_NOT_ALLOWED');
    }
    // The right origin naming another publisher: refused, readable by the page.
    const other = await rtd(`pub=dspb&${OK}`);
    expect([other.status, other.headers['access-control-allow-origin']]).toEqual([403, ORIGIN]);
  });

  it('hostile and malformed queries are 400s, and segd keeps answering', async () => {
    for (const q of [
      '',
      'pub=',
      'pub=PUBNEWS',
      'pub=../admin',
      'pub=%00',
      `pub=${'a'.repeat(41)}`,
      'pub=pubnews&bidders=dspa,,dspb',
      'pub=pubnews&bidders=,',
      'pub=pubnews&bidders=DSPA',
      'pub=pubnews&bidders=dspa%0d%0aX-Injected:%201',
      `pub=pubnews&bidders=${Array.from({ length: 51 }, (_, i) => `b${i}`).join(',')}`,
      'pub=pubnews&coppa=2',
      'pub=pubnews&coppa=true',
      'pub=pubnews&coppa=%31%31',
    ]) {
      const a = await rtd(`${q}&${OK}`);
      expect([q, a.status, a.text]).toEqual([q, 400, expect.stringContaining('BAD_RTD_REQUEST')]);
      expect(a.headers['x-injected']).toBeUndefined();
    }
    // A repeated parameter: the first counts.
    expect((await rtd(`pub=pubnews&${OK}&gdpr_consent=${'%ff'.repeat(3000)}&pub=dspb`)).status).toBe(200);
    // Unknown parameters, however long, are ignored.
    expect((await rtd(`pub=pubnews&${OK}&x=${'a'.repeat(20_000)}`)).status).toBe(200);
    expect((await rtd(`pub=pubnews&${OK}`)).status).toBe(200);
    expect(await metric(fx.segd.url, 'segd_http_requests_total', { route: 'rtd', status: '500' })).toBe(0);
  });

  it('malformed consent signals fail closed (204, nothing read)', async () => {
    for (const q of [
      'gdpr=7',
      'gdpr=1&gdpr_consent=not-a-tcf-string',
      `gdpr=1&gdpr_consent=${'A'.repeat(9000)}`,
      `${OK}&gpp_sid=x`,
      `${OK}&gpp=%7E%7E%7E`,
      `${OK}&us_privacy=1Q`,
    ]) {
      const a = await rtd(`pub=pubnews&${q}`);
      expect([q.slice(0, 40), a.status, a.headers['x-segd-empty']]).toEqual([q.slice(0, 40), 204, 'consent']);
      expect(a.headers['access-control-allow-origin']).toBe(ORIGIN);
    }
  });

  it('no personalisation without consent: refused TCF, no Purpose 4, gdpr=1 without a string, US opt-outs, COPPA', async () => {
    const refusals: Array<[string, string]> = [
      [`gdpr=1&gdpr_consent=${tcfString({ vendors: [], purposes: [1, 4] })}`, 'consent'],
      [`gdpr=1&gdpr_consent=${NO_P4}`, 'consent'],
      ['gdpr=1', 'consent'],
      ['', 'consent'], // says nothing about GDPR: SEGD_GDPR_DEFAULT=applies
      ['gdpr=0&us_privacy=1YYN', 'consent'],
      [`gdpr=0&gpp=${gppUsNat(true)}&gpp_sid=7`, 'consent'],
      [`${OK}&coppa=1`, 'coppa'],
    ];
    for (const [q, why] of refusals) {
      const a = await rtd(`pub=pubnews&${q}`);
      expect([q.slice(0, 50), a.status, a.headers['x-segd-empty'], a.text]).toEqual([q.slice(0, 50), 204, why, '']);
    }
    // US signals that do not opt out, outside GDPR: answered.
    expect((await rtd(`pub=pubnews&gdpr=0&us_privacy=1YNN&gpp=${gppUsNat(false)}&gpp_sid=7`)).status).toBe(200);
  });

  it('the cookie is the only identity: no cookie, a foreign value, or the opt-out cookie → 204; a uid in the query is ignored', async () => {
    const cases: Array<[string, string]> = [
      ['', 'no_uid'],
      ['segd=not-a-segd-uid', 'no_uid'],
      [`${COOKIE}; segd_optout=OPT_OUT`, 'opted_out'],
    ];
    for (const [cookie, why] of cases) {
      const a = await rtd(`pub=pubnews&${OK}&uid=${UID}`, { Cookie: cookie });
      expect([cookie, a.status, a.headers['x-segd-empty']]).toEqual([cookie, 204, why]);
      expect(a.headers['set-cookie']).toBeUndefined();
    }
  });

  it('a browser segd does not know gets empty data, not an error', async () => {
    const a = await rtd(`pub=pubnews&${OK}`, { Cookie: 'segd=BBBBBBBBBBBBBBBBBBBBBB' });
    expect([a.status, JSON.parse(a.text)]).toEqual([200, { data: [], bidders: {}, targeting: {} }]);
  });

  it('other methods are 405', async () => {
    expect((await call('POST', '/v1/rtd?pub=pubnews')).status).toBe(405);
  });
});

describe('SEGD_RTD_ORIGINS', () => {
  const parse = (v: string) => loadConfig({ env: { SEGD_RTD_ORIGINS: v } }).rtdOrigins;

  it('reads origin=publisher[+partner…] entries', () => {
    expect(parse(' https://news.example=pubnews+dspa , http://127.0.0.1:8080=pub2,')).toEqual([
      { origin: 'https://news.example', publisher: 'pubnews', partners: ['dspa'] },
      { origin: 'http://127.0.0.1:8080', publisher: 'pub2', partners: [] },
    ]);
    expect(parse('')).toEqual([]);
  });

  it('refuses what a browser never sends as an Origin, bad partner ids, and an origin listed twice', () => {
    for (const v of [
      'https://news.example',
      'https://news.example/=pubnews',
      'https://News.example=pubnews',
      '*=pubnews',
      'null=pubnews',
      'news.example=pubnews',
      'https://news.example=',
      'https://news.example=pub news',
      'https://news.example=pubnews+',
      'https://news.example=pubnews,https://news.example=other',
    ])
      expect(() => parse(v), v).toThrow(ConfigError);
  });
});
