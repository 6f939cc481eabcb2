// The lookup route's query values, found in the raw query string in JS
// (http/query.ts), are the ones uWS's own `req.getQuery(key)` finds: asked of
// a real uWS app over loopback for generated queries of near-miss keys,
// empty statements, missing `=`, repeats and escapes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import uWS, { type us_listen_socket } from 'uWebSockets.js';
import { queryParam, queryValue } from '../src/http/query.js';

const KEYS = ['uid', 'format', 'partner', 'u', 'puid'];

let app: uWS.TemplatedApp;
let listen: us_listen_socket | null = null;
let port = 0;

beforeAll(async () => {
  app = uWS.App();
  // Each value asked once per request: uWS decodes an escaped value in place when asked for it.
  app.get('/ours', (res, req) => {
    const raw = req.getQuery() ?? '';
    res.end(JSON.stringify(KEYS.map((k) => queryParam(req, raw, k) ?? null)));
  });
  app.get('/plain', (res, req) => {
    const raw = req.getQuery() ?? '';
    res.end(JSON.stringify(KEYS.map((k) => queryValue(raw, k) ?? null)));
  });
  app.get('/theirs', (res, req) => {
    res.end(JSON.stringify(KEYS.map((k) => req.getQuery(k) ?? null)));
  });
  await new Promise<void>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (ls) => {
      if (!ls) return reject(new Error('listen failed'));
      listen = ls;
      port = uWS.us_socket_local_port(ls);
      resolve();
    }),
  );
});
afterAll(() => {
  if (listen) uWS.us_listen_socket_close(listen);
  (app as unknown as { close(): void }).close();
});

/** A statement of a query without `%` escapes: a key or a near miss, `=` or not, a value (maybe with a `+`). */
const statement = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(...KEYS, 'uidx', 'forma', 'p', ''),
      fc.constantFrom('=', ''),
      fc.stringMatching(/^[a-z0-9=.+-]{0,8}$/),
    )
    .map(([k, eq, v]) => k + eq + v),
  fc.stringMatching(/^[a-z=0-9]{0,6}$/),
);

const ask = async (path: string, q: string) =>
  (await (await fetch(`http://127.0.0.1:${port}/${path}?${q}`)).json()) as (string | null)[];

describe('query values read in JS', () => {
  it('are what uWS getQuery(key) answers for a query without escapes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(statement, { maxLength: 6 }), async (parts) => {
        const q = parts.join('&');
        const theirs = await ask('theirs', q);
        // A `+` is decoded (to a space) by uWS: the route leaves such a query to it.
        if (!q.includes('+')) expect(await ask('plain', q), q).toEqual(theirs);
        expect(await ask('ours', q), q).toEqual(theirs);
      }),
      { numRuns: 300 },
    );
  });

  it('leave a query with an escape to uWS, which decodes it', async () => {
    for (const q of ['uid=a%2Fb&format=json', 'format=js%6Fn&uid=x', 'partner=p%20q&uid=%41', 'uid=a+b'])
      expect(await ask('ours', q), q).toEqual(await ask('theirs', q));
    expect((await ask('ours', 'uid=a%2Fb'))[0]).toBe('a/b');
    // uWS reads a `+` as a space.
    expect((await ask('ours', 'uid=a+b'))[0]).toBe('a b');
  });

  it('finds a uid among other values, and none in a query without it', () => {
    expect(queryValue('uid=abc&format=json', 'uid')).toBe('abc');
    expect(queryValue('format=json&uid=abc', 'format')).toBe('json');
    expect(queryValue('uidx=1&uid=2', 'uid')).toBe('2');
    expect(queryValue('uid=&format=json', 'uid')).toBe('');
    expect(queryValue('format=json', 'uid')).toBeUndefined();
    expect(queryValue('', 'uid')).toBeUndefined();
  });
});
