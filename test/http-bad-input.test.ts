// Every bad request gets a clear 4xx with a JSON error, and the server keeps
// serving good requests afterwards. Table-driven: name, request, expectation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { startSegd, tempDir, feedLine, stopReport, CLEAN_STOP, type Segd } from './helpers/server.js';

interface Case {
  name: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  status: number;
  code: string;
}

const long = 'x'.repeat(129);
const CASES: Case[] = [
  { name: 'missing uid', path: '/v1/segments', status: 400, code: 'UID_MISSING' },
  { name: 'empty uid', path: '/v1/segments?uid=', status: 400, code: 'UID_MISSING' },
  { name: 'uid over 128 bytes', path: `/v1/segments?uid=${long}`, status: 400, code: 'UID_INVALID' },
  {
    name: 'uid of 43 three-byte chars (129 bytes)',
    path: `/v1/segments?uid=${encodeURIComponent('€'.repeat(43))}`,
    status: 400,
    code: 'UID_INVALID',
  },
  { name: 'uid with CR/LF', path: '/v1/segments?uid=a%0d%0aSet-Cookie:%20x', status: 400, code: 'UID_INVALID' },
  { name: 'uid with NUL', path: '/v1/segments?uid=a%00b', status: 400, code: 'UID_INVALID' },
  { name: 'unknown format', path: '/v1/segments?uid=a&format=xml', status: 400, code: 'BAD_FORMAT' },
  { name: 'unknown route', path: '/v2/whatever', status: 404, code: 'NOT_FOUND' },
  {
    name: 'wrong method on lookup',
    method: 'DELETE',
    path: '/v1/segments?uid=a',
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  { name: 'GET on batch', path: '/v1/segments:batch', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'POST on lookup', method: 'POST', path: '/v1/segments', body: '{}', status: 405, code: 'METHOD_NOT_ALLOWED' },
  ...[
    ['malformed JSON', '{"uids": [', 'BAD_JSON'],
    ['JSON that is not an object', '[1,2,3]', 'BAD_BATCH'],
    ['uids not an array', '{"uids":"alice"}', 'BAD_BATCH'],
    ['no uids', '{"ids":["alice"]}', 'BAD_BATCH'],
    ['JSON null', 'null', 'BAD_BATCH'],
  ].map(([name, body, code]): Case => ({
    name: `batch: ${name}`,
    method: 'POST',
    path: '/v1/segments:batch',
    headers: { 'content-type': 'application/json' },
    body,
    status: 400,
    code: code!,
  })),
  {
    name: 'batch: invalid UTF-8',
    method: 'POST',
    path: '/v1/segments:batch',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
    status: 400,
    code: 'BAD_JSON',
  },
  {
    name: 'batch: malformed msgpack',
    method: 'POST',
    path: '/v1/segments:batch',
    headers: { 'content-type': 'application/msgpack' },
    body: Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff]),
    status: 400,
    code: 'BAD_MSGPACK',
  },
  {
    name: 'batch: truncated msgpack',
    method: 'POST',
    path: '/v1/segments:batch',
    headers: { 'content-type': 'application/msgpack' },
    body: pack({ uids: ['alice', 'bob'] }).subarray(0, 9),
    status: 400,
    code: 'BAD_MSGPACK',
  },
  {
    name: 'batch: form body',
    method: 'POST',
    path: '/v1/segments:batch',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'uids=alice',
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'batch: kv format',
    method: 'POST',
    path: '/v1/segments:batch?format=kv',
    headers: { 'content-type': 'application/json' },
    body: '{"uids":[]}',
    status: 400,
    code: 'BAD_FORMAT',
  },
  {
    name: 'batch: too many keys',
    method: 'POST',
    path: '/v1/segments:batch',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uids: Array.from({ length: 11 }, (_, i) => `u${i}`) }),
    status: 413,
    code: 'BATCH_TOO_LARGE',
  },
  {
    name: 'batch: body over the limit (Content-Length)',
    method: 'POST',
    path: '/v1/segments:batch',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uids: ['a'.repeat(5000)] }),
    status: 413,
    code: 'BODY_TOO_LARGE',
  },
];

describe('bad input', () => {
  let segd: Segd;
  beforeAll(async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'seed.ndjson'), feedLine({ op: 'add', uid: 'alice', segments: [1, 2] }));
    segd = await startSegd({
      env: { SEGD_SEED: join(dir, 'seed.ndjson'), SEGD_MAX_BATCH_KEYS: '10', SEGD_MAX_BODY_BYTES: '4096' },
    });
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  const stillServing = async () => {
    const r = await fetch(`${segd.url}/v1/segments?uid=alice`);
    expect(await r.json()).toEqual({ uid: 'alice', segments: [1, 2] });
  };

  it.each(CASES)('$name → $status $code', async (c) => {
    const r = await fetch(`${segd.url}${c.path}`, { method: c.method ?? 'GET', headers: c.headers, body: c.body });
    expect(r.status).toBe(c.status);
    expect(r.headers.get('content-type')).toBe('application/json');
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(c.code);
    expect(body.error.message.length).toBeGreaterThan(10);
    await stillServing();
  });

  it('a batch with bad keys answers the good ones and flags the bad ones', async () => {
    const r = await fetch(`${segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uids: ['alice', 42, '', long, 'nobody', null] }),
    });
    expect(r.status).toBe(200);
    const { results } = (await r.json()) as {
      results: Array<{ uid: unknown; segments: number[]; error?: { code: string } }>;
    };
    expect(results.map((x) => [x.uid, x.segments, x.error?.code])).toEqual([
      ['alice', [1, 2], undefined],
      [null, [], 'UID_INVALID'],
      ['', [], 'UID_MISSING'],
      [long, [], 'UID_INVALID'],
      ['nobody', [], undefined],
      [null, [], 'UID_MISSING'],
    ]);
  });

  /** Raw HTTP over a socket, for what fetch will not send. */
  const raw = (payload: string | Buffer, opts: { endAfterWrite?: boolean } = {}) =>
    new Promise<string>((resolve, reject) => {
      const sock = connect(segd.port, '127.0.0.1');
      let out = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (out += d));
      sock.on('error', reject);
      sock.on('close', () => resolve(out));
      sock.write(payload);
      if (opts.endAfterWrite) sock.end();
      setTimeout(() => sock.destroy(), 3000);
    });

  it('refuses a chunked body that grows over the limit, without buffering it', async () => {
    const chunk = 'a'.repeat(1000);
    let req =
      'POST /v1/segments:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
    for (let i = 0; i < 10; i++) req += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    req += '0\r\n\r\n';
    const res = await raw(req);
    expect(res).toMatch(/^HTTP\/1\.1 413/);
    expect(res).toContain('BODY_TOO_LARGE');
    await stillServing();
  });

  it('survives a client that aborts mid-body', async () => {
    await new Promise<void>((resolve) => {
      const sock = connect(segd.port, '127.0.0.1', () => {
        sock.write(
          'POST /v1/segments:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"uids":["al',
        );
        // The one worker reads connections in order: once it answers a later one, it holds ours.
        void fetch(`${segd.url}/healthz`).then(() => {
          sock.destroy();
          resolve();
        });
      });
    });
    await stillServing();
    const m = await (await fetch(`${segd.url}/metrics`)).text();
    expect(Number(/segd_http_aborted_total (\d+)/.exec(m)?.[1])).toBeGreaterThanOrEqual(1);
  });

  it('rejects garbage that is not HTTP and keeps serving', async () => {
    await raw(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]), { endAfterWrite: true });
    await raw(
      'GET /v1/segments?uid=alice HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      { endAfterWrite: true },
    );
    await stillServing();
  });
});
