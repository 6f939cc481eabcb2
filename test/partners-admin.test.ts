// The partners registry and the taxonomy: seeded from the config file,
// changed through the admin API, visible on every worker at once, kept across
// restarts; API keys only ever stored as digests; bad records refused with
// every problem named.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, runSegd, tempDir, stopReport, CLEAN_STOP, type Segd } from './helpers/server.js';

const ADMIN = 'admin-key-0123456789abcdef';
const DSP_KEY = 'dsp-one-secret-key-0123456789';
const auth = { Authorization: `Bearer ${ADMIN}` };
const json = { ...auth, 'Content-Type': 'application/json' };

const config = {
  adminKeys: [ADMIN],
  partners: [
    {
      id: 'dsp1',
      name: 'DSP One',
      keys: [DSP_KEY],
      segments: [1001, 1002],
      sync: {
        url: 'https://sync.dsp1.example/setuid?u=${UID}&gdpr=${GDPR}&c=${GDPR_CONSENT}',
        type: 'redirect',
        callbackHosts: ['sync.dsp1.example'],
      },
    },
  ],
  segments: [
    {
      id: 1001,
      name: 'Auto intenders',
      provider: 'segd',
      segtax: 4,
      dataType: 'first',
      ttl: 2592000,
      cpm: 0.5,
      partners: ['dsp1'],
    },
    { id: 1002, name: 'Sports fans', segtax: 600 },
  ],
};

let segd: Segd;
let dataDir: string;
let configPath: string;

const call = (path: string, init: RequestInit = {}) => fetch(`${segd.url}${path}`, init);

beforeAll(async () => {
  dataDir = tempDir();
  configPath = join(tempDir('segd-config-'), 'segd.json');
  writeFileSync(configPath, JSON.stringify(config));
  segd = await startSegd({
    dataDir,
    keepData: true,
    env: { SEGD_CONFIG: configPath, SEGD_WORKERS: '2', SEGD_MAX_BODY_BYTES: '4096' },
  });
});
afterAll(async () => {
  await segd?.stop();
});

describe('registry', () => {
  it('is seeded from the config file, with keys kept only as digests', async () => {
    const r = await call('/v1/admin/partners', { headers: auth });
    expect(r.status).toBe(200);
    const { partners } = (await r.json()) as { partners: Array<Record<string, unknown>> };
    expect(partners).toHaveLength(1);
    expect(partners[0]).toMatchObject({ id: 'dsp1', name: 'DSP One', segments: [1001, 1002], disabled: false });
    expect(JSON.stringify(partners)).not.toContain(DSP_KEY);
    const seg = (await (await call('/v1/admin/segments/1002', { headers: auth })).json()) as Record<string, unknown>;
    expect(seg).toEqual({
      id: 1002,
      name: 'Sports fans',
      provider: 'segd',
      segtax: 600,
      dataType: 'first',
      ttl: null,
      cpm: null,
      partners: [],
      members: 0,
    });
    // Not in any data file either.
    for (const f of readdirSync(dataDir)) {
      if (f.endsWith('.mdb')) expect(readFileSync(join(dataDir, f)).includes(Buffer.from(DSP_KEY))).toBe(false);
    }
  });

  it('refuses callers without the admin key', async () => {
    const tries: Array<Record<string, string>> = [
      {},
      { Authorization: 'Bearer wrong-key-wrong-key-wrong' },
      { Authorization: `Bearer ${DSP_KEY}` },
    ];
    for (const headers of tries) {
      const r = await call('/v1/admin/partners', { headers });
      expect(r.status).toBe(401);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
    const r = await call('/v1/admin/partners/x', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(r.status).toBe(401);
  });

  it('creates, changes and deletes partners and segments; every worker sees the change at once', async () => {
    const created = await call('/v1/admin/partners/ssp2', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ name: 'SSP Two', segments: '*' }),
    });
    expect(created.status).toBe(201);
    // Two workers, fresh connections: whichever answers has reloaded.
    for (let i = 0; i < 8; i++) {
      const r = await call('/v1/admin/partners/ssp2', { headers: { ...auth, Connection: 'close' } });
      expect(((await r.json()) as { name: string }).name).toBe('SSP Two');
    }
    const changed = await call('/v1/admin/partners/ssp2', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ name: 'SSP 2', disabled: true }),
    });
    expect(changed.status).toBe(200);
    expect(((await changed.json()) as { disabled: boolean }).disabled).toBe(true);
    expect((await call('/v1/admin/partners/ssp2', { method: 'DELETE', headers: auth })).status).toBe(204);
    for (let i = 0; i < 8; i++) {
      const r = await call('/v1/admin/partners/ssp2', { headers: { ...auth, Connection: 'close' } });
      expect(r.status).toBe(404);
    }
    expect((await call('/v1/admin/partners/ssp2', { method: 'DELETE', headers: auth })).status).toBe(404);

    const ids = async () =>
      (
        (await (await call('/v1/admin/segments', { headers: auth })).json()) as { segments: Array<{ id: number }> }
      ).segments
        .map((s) => s.id)
        .sort((a, b) => a - b);
    const before = await ids();
    const seg = await call('/v1/admin/segments/77', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ name: 'Travel', segtax: 4, dataType: 'third', cpm: 1.25, partners: '*' }),
    });
    expect(seg.status).toBe(201);
    expect(await ids()).toEqual([...before, 77].sort((a, b) => a - b));
    expect((await call('/v1/admin/segments/77', { method: 'DELETE', headers: auth })).status).toBe(204);
  });

  it('a key rotated or a licence narrowed takes effect on the next lookup on every worker (no caller answer outlives a change)', async () => {
    const OLD = 'cache-old-key-0123456789abcdef';
    const NEW = 'cache-new-key-0123456789abcdef';
    const put = (body: object) =>
      call('/v1/admin/partners/cache1', { method: 'PUT', headers: json, body: JSON.stringify(body) });
    const lookups = async (key: string) => {
      const out: number[] = [];
      // Fresh connections: both workers answer, each with its own remembered callers.
      for (let i = 0; i < 8; i++) {
        const r = await call('/v1/segments?uid=nobody', {
          headers: { Authorization: `Bearer ${key}`, Connection: 'close' },
        });
        await r.arrayBuffer();
        out.push(r.status);
      }
      return [...new Set(out)];
    };
    expect((await put({ name: 'Cache', keys: [OLD], segments: '*' })).status).toBe(201);
    expect(await lookups(OLD)).toEqual([200]);
    expect((await put({ name: 'Cache', keys: [NEW], segments: '*' })).status).toBe(200);
    expect(await lookups(OLD)).toEqual([401]);
    expect(await lookups(NEW)).toEqual([200]);
    expect((await put({ name: 'Cache', keys: [NEW], segments: '*', disabled: true })).status).toBe(200);
    expect(await lookups(NEW)).toEqual([401]);
    expect((await call('/v1/admin/partners/cache1', { method: 'DELETE', headers: auth })).status).toBe(204);
    expect(await lookups(NEW)).toEqual([401]);
  });

  const BAD: Array<[string, string, string, unknown, string, RegExp]> = [
    [
      'macro in the host',
      'partners',
      'p1',
      { sync: { url: 'https://${UID}.evil.example/x' } },
      'BAD_PARTNER',
      /macros are not allowed in the host/,
    ],
    [
      'unknown macro',
      'partners',
      'p1',
      { sync: { url: 'https://a.example/x?u=${USER}' } },
      'BAD_PARTNER',
      /unknown macro \$\{USER\}/,
    ],
    [
      'javascript: template',
      'partners',
      'p1',
      { sync: { url: 'javascript:alert(1)//${UID}' } },
      'BAD_PARTNER',
      /must be http\(s\)/,
    ],
    ['short key', 'partners', 'p1', { keys: ['short'] }, 'BAD_PARTNER', /keys must be/],
    ['id that disagrees with the path', 'partners', 'p1', { id: 'p2' }, 'BAD_PARTNER', /does not match/],
    ['unknown field', 'partners', 'p1', { licence: 'all' }, 'BAD_PARTNER', /unknown field "licence"/],
    ['segment without segtax', 'segments', '5', { name: 'x' }, 'BAD_SEGMENT_DEF', /segtax/],
    ['negative cpm', 'segments', '5', { name: 'x', segtax: 4, cpm: -1 }, 'BAD_SEGMENT_DEF', /cpm/],
    ['record that is an array', 'segments', '5', [1, 2], 'BAD_SEGMENT_DEF', /JSON object/],
  ];
  it.each(BAD)('refuses a %s, naming the problem', async (_name, kind, id, body, code, why) => {
    const r = await call(`/v1/admin/${kind}/${id}`, { method: 'PUT', headers: json, body: JSON.stringify(body) });
    expect(r.status).toBe(400);
    const e = ((await r.json()) as { error: { code: string; problems: string[] } }).error;
    expect(e.code).toBe(code);
    expect(e.problems.join('; ')).toMatch(why);
    expect((await call(`/v1/admin/${kind}/${id}`, { headers: auth })).status).toBe(404);
  });

  it('answers malformed requests clearly', async () => {
    const cases: Array<[string, RequestInit, number, string]> = [
      ['/v1/admin/partners/Bad%20Id', { headers: auth }, 400, 'BAD_PARTNER_ID'],
      ['/v1/admin/segments/99999999999', { headers: auth }, 400, 'BAD_SEGMENT'],
      ['/v1/admin/partners/p1', { method: 'PUT', headers: json, body: '{"name":' }, 400, 'BAD_JSON'],
      [
        '/v1/admin/partners/p1',
        { method: 'PUT', headers: { ...auth, 'Content-Type': 'text/plain' }, body: '{}' },
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        '/v1/admin/partners/p1',
        { method: 'PUT', headers: json, body: JSON.stringify({ name: 'x'.repeat(5000) }) },
        413,
        'BODY_TOO_LARGE',
      ],
      ['/v1/admin/partners/p1', { method: 'POST', headers: json, body: '{}' }, 405, 'METHOD_NOT_ALLOWED'],
    ];
    for (const [path, init, status, code] of cases) {
      const r = await call(path, init);
      expect([path, r.status]).toEqual([path, status]);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect((await call('/v1/admin/partners/dsp1', { headers: auth })).status).toBe(200);
  });

  it('keeps admin changes across a restart, and a bad config file stops start-up with every problem named', async () => {
    await call('/v1/admin/segments/88', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ name: 'Kept', segtax: 4 }),
    });
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
    segd = await startSegd({
      dataDir,
      keepData: true,
      env: { SEGD_CONFIG: configPath, SEGD_WORKERS: '2', SEGD_MAX_BODY_BYTES: '4096' },
    });
    expect((await call('/v1/admin/segments/88', { headers: auth })).status).toBe(200);
    expect((await call('/v1/admin/partners/dsp1', { headers: auth })).status).toBe(200);

    const badPath = join(tempDir('segd-config-'), 'bad.json');
    writeFileSync(
      badPath,
      JSON.stringify({ partners: [{ id: 'ok1' }, { id: 'BAD' }, { id: 'ok1' }], segments: [{ id: 1, name: 'n' }] }),
    );
    const bad = await runSegd(['serve'], { SEGD_CONFIG: badPath, SEGD_DATA_DIR: tempDir(), SEGD_PORT: '0' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('partners[1]: id must be');
    expect(bad.stderr).toContain('partners[2]: id "ok1" is listed twice');
    expect(bad.stderr).toContain('segments[0]: segtax must be');
  });
});
