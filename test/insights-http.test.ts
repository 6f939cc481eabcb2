// The /v1/insights routes on the real server: exact sizes, overlap, affinity
// and reach over a seeded data set whose answers are known; licences (a
// partner never sees a count for a segment it is not licensed for); a change
// (a deletion) visible in the next answer; the index saved at shutdown and
// loaded, not rebuilt, by the next start; and hostile input refused with 4xx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, tempDir, type Segd } from './helpers/server.js';
import { ADMIN_KEY, KEYS, PARTNERS, SEGMENTS, bearer } from './helpers/activation.js';
import { insightsAudience } from './helpers/insights-audience.js';
import { ERRORS } from '../src/errors.js';

const { count, inAll, seed } = insightsAudience(300, 10);

const dir = tempDir('segd-insights-');
let segd: Segd;

async function start(): Promise<Segd> {
  return startSegd({
    dataDir: join(dir, 'data'),
    keepData: true,
    env: {
      SEGD_SEED: join(dir, 'seed.ndjson'),
      SEGD_CONFIG: join(dir, 'segd.json'),
      SEGD_LOOKUP_AUTH: 'required',
      SEGD_INSIGHTS: 'on',
    },
  });
}

beforeAll(async () => {
  writeFileSync(join(dir, 'seed.ndjson'), seed());
  writeFileSync(
    join(dir, 'segd.json'),
    JSON.stringify({ adminKeys: [ADMIN_KEY], partners: PARTNERS, segments: SEGMENTS }),
  );
  segd = await start();
});
afterAll(async () => {
  await segd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const get = (path: string, key: string | null = ADMIN_KEY) =>
  fetch(`${segd.url}${path}`, { headers: key === null ? {} : bearer(key) });
const reach = (body: string, key = ADMIN_KEY, type = 'application/json') =>
  fetch(`${segd.url}/v1/insights/reach`, {
    method: 'POST',
    headers: { ...bearer(key), 'Content-Type': type },
    body,
  });
async function json(r: Response | Promise<Response>, status = 200): Promise<Record<string, unknown>> {
  const res = await r;
  const body = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(body)).toBe(status);
  return body;
}
const code = async (r: Promise<Response>) => ((await json(r, (await r).status)).error as { code: string }).code;

describe('insights routes', () => {
  it('answers sizes, overlap, affinity and reach exactly', async () => {
    const size = await json(get('/v1/insights/segments/1001'));
    expect(size).toMatchObject({ segment: 1001, size: inAll(1001) });
    expect(typeof size.updatedAt).toBe('string');
    expect(await json(get('/v1/insights/segments/777'))).toEqual({ segment: 777, size: 0, updatedAt: null });

    const o = await json(get('/v1/insights/overlap?segments=1001,1002,3005'));
    const ids = [1001, 1002, 3005];
    expect(o.segments).toEqual(ids);
    expect(o.sizes).toEqual(ids.map((id) => inAll(id)));
    expect(o.matrix).toEqual(ids.map((a) => ids.map((b) => inAll(a, b))));
    const j = (a: number, b: number) => Math.round((inAll(a, b) / (inAll(a) + inAll(b) - inAll(a, b))) * 1e6) / 1e6;
    expect(o.jaccard).toEqual(ids.map((a) => ids.map((b) => j(a, b))));

    const base = count((s) => s.length > 0);
    const a = await json(get('/v1/insights/segments/1002/affinity?min=1&limit=10'));
    expect(a).toMatchObject({ segment: 1002, size: inAll(1002), base });
    const want = [1001, 2001, 3005]
      .map((b) => ({
        segment: b,
        size: inAll(b),
        overlap: inAll(1002, b),
        share: Math.round((inAll(1002, b) / inAll(1002)) * 1e6) / 1e6,
        index: Math.round((inAll(1002, b) / inAll(1002) / (inAll(b) / base)) * 100 * 1e6) / 1e6,
      }))
      .sort((x, y) => y.index - x.index);
    expect(a.results).toEqual(want);
    // The default min (100) leaves out every overlap this small data set has.
    expect((await json(get('/v1/insights/segments/1002/affinity'))).results).toEqual([]);

    const r = await json(reach(JSON.stringify({ all: [1001], any: [1002, 2001], none: [3005] })));
    expect(r).toEqual({
      users: count((s) => s.includes(1001) && (s.includes(1002) || s.includes(2001)) && !s.includes(3005)),
    });
    expect(await json(reach('{}'))).toEqual({ users: base });
    expect(await json(reach(JSON.stringify({ none: [1001] })))).toEqual({ users: base - inAll(1001) });
  });

  it('shows a partner only its licensed segments', async () => {
    // dsp1: 1001, 1002 and 2001 (open to all); not 3005.
    expect((await json(get('/v1/insights/segments/1001', KEYS.dsp1))).size).toBe(inAll(1001));
    expect(await code(get('/v1/insights/segments/3005', KEYS.dsp1))).toBe('FORBIDDEN_SEGMENT');
    expect(await code(get('/v1/insights/overlap?segments=1001,3005', KEYS.dsp1))).toBe('FORBIDDEN_SEGMENT');
    expect(await code(reach(JSON.stringify({ none: [3005] }), KEYS.dsp1))).toBe('FORBIDDEN_SEGMENT');
    expect(await code(get('/v1/insights/segments/3005/affinity', KEYS.dsp1))).toBe('FORBIDDEN_SEGMENT');
    const a = await json(get('/v1/insights/segments/1002/affinity?min=1', KEYS.dsp1));
    expect((a.results as Array<{ segment: number }>).map((r) => r.segment).sort()).toEqual([1001, 2001]);
    expect(await code(get('/v1/insights/segments/1001', null))).toBe('UNAUTHORIZED');
    expect(await code(get('/v1/insights/segments/1001', 'not-a-key-0123456789'))).toBe('UNAUTHORIZED');
  });

  it('counts a change in the next answer', async () => {
    const before = (await json(get('/v1/insights/segments/3005'))).size as number;
    const del = await fetch(`${segd.url}/v1/users?uid=u0`, { method: 'DELETE', headers: bearer(ADMIN_KEY) });
    expect(del.status).toBe(200);
    expect((await json(get('/v1/insights/segments/3005'))).size).toBe(before - 1);
    expect((await json(get('/v1/insights/overlap?segments=1001,1002'))).matrix).toEqual([
      [inAll(1001) - 1, inAll(1001, 1002) - 1],
      [inAll(1001, 1002) - 1, inAll(1002) - 1],
    ]);
  });

  it('refuses hostile input with 4xx', async () => {
    const bad: Array<[Promise<Response>, string]> = [
      [get('/v1/insights/segments/abc'), 'BAD_SEGMENT'],
      [get('/v1/insights/segments/-1'), 'BAD_SEGMENT'],
      [get('/v1/insights/segments/4294967296'), 'BAD_SEGMENT'],
      [get('/v1/insights/segments/00000000001'), 'BAD_SEGMENT'],
      [get('/v1/insights/overlap'), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/overlap?segments=1001'), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/overlap?segments=1001,1001'), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/overlap?segments=1001,,1002'), 'BAD_SEGMENT'],
      [get('/v1/insights/overlap?segments=1001,x'), 'BAD_SEGMENT'],
      [get(`/v1/insights/overlap?segments=${Array.from({ length: 51 }, (_, i) => i).join(',')}`), 'BAD_INSIGHTS_QUERY'],
      [get(`/v1/insights/overlap?segments=${'1,'.repeat(5000)}1`), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/segments/1001/affinity?limit=0'), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/segments/1001/affinity?limit=1001'), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/segments/1001/affinity?limit=1e3'), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/segments/1001/affinity?min=0'), 'BAD_INSIGHTS_QUERY'],
      [get('/v1/insights/segments/1001/affinity?min=-5'), 'BAD_INSIGHTS_QUERY'],
      [reach('{"all":[1001'), 'BAD_JSON'],
      [reach('[1001]'), 'BAD_INSIGHTS_QUERY'],
      [reach('null'), 'BAD_INSIGHTS_QUERY'],
      [reach('{"all":1001}'), 'BAD_INSIGHTS_QUERY'],
      [reach('{"all":["1001"]}'), 'BAD_INSIGHTS_QUERY'],
      [reach('{"all":[1.5]}'), 'BAD_INSIGHTS_QUERY'],
      [reach('{"all":[4294967296]}'), 'BAD_INSIGHTS_QUERY'],
      [reach('{"some":[1]}'), 'BAD_INSIGHTS_QUERY'],
      [reach('{"__proto__":[1]}'), 'BAD_INSIGHTS_QUERY'],
      [reach(JSON.stringify({ any: Array.from({ length: 101 }, (_, i) => i) })), 'BAD_INSIGHTS_QUERY'],
      [reach('{"all":' + '['.repeat(100) + ']'.repeat(100) + '}'), 'BAD_JSON'],
      [reach(JSON.stringify({ all: [1001], pad: 'x'.repeat(20_000) })), 'BODY_TOO_LARGE'],
      [reach('{}', ADMIN_KEY, 'text/plain'), 'UNSUPPORTED_MEDIA_TYPE'],
    ];
    for (const [r, want] of bad) {
      expect((await r).status).toBe(ERRORS[want as keyof typeof ERRORS].status);
      expect(await code(r)).toBe(want);
    }
    // Still serving after all of it.
    expect((await json(get('/v1/insights/segments/1001'))).segment).toBe(1001);
  });

  it('saves the index at shutdown and loads it at the next start', async () => {
    const before = await json(get('/v1/insights/overlap?segments=1001,1002,2001,3005'));
    expect(await segd.stop()).toBe(0);
    segd = await start();
    const line = await segd.waitForLog((l) => /insights index (loaded|rebuilt)/.test(String(l.msg)));
    expect(line.msg).toBe('insights index loaded');
    expect(await json(get('/v1/insights/overlap?segments=1001,1002,2001,3005'))).toEqual(before);
  });
});
