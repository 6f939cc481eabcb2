// POST /openrtb2/enrich through the real server: real OpenRTB 2.6 requests
// (test/fixtures/openrtb) in, the same requests out with the caller's
// licensed segments in user.data; privacy signals, tmax and bad input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { stopReport, CLEAN_STOP, ROOT, type Segd } from './helpers/server.js';
import { startActivation, bearer, KEYS, DMP_DOMAIN, GRAPH_IDS } from './helpers/activation.js';
import { metric } from './helpers/metrics.js';

type Obj = Record<string, any>;
// The fixtures' tmax (120–300 ms) would let a loaded test machine's scheduling turn an
// answer into a 204 "deadline": the tmax tests set their own.
const fixture = (name: string): Obj => ({
  ...(JSON.parse(readFileSync(join(ROOT, 'test/fixtures/openrtb', `${name}.json`), 'utf8')) as Obj),
  tmax: 60_000,
});

// What each partner may see of rtb-user-1, as OpenRTB Data objects (ids ascending → group order).
const data = (id: string, segtax: number, segs: number[]) => ({
  id,
  name: DMP_DOMAIN,
  segment: segs.map((s) => ({ id: String(s) })),
  ext: { segtax },
});
const EXPECTED: Record<string, Obj[]> = {
  dsp1: [data('segd', 4, [1001, 1002]), data('segd', 600, [2001])],
  // 4002 is licensed to dsp2 but has no taxonomy entry (no segtax): left out of user.data.
  dsp2: [data('segd', 4, [1002]), data('segd', 600, [2001]), data('acme-data', 4, [3005])],
  all: [data('segd', 4, [1001, 1002]), data('segd', 600, [2001]), data('acme-data', 4, [3005])],
};

/** The request as it must come back: untouched but for our Data objects appended to user.data. */
function enriched(req: Obj, ours: Obj[]): Obj {
  const out = structuredClone(req);
  out.user ??= {};
  out.user.data = [...(out.user.data ?? []), ...ours];
  return out;
}

const INGEST_KEY = 'ingest-key-0123456789';
let segd: Segd;
beforeAll(async () => {
  // A generous time budget: outcomes must not depend on how busy the machine is
  // (the tmax tests set their own, smaller, budget per request).
  segd = await startActivation({
    SEGD_MAX_BODY_BYTES: '65536',
    SEGD_ENRICH_BUDGET_MS: '10000',
    SEGD_INGEST_KEYS: INGEST_KEY,
  });
});
afterAll(async () => {
  expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

/** Enrichment requests answered with `outcome`, as /metrics counts them. */
const outcomes = (outcome: string) => metric(segd.url, 'segd_enrich_total', { outcome });

const enrich = (body: string | Obj, key: string | null = KEYS.dsp1, query = '') =>
  fetch(`${segd.url}/openrtb2/enrich${query}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(key ? bearer(key) : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('enrichment of real OpenRTB 2.6 requests', () => {
  for (const name of ['banner', 'video', 'native', 'app-ifa', 'eids']) {
    it(`${name}: same request back, user.data appended, every other field kept`, async () => {
      const req = fixture(name);
      const r = await enrich(req);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/json');
      expect(await r.json()).toEqual(enriched(req, EXPECTED.dsp1!));
    });
  }

  it("keeps unknown fields, ext and the publisher's own user.data in place", async () => {
    const req = fixture('banner');
    const out = (await (await enrich(req)).json()) as Obj;
    expect(out.x_vendor_unknown_top_level).toEqual({ kept: [1, 2, 3] });
    expect(out.ext).toEqual(req.ext);
    expect(out.user.ext).toEqual(req.user.ext);
    expect(out.user.data[0]).toEqual(req.user.data[0]);
    expect(Object.keys(out)).toEqual(Object.keys(req));
  });

  it("answers with the request's own bytes, segd's Data objects spliced into user.data", async () => {
    // The fixture as written (indented): white space and spellings come back as sent.
    // Its tmax lifted as fixture() lifts it.
    const raw = readFileSync(join(ROOT, 'test/fixtures/openrtb/banner.json'), 'utf8').replace(
      '"tmax": 120,',
      '"tmax": 60000,',
    );
    expect(raw).toContain('"tmax": 60000,');
    const theirs = '"segment": [{ "id": "sports" }] }]';
    expect(raw).toContain(theirs);
    const r = await enrich(raw);
    const ours = JSON.stringify(EXPECTED.dsp1).slice(1, -1);
    expect(await r.text()).toBe(raw.replace(theirs, `${theirs.slice(0, -1)},${ours}]`));
    // Duplicate keys: the last counts, as JSON.parse has it; the earlier one is left as sent.
    const dup = '{"id":"d","imp":[],"user":{"id":"nobody-at-all"},"regs":{"gdpr":0},"user":{"id":"rtb-user-1"}}';
    const d = await enrich(dup);
    expect(await d.text()).toBe(dup.replace('"rtb-user-1"}', `"rtb-user-1","data":[${ours}]}`));
  });

  it('gives each partner only its licensed segments, grouped per provider and segtax', async () => {
    const req = fixture('video');
    for (const p of ['dsp1', 'dsp2', 'all'] as const) {
      const r = await enrich(req, KEYS[p], '?mode=data');
      expect(r.status, p).toBe(200);
      expect(await r.json(), p).toEqual(EXPECTED[p]);
    }
  });

  it('does not add our data twice to a request that already went through', async () => {
    const once = (await (await enrich(fixture('native'))).json()) as Obj;
    const twice = (await (await enrich(once)).json()) as Obj;
    expect(twice).toEqual(once);
  });

  it("resolves the user through the ID graph: buyeruid as the caller's uid, eids, device.ifa", async () => {
    const graphUser = [data('segd', 4, [1001]), data('segd', 600, [2001])];
    const base = fixture('video');
    const asDsp1 = [
      { ...base, user: { buyeruid: GRAPH_IDS.dsp1Uid } },
      {
        ...base,
        user: {
          eids: [
            { source: 'liveramp.com', uids: [{ id: 'unknown' }] },
            { source: 'id5-sync.com', uids: [{ id: GRAPH_IDS.id5, atype: 1 }] },
          ],
        },
      },
      { ...fixture('app-ifa'), user: undefined, device: { ...fixture('app-ifa').device, ifa: GRAPH_IDS.ifa } },
      // buyeruid wins over user.id: it is the caller's own sync with us.
      { ...base, user: { id: 'rtb-user-1', buyeruid: GRAPH_IDS.dsp1Uid } },
    ];
    for (const req of asDsp1) {
      const r = await enrich(req, KEYS.dsp1, '?mode=data');
      expect(r.status, JSON.stringify(req.user ?? req.device)).toBe(200);
      expect(await r.json()).toEqual(graphUser);
    }
    // dsp1's uid means nothing when dsp2 sends it as its own buyeruid.
    const other = await enrich({ ...base, user: { buyeruid: GRAPH_IDS.dsp1Uid } }, KEYS.dsp2);
    expect(other.status).toBe(204);
    expect(other.headers.get('x-segd-empty')).toBe('empty');
  });

  it('an id linked after start is resolved by the first enrichment after its ack (the filter in front of the ID graph learns it)', async () => {
    expect(await (await fetch(`${segd.url}/readyz`)).json()).toEqual({ status: 'ready', filter: 'ready' });
    const base = fixture('video');
    const req = { ...base, user: { buyeruid: 'dsp1-linked-late' } };
    const before = await enrich(req, KEYS.dsp1, '?mode=data');
    expect([before.status, before.headers.get('x-segd-empty')]).toEqual([204, 'empty']);
    const push = await fetch(`${segd.url}/v1/ingest`, {
      method: 'POST',
      headers: { ...bearer(INGEST_KEY), 'Content-Type': 'application/x-ndjson' },
      body: JSON.stringify({ op: 'match', partner: 'dsp1', puid: 'dsp1-linked-late', uid: 'rtb-user-1' }),
    });
    expect(await push.json()).toMatchObject({ applied: 1, rejected: 0 });
    const after = await enrich(req, KEYS.dsp1, '?mode=data');
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual(EXPECTED.dsp1);
  });

  it('answers 204 "empty" alike for an unknown user and for a user with nothing licensed, and counts it', async () => {
    const counted = await outcomes('empty');
    const unknown = await enrich({ ...fixture('video'), user: { id: 'nobody-at-all' } }, KEYS.dsp2);
    const unlicensed = await enrich({ ...fixture('video'), user: { id: 'only-dsp1' } }, KEYS.dsp2);
    for (const r of [unknown, unlicensed]) {
      expect(r.status).toBe(204);
      expect(r.headers.get('x-segd-empty')).toBe('empty');
      expect(await r.text()).toBe('');
    }
    const noUser = await enrich({ id: 'x', imp: [{ id: '1' }], regs: { gdpr: 0 } });
    expect(noUser.status).toBe(204);
    expect(noUser.headers.get('x-segd-empty')).toBe('empty');
    expect(await outcomes('empty')).toBe(counted + 3);
  });
});

describe('privacy signals', () => {
  const table: Array<[string, number, string | null]> = [
    ['gdpr-consent', 200, null],
    ['gdpr-25-ext', 200, null],
    ['gdpr-no-purpose4', 204, 'gdpr'],
    ['gdpr-no-vendor', 204, 'gdpr'],
    ['gdpr-no-string', 204, 'gdpr'],
    ['us-privacy-ok', 200, null],
    ['us-privacy-optout', 204, 'us_privacy'],
    ['gpp-usnat-ok', 200, null],
    ['gpp-usnat-optout', 204, 'gpp'],
    ['gpp-tcf-ok', 200, null],
    ['gpp-tcf-no-purpose4', 204, 'gpp'],
    ['coppa', 204, 'coppa'],
  ];
  for (const [name, status, reason] of table) {
    it(`${name} → ${status}${reason ? ` (${reason})` : ''}`, async () => {
      const req = fixture(name);
      const counted = await outcomes(reason ?? 'enriched');
      const r = await enrich(req);
      expect(r.status).toBe(status);
      if (status === 200) expect(await r.json()).toEqual(enriched(req, EXPECTED.dsp1!));
      else expect(r.headers.get('x-segd-empty')).toBe(reason);
      // Counted in /metrics by its outcome.
      expect(await outcomes(reason ?? 'enriched')).toBe(counted + 1);
    });
  }

  it('treats a consent string that does not decode as no consent', async () => {
    const r = await enrich({ ...fixture('gdpr-consent'), user: { id: 'rtb-user-1', consent: 'not-a-tc-string' } });
    expect(r.headers.get('x-segd-empty')).toBe('gdpr');
    const gpp = await enrich({ ...fixture('gpp-usnat-ok'), regs: { gpp: 'DBABLA~!!!!', gpp_sid: [7] } });
    expect(gpp.headers.get('x-segd-empty')).toBe('gpp');
  });
});

describe('tmax', () => {
  it('answers 204 "deadline" when the request\'s tmax has passed before the body is in', async () => {
    const body = JSON.stringify({ ...fixture('video'), tmax: 20 });
    const half = Math.floor(body.length / 2);
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(segd.port, '127.0.0.1', () => {
        s.write(
          `POST /openrtb2/enrich HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.dsp1}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, half)}`,
        );
        setTimeout(() => s.write(body.slice(half)), 80);
      });
      let got = '';
      s.on('data', (c) => {
        got += c.toString();
        if (got.includes('\r\n\r\n')) {
          s.end();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 204 /);
    expect(answer.toLowerCase()).toContain('x-segd-empty: deadline');
    const text = await (await fetch(`${segd.url}/metrics`)).text();
    expect(text).toMatch(/^segd_shed_total\{route="enrich",reason="deadline"\} [1-9]/m);
  });

  it('enriches the same request when it arrives in time', async () => {
    const req = { ...fixture('video'), tmax: 10_000 };
    expect((await enrich(req)).status).toBe(200);
  });
});

describe('auth and bad input', () => {
  it('401 without a key or with a wrong one, the same whether or not the user exists', async () => {
    const bodies: string[] = [];
    for (const uid of ['rtb-user-1', 'nobody-at-all']) {
      for (const key of [null, 'wrong-key-wrong-key-wrong-key']) {
        const r = await enrich({ ...fixture('video'), user: { id: uid } }, key);
        expect(r.status).toBe(401);
        bodies.push(await r.text());
      }
    }
    expect(new Set(bodies).size).toBe(1);
    expect(JSON.parse(bodies[0]!).error.code).toBe('UNAUTHORIZED');
  });

  const bad: Array<[string, string, number, string]> = [
    ['not JSON', '{"id":"x","imp":[', 400, 'BAD_JSON'],
    ['truncated', JSON.stringify(fixture('banner')).slice(0, 700), 400, 'BAD_JSON'],
    ['an array', '[1,2]', 400, 'BAD_BID_REQUEST'],
    ['no imp', '{"id":"x"}', 400, 'BAD_BID_REQUEST'],
    ['id not a string', '{"id":7,"imp":[]}', 400, 'BAD_BID_REQUEST'],
    ['user a string', '{"id":"x","imp":[],"user":"rtb-user-1"}', 400, 'BAD_BID_REQUEST'],
    ['user.data not an array', '{"id":"x","imp":[],"user":{"id":"rtb-user-1","data":{}}}', 400, 'BAD_BID_REQUEST'],
    ['oversized', JSON.stringify({ id: 'x', imp: [], pad: 'x'.repeat(70_000) }), 413, 'BODY_TOO_LARGE'],
  ];
  for (const [name, body, status, code] of bad) {
    it(`${name} → ${status} ${code}`, async () => {
      const r = await enrich(body);
      expect(r.status).toBe(status);
      expect(((await r.json()) as Obj).error.code).toBe(code);
    });
  }

  it('names the fault in malformed JSON as JSON.parse does', async () => {
    for (const body of ['', '{"id":"x","imp":[]', '{"id":"x",}', '{"id":"x\u0001"}', '[1,2] 3', '{"a":01}']) {
      let message = '';
      try {
        JSON.parse(body);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, body).not.toBe('');
      const r = await enrich(body);
      expect(r.status, body).toBe(400);
      expect(((await r.json()) as Obj).error, body).toEqual({
        code: 'BAD_JSON',
        message: `the body is not valid JSON: ${message}`,
      });
    }
  });

  it('refuses a body that is not UTF-8, inside a string or outside one, and reads one that is', async () => {
    const send = (bytes: Buffer) =>
      fetch(`${segd.url}/openrtb2/enrich`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...bearer(KEYS.dsp1) },
        body: bytes,
      });
    const json = (s: string) => Buffer.from(s, 'latin1');
    for (const bytes of [
      json('{"id":"x\xff","imp":[],"user":{"id":"rtb-user-1"}}'), // a lone byte ≥ 0x80 in a string the scan reads
      json('{"id":"x","imp":[{"t":"\xc3\x28"}],"user":{"id":"rtb-user-1"}}'), // a bad sequence in one it skips
      json('{"id":"x","imp":[],\xe9"user":{"id":"rtb-user-1"}}'), // outside any string: still not UTF-8 first
    ]) {
      const r = await send(bytes);
      expect(r.status).toBe(400);
      expect(((await r.json()) as Obj).error).toEqual({
        code: 'BAD_JSON',
        message: 'the body is not valid JSON: not UTF-8',
      });
    }
    const r = await send(Buffer.from(JSON.stringify({ ...fixture('video'), site: { name: 'Café « été » 😀' } })));
    expect(r.status).toBe(200);
    expect(((await r.json()) as Obj).site.name).toBe('Café « été » 😀');
  });

  it('refuses an unknown mode and a non-JSON content type', async () => {
    expect(((await (await enrich(fixture('video'), KEYS.dsp1, '?mode=xml')).json()) as Obj).error.code).toBe(
      'BAD_MODE',
    );
    const r = await fetch(`${segd.url}/openrtb2/enrich`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain', ...bearer(KEYS.dsp1) },
      body: '{}',
    });
    expect(r.status).toBe(415);
  });

  it('hostile JSON: __proto__ is data, not a prototype; deep nesting is refused or kept, never fatal', async () => {
    const proto = '{"id":"p","imp":[],"regs":{"gdpr":0},"user":{"id":"rtb-user-1"},"ext":{"__proto__":{"polluted":1}}}';
    const r = await enrich(proto);
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).toContain('"__proto__":{"polluted":1}');
    const deep = `{"id":"d","imp":[],"regs":{"gdpr":0},"user":{"id":"rtb-user-1"},"ext":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
    const d = await enrich(deep);
    expect([200, 400]).toContain(d.status);
    if (d.status === 400) expect(((await d.json()) as Obj).error.code).toBe('BAD_BID_REQUEST');
    // Still serving.
    expect((await enrich(fixture('native'))).status).toBe(200);
  });
});
