// The lookup path reads its query with src/http/query.ts instead of uWS's
// getQuery(name) (one crossing into C++ instead of several). It must read
// every query exactly as uWS does: checked here over random queries against
// uWS itself, in a real uWS app over real HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import uWS, { type us_listen_socket } from 'uWebSockets.js';
import { request } from 'node:http';
import { Query } from '../src/http/query.js';

const NAMES = ['uid', 'format', 'partner', 'puid', 'u', 'uidx'];
let listen: us_listen_socket | null = null;
let port = 0;

beforeAll(async () => {
  const q = new Query();
  // uWS's getQuery(name) decodes the request buffer in place, so a second
  // call on the same request may read differently: uWS answers one name per
  // request, as the route did before.
  const app = uWS.App()
    .get('/mine', (res, req) => {
      q.read(req);
      res.end(JSON.stringify(NAMES.map((n) => q.get(n) ?? null)));
    })
    .get('/theirs/:name', (res, req) => {
      res.end(JSON.stringify(req.getQuery(req.getParameter(0)) ?? null));
    });
  await new Promise<void>((resolve) =>
    app.listen('127.0.0.1', 0, (ls) => {
      listen = ls;
      port = uWS.us_socket_local_port(ls);
      resolve();
    }),
  );
});
afterAll(() => {
  if (listen) uWS.us_listen_socket_close(listen);
});

/** GET with the path sent byte for byte (fetch would normalise the query). */
const get = (path: string) =>
  new Promise<unknown>((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve(JSON.parse(body)));
    });
    r.on('error', reject);
    r.end();
  });

const both = async (qs: string) => ({
  mine: await get(`/mine?${qs}`),
  theirs: await Promise.all(NAMES.map((n) => get(`/theirs/${n}?${qs}`))),
});

// A query is pairs of name and value: names and near-names; values from
// plain text, '+', '=', valid and broken %-escapes, multi-byte UTF-8 escapes;
// sometimes a bare name, sometimes an empty pair.
const name = fc.constantFrom(...NAMES, 'ui', 'uid%3D', 'u%69d', '');
const valuePiece = fc.oneof(
  fc.constantFrom('+', '=', '%20', '%2B', '%26', '%3D', '%E2%82%AC', '%E2%82', '%zz', '%', '%4', '%00', '%0d%0a', '%C3%A9', '%2b%2B+'),
  fc.stringMatching(/^[A-Za-z0-9._~-]{1,6}$/),
);
const pair = fc.tuple(name, fc.option(fc.array(valuePiece, { maxLength: 5 }).map((v) => v.join('')), { freq: 5 }))
  .map(([n, v]) => (v === null ? n : `${n}=${v}`));
const query = fc.array(pair, { maxLength: 6 }).map((a) => a.join('&'));

describe('Query reads the query string as uWS does', () => {
  it('for hand-picked edge cases', async () => {
    for (const qs of ['uid&x=1', 'uid=&x', 'xuid=1&uid=2', 'uid=a%zzb', 'uid=%E2%82', 'uid=a=b&uid=c', '&uid=1', 'uid=1&uid=2', 'format', '']) {
      const { mine, theirs } = await both(qs);
      expect([qs, mine]).toEqual([qs, theirs]);
    }
  });

  it('for any query built from names, separators and escapes', async () => {
    await fc.assert(
      fc.asyncProperty(query, async (qs) => {
        const { mine, theirs } = await both(qs);
        expect(mine).toEqual(theirs);
      }),
      { numRuns: 1000 },
    );
  });
});
