// Auth and licensing on the lookup paths: every answer holds only the
// caller's licensed segments; 401/403 never say whether a user exists; keys
// rotate and licences change without a restart; anonymous lookups only where
// SEGD_LOOKUP_AUTH=optional.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import fc from 'fast-check';
import { startSegd, stopReport, CLEAN_STOP, tempDir, feedLine, type Segd } from './helpers/server.js';
import { startActivation, bearer, KEYS, ADMIN_KEY, USERS, GRAPH_IDS } from './helpers/activation.js';
import { openStore } from '../src/store/env.js';
import { Registry } from '../src/partners/registry.js';
import { Licences } from '../src/lookup/licences.js';
import type { Partner, SegmentDef } from '../src/partners/types.js';

type Obj = Record<string, any>;
const segmentsAs = async (segd: Segd, key: string | null, q: string) => {
  const r = await fetch(`${segd.url}/v1/segments?${q}`, { headers: key ? bearer(key) : {} });
  return { status: r.status, body: await r.text() };
};

describe('licensing between partners with overlapping users', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await startActivation({ SEGD_WORKERS: '2' });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  const licensed: Record<string, number[]> = {
    dsp1: [1001, 1002, 2001],
    dsp2: [1002, 2001, 3005, 4002],
    all: [1001, 1002, 2001, 3005, 4002],
  };

  it('GET answers only licensed segments, in every format', async () => {
    for (const [p, want] of Object.entries(licensed)) {
      const key = KEYS[p as keyof typeof KEYS];
      expect(JSON.parse((await segmentsAs(segd, key, 'uid=rtb-user-1')).body).segments, p).toEqual(want);
      expect((await segmentsAs(segd, key, 'uid=rtb-user-1&format=kv')).body, p).toBe(`seg=${want.join(',')}`);
      expect((await segmentsAs(segd, key, 'uid=rtb-user-1&format=gam')).body, p).toBe(`seg=${want.join(',')}`);
      const mp = await fetch(`${segd.url}/v1/segments?uid=rtb-user-1`, {
        headers: { ...bearer(key), Accept: 'application/msgpack' },
      });
      expect((unpack(Buffer.from(await mp.arrayBuffer())) as Obj).segments, p).toEqual(want);
    }
    // dsp2 sees nothing of a user who holds only dsp1's segment: same answer as an unknown user.
    expect(JSON.parse((await segmentsAs(segd, KEYS.dsp2, 'uid=only-dsp1')).body).segments).toEqual([]);
  });

  it('batch answers only licensed segments, JSON and msgpack', async () => {
    const uids = ['rtb-user-1', 'only-dsp1', 'nobody'];
    for (const [p, want] of Object.entries(licensed)) {
      const key = KEYS[p as keyof typeof KEYS];
      const j = await fetch(`${segd.url}/v1/segments:batch`, {
        method: 'POST',
        headers: { ...bearer(key), 'Content-Type': 'application/json' },
        body: JSON.stringify({ uids }),
      });
      const m = await fetch(`${segd.url}/v1/segments:batch`, {
        method: 'POST',
        headers: { ...bearer(key), 'Content-Type': 'application/msgpack', Accept: 'application/msgpack' },
        body: pack({ uids }),
      });
      const fromJson = ((await j.json()) as Obj).results.map((r: Obj) => r.segments);
      const fromMsgpack = (unpack(Buffer.from(await m.arrayBuffer())) as Obj).results.map((r: Obj) => r.segments);
      const expected = [want, p === 'dsp2' ? [] : [1001], []];
      expect(fromJson, p).toEqual(expected);
      expect(fromMsgpack, p).toEqual(expected);
    }
  });

  it("batch lookups by graph ids: licensed, and a key names only its own partner's uids", async () => {
    const keys = [
      { partner: 'dsp2', puid: GRAPH_IDS.dsp1Uid },
      { partner: 'dsp1', puid: GRAPH_IDS.dsp1Uid },
      { ifa: GRAPH_IDS.ifa },
    ];
    const r = await fetch(`${segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { ...bearer(KEYS.dsp1), 'Content-Type': 'application/json' },
      body: JSON.stringify({ keys }),
    });
    const { results } = (await r.json()) as Obj;
    expect(results[0]).toMatchObject({ uid: null, segments: [], error: { code: 'BAD_ID_KEY' } });
    expect(results[1]).toEqual({ uid: 'graph-user', segments: [1001, 2001] });
    // A device id is resolved for its licensed segments, but its segd uid is not dsp1's to see.
    expect(results[2]).toEqual({ uid: null, segments: [1001, 2001] });
    const asDsp2 = await fetch(`${segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { ...bearer(KEYS.dsp2), 'Content-Type': 'application/json' },
      body: JSON.stringify({ keys: [{ ifa: GRAPH_IDS.ifa }] }),
    });
    expect(((await asDsp2.json()) as Obj).results[0].segments).toEqual([2001]);
  });

  it("401 without a valid key and 403 for another partner's ids, with bodies that do not depend on the user", async () => {
    const answers = new Map<string, Set<string>>();
    const note = (what: string, a: { status: number; body: string }) => {
      if (!answers.has(what)) answers.set(what, new Set());
      answers.get(what)!.add(`${a.status} ${a.body}`);
    };
    for (const uid of ['rtb-user-1', 'nobody-at-all']) {
      note('none', await segmentsAs(segd, null, `uid=${uid}`));
      note('wrong', await segmentsAs(segd, 'wrong-key-wrong-key-wrong', `uid=${uid}`));
      note('malformed', await segmentsAs(segd, 'x', `uid=${uid}`));
      note('other-partner', await segmentsAs(segd, KEYS.dsp1, `partner=dsp2&puid=${uid}`));
      const b = await fetch(`${segd.url}/v1/segments:batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ uids: [uid] }),
      });
      note('batch-none', { status: b.status, body: await b.text() });
    }
    for (const [what, set] of answers) {
      expect(set.size, what).toBe(1);
      const [status] = [...set][0]!.split(' ');
      expect(status, what).toBe(what === 'other-partner' ? '403' : '401');
    }
    // Its own partner id is fine (an unknown puid: empty, like any unknown user).
    expect(JSON.parse((await segmentsAs(segd, KEYS.dsp1, 'partner=dsp1&puid=abc')).body)).toEqual({
      uid: null,
      segments: [],
    });
  });
});

describe('registry changes, live', () => {
  // A server of its own: these changes (a key rotated, a licence withdrawn, a partner disabled) would leak into other tests.
  let segd: Segd;
  beforeAll(async () => {
    segd = await startActivation({ SEGD_WORKERS: '2' });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('rotates a key without a restart: both keys during the overlap, then only the new one', async () => {
    const admin = { ...bearer(ADMIN_KEY), 'Content-Type': 'application/json' };
    const NEW = 'dsp1-rotated-key-9876543210';
    const put = (body: Obj) =>
      fetch(`${segd.url}/v1/admin/partners/dsp1`, {
        method: 'PUT',
        headers: admin,
        body: JSON.stringify({ name: 'DSP One', ...body }),
      });
    expect((await put({ keys: [KEYS.dsp1, NEW] })).status).toBeLessThan(300);
    // Two workers: ask several times so both answer.
    for (let i = 0; i < 6; i++) {
      expect((await segmentsAs(segd, KEYS.dsp1, 'uid=rtb-user-1')).status).toBe(200);
      expect((await segmentsAs(segd, NEW, 'uid=rtb-user-1')).status).toBe(200);
    }
    expect((await put({ keys: [NEW] })).status).toBeLessThan(300);
    for (let i = 0; i < 6; i++) {
      expect((await segmentsAs(segd, KEYS.dsp1, 'uid=rtb-user-1')).status).toBe(401);
      expect(JSON.parse((await segmentsAs(segd, NEW, 'uid=rtb-user-1')).body).segments).toEqual([1001, 1002, 2001]);
    }
    // A licence change is live at once too: segment 1001 withdrawn from dsp1.
    const seg = await fetch(`${segd.url}/v1/admin/segments/1001`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ name: 'Auto intenders', provider: 'segd', segtax: 4, partners: [] }),
    });
    expect(seg.status).toBeLessThan(300);
    for (let i = 0; i < 6; i++)
      expect(JSON.parse((await segmentsAs(segd, NEW, 'uid=rtb-user-1')).body).segments).toEqual([1002, 2001]);
    // Disabling the partner shuts it out.
    expect((await put({ keys: [NEW], disabled: true })).status).toBeLessThan(300);
    expect((await segmentsAs(segd, NEW, 'uid=rtb-user-1')).status).toBe(401);
  });
});

describe('SEGD_LOOKUP_AUTH=optional', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await startActivation({ SEGD_LOOKUP_AUTH: 'optional' });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('answers anonymous callers in full, still filters partners, still refuses a wrong key', async () => {
    expect(JSON.parse((await segmentsAs(segd, null, 'uid=rtb-user-1')).body).segments).toEqual(USERS['rtb-user-1']);
    expect(JSON.parse((await segmentsAs(segd, KEYS.dsp1, 'uid=rtb-user-1')).body).segments).toEqual([1001, 1002, 2001]);
    expect((await segmentsAs(segd, 'wrong-key-wrong-key-wrong', 'uid=rtb-user-1')).status).toBe(401);
  });
});

describe('SEGD_LOOKUP_AUTH default', () => {
  it('is required under NODE_ENV=production (the Docker image), optional otherwise', async () => {
    for (const [nodeEnv, status] of [
      ['production', 401],
      ['', 200],
    ] as const) {
      const segd = await startSegd({ env: { NODE_ENV: nodeEnv } });
      try {
        expect((await segmentsAs(segd, null, 'uid=anyone')).status, nodeEnv || '(unset)').toBe(status);
      } finally {
        expect(await stopReport(segd)).toEqual(CLEAN_STOP);
      }
    }
  });
});

// The property: whatever the partners, taxonomy and memberships, every segment
// returned to a partner is licensed to it — and every licensed one held by the
// user is returned. The oracle below is written from the licensing rule, not
// from the code: a segment reaches a partner when the partner's list or the
// segment's list names the other, or either is "*".
// Bitset word edges (31, 32), the largest id a licence keeps in a bitset and the first it bisects.
const ID_POOL = [1, 2, 3, 31, 32, 50, 51, 900, 4000, 70000, 2_097_151, 2_097_152, 4294967295];
const PARTNER_IDS = ['p0', 'p1', 'p2', 'p3'];
const arbWorld = fc.record({
  partners: fc.tuple(
    ...PARTNER_IDS.map(() =>
      fc.oneof(
        { weight: 1, arbitrary: fc.constant('*' as const) },
        { weight: 5, arbitrary: fc.uniqueArray(fc.constantFrom(...ID_POOL)) },
      ),
    ),
  ),
  segments: fc.uniqueArray(
    fc.record({
      id: fc.constantFrom(...ID_POOL),
      partners: fc.oneof(
        { weight: 1, arbitrary: fc.constant('*' as const) },
        { weight: 4, arbitrary: fc.uniqueArray(fc.constantFrom(...PARTNER_IDS)) },
      ),
    }),
    { selector: (s) => s.id },
  ),
  users: fc.array(fc.uniqueArray(fc.constantFrom(...ID_POOL), { minLength: 1 }), { minLength: 1, maxLength: 6 }),
});
type World = typeof arbWorld extends fc.Arbitrary<infer T> ? T : never;

function oracle(w: World, partner: number, segment: number): boolean {
  const p = w.partners[partner]!;
  const s = w.segments.find((x) => x.id === segment);
  return (
    p === '*' || p.includes(segment) || s?.partners === '*' || (s?.partners.includes(PARTNER_IDS[partner]!) ?? false)
  );
}

describe('property: every segment returned to a partner is licensed to it', () => {
  it('the compiled licences agree with the licensing rule on any world (in process, real LMDB)', async () => {
    const dir = tempDir('segd-licence-prop-');
    const store = openStore(dir);
    try {
      const registry = Registry.load(store);
      const licences = new Licences(registry);
      await fc.assert(
        fc.asyncProperty(arbWorld, async (w) => {
          await store.env.transaction(() => {
            for (const { key } of store.partners.getRange()) store.partners.remove(key);
            for (const { key } of store.segments.getRange()) store.segments.remove(key);
            w.partners.forEach((segments, i) => {
              const p: Partner = {
                id: PARTNER_IDS[i]!,
                name: 'x',
                keyDigests: [],
                segments: segments === '*' ? '*' : [...segments].sort((a, b) => a - b),
                sync: null,
                disabled: false,
              };
              store.partners.put(p.id, p);
            });
            for (const s of w.segments) {
              const def: SegmentDef = {
                id: s.id,
                name: 's',
                provider: 'segd',
                segtax: 4,
                dataType: 'first',
                ttl: null,
                cpm: null,
                partners: s.partners,
              };
              store.segments.put(s.id, def);
            }
          });
          registry.reload();
          for (const held of w.users) {
            const sorted = Uint32Array.from(held).sort();
            for (let p = 0; p < PARTNER_IDS.length; p++) {
              const ids = Uint32Array.from(sorted);
              const n = licences.of(PARTNER_IDS[p]!)!.filter(ids, ids.length);
              const got = Array.from(ids.subarray(0, n));
              expect(got).toEqual(Array.from(sorted).filter((s) => oracle(w, p, s)));
            }
          }
        }),
        { numRuns: 300 },
      );
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('holds through the real server, over HTTP and the batch route', async () => {
    // A handful of generated worlds, each served by a fresh segd (a server start costs ~1 s).
    const worlds = fc.sample(arbWorld, { numRuns: 3, seed: 6 });
    for (const w of worlds) {
      const dir = tempDir('segd-licence-e2e-');
      const seed = join(dir, 'seed.ndjson');
      writeFileSync(seed, w.users.map((segs, i) => feedLine({ op: 'add', uid: `u${i}`, segments: segs })).join(''));
      const config = join(dir, 'segd.json');
      const keyOf = (i: number) => `prop-key-${PARTNER_IDS[i]}-0123456789`;
      writeFileSync(
        config,
        JSON.stringify({
          partners: w.partners.map((segments, i) => ({ id: PARTNER_IDS[i], keys: [keyOf(i)], segments })),
          segments: w.segments.map((s) => ({ id: s.id, name: 's', segtax: 4, partners: s.partners })),
        }),
      );
      const segd = await startSegd({ env: { SEGD_SEED: seed, SEGD_CONFIG: config, SEGD_LOOKUP_AUTH: 'required' } });
      try {
        for (let p = 0; p < PARTNER_IDS.length; p++) {
          const r = await fetch(`${segd.url}/v1/segments:batch`, {
            method: 'POST',
            headers: { ...bearer(keyOf(p)), 'Content-Type': 'application/json' },
            body: JSON.stringify({ uids: w.users.map((_, i) => `u${i}`) }),
          });
          const results = ((await r.json()) as Obj).results as Array<{ segments: number[] }>;
          results.forEach((res, i) => {
            for (const s of res.segments) expect(oracle(w, p, s), `u${i} got ${s} as ${PARTNER_IDS[p]}`).toBe(true);
            expect(res.segments).toEqual([...w.users[i]!].sort((a, b) => a - b).filter((s) => oracle(w, p, s)));
          });
        }
      } finally {
        expect(await stopReport(segd)).toEqual(CLEAN_STOP);
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
