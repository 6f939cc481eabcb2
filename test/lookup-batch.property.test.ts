// A batch answers every item as the GET of that item would, in JSON and in
// MessagePack alike (one loop, one item encoder per format: src/http/format.ts),
// for any mix of known, unknown and malformed uids and graph keys, over real HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { stopReport, CLEAN_STOP, type Segd } from './helpers/server.js';
import { startActivation, bearer, KEYS, ADMIN_KEY, GRAPH_IDS, USERS } from './helpers/activation.js';

let segd: Segd;
beforeAll(async () => {
  segd = await startActivation();
});
afterAll(async () => {
  expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

type Answer = { results: Array<{ uid: string | null; segments: number[]; error?: { code: string; message: string } }> };

async function batch(key: string, body: object, format: 'json' | 'msgpack'): Promise<Answer> {
  const r = await fetch(`${segd.url}/v1/segments:batch`, {
    method: 'POST',
    headers:
      format === 'json'
        ? { 'content-type': 'application/json', ...bearer(key) }
        : { 'content-type': 'application/msgpack', accept: 'application/msgpack', ...bearer(key) },
    body: format === 'json' ? JSON.stringify(body) : pack(body),
  });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toBe(format === 'json' ? 'application/json' : 'application/msgpack');
  return format === 'json' ? ((await r.json()) as Answer) : (unpack(Buffer.from(await r.arrayBuffer())) as Answer);
}

const uid = fc.oneof(
  fc.constantFrom(...Object.keys(USERS), 'nobody-at-all', 'ünïcødé-🙂', ''),
  fc.constantFrom(7, null, { uid: 'x' }, 'x'.repeat(300), 'a\u0000b'),
  fc.string({ maxLength: 12 }),
);
const graphKey = fc.oneof(
  fc.constantFrom(
    { partner: 'dsp1', puid: GRAPH_IDS.dsp1Uid },
    { partner: 'dsp2', puid: GRAPH_IDS.dsp1Uid },
    { eid_source: 'id5-sync.com', eid: GRAPH_IDS.id5 },
    { ifa: GRAPH_IDS.ifa },
    { uid: 'rtb-user-1' },
    { uid: 'big-user' },
    { bogus: 1 },
    'not-an-object',
  ),
  fc.record({ ifa: fc.string({ maxLength: 8 }) }),
);
const callers = fc.constantFrom(KEYS.dsp1, KEYS.dsp2, KEYS.all, ADMIN_KEY);

describe('batch answers', () => {
  it('are the same in JSON and MessagePack, and each item is its GET answer', async () => {
    await fc.assert(
      fc.asyncProperty(
        callers,
        fc.oneof(
          fc.array(uid, { maxLength: 20 }).map((uids) => ({ uids })),
          fc.array(graphKey, { maxLength: 20 }).map((keys) => ({ keys })),
        ),
        async (key, body) => {
          const json = await batch(key, body, 'json');
          expect(await batch(key, body, 'msgpack')).toEqual(json);
          const items = 'uids' in body ? body.uids : body.keys;
          expect(json.results).toHaveLength(items.length);
          // A plain uid item without an error reads as GET ?uid= does.
          for (let i = 0; i < items.length; i++) {
            const item = items[i];
            if ('uids' in body && typeof item === 'string' && json.results[i]!.error === undefined) {
              const r = await fetch(`${segd.url}/v1/segments?uid=${encodeURIComponent(item)}`, {
                headers: bearer(key),
              });
              expect(await r.json()).toEqual(json.results[i]);
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('read from the body bytes (plain ASCII uids) are the answers of the JSON reading', async () => {
    // `{"uids":[…]}` of printable ASCII uids is read from its bytes (src/codec/uid-list.ts); the same
    // uids with another member, or in MessagePack, take JSON.parse / unpack: the answers must match.
    const plainUid = fc.oneof(
      fc.constantFrom(...Object.keys(USERS), 'nobody-at-all', 'x'.repeat(128), 'x'.repeat(129)),
      fc.string({
        unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
        minLength: 1,
        maxLength: 12,
      }),
    );
    const post = async (key: string, text: string, accept: string) => {
      const r = await fetch(`${segd.url}/v1/segments:batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, ...bearer(key) },
        body: text,
      });
      expect(r.status).toBe(200);
      return Buffer.from(await r.arrayBuffer());
    };
    await fc.assert(
      fc.asyncProperty(callers, fc.array(plainUid, { maxLength: 30 }), fc.boolean(), async (key, uids, pretty) => {
        const simple = pretty ? JSON.stringify({ uids }, null, 2) : JSON.stringify({ uids });
        const parsed = JSON.stringify({ other: 1, uids });
        for (const accept of ['application/json', 'application/msgpack']) {
          expect(await post(key, simple, accept)).toEqual(await post(key, parsed, accept));
        }
        expect(JSON.parse((await post(key, simple, 'application/json')).toString())).toEqual(
          await batch(key, { uids }, 'msgpack'),
        );
      }),
      { numRuns: 40 },
    );
  });
});
