// The HTTP edge under hostile and faulty conditions, against the real server:
// an exception in a request becomes an answer, a worker that fails anyway is
// replaced, strangers cannot shed partners' lookups, slow bodies are dropped,
// and /metrics can be keyed and is collected at most once per period.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import uWS from 'uWebSockets.js';
import { startSegd, waitFor, type Segd } from './helpers/server.js';
import { listenLocal, type LocalApp } from './helpers/uws.js';
import { readBody } from '../src/http/body.js';
import { metric } from './helpers/metrics.js';

const started: Segd[] = [];
async function start(env: Record<string, string>): Promise<Segd> {
  const s = await startSegd({ env });
  started.push(s);
  return s;
}
afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
});

const alive = (s: Segd) => s.proc.exitCode === null && s.proc.signalCode === null;
const guarded = (s: Segd, outcome: string) => metric(s.url, 'segd_http_guarded_total', { outcome });

/** A raw request on its own socket: everything the server sent, once it closes the connection. */
interface Raw {
  socket: Socket;
  closed: Promise<string>;
  /** True once any answer byte arrived. */
  readonly answered: boolean;
}
function raw(port: number, head: string, body = ''): Raw {
  const socket = connect(port, '127.0.0.1');
  let got = '';
  const closed = new Promise<string>((resolve) => {
    socket.on('data', (c) => (got += c.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve(got));
  });
  socket.write(head + body);
  return {
    socket,
    closed,
    get answered() {
      return got.length > 0;
    },
  };
}

describe('an exception inside a request', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await start({});
  });

  it('a deeply nested POST /sync/out is answered (4xx/5xx) and the server keeps serving', async () => {
    const deep = '['.repeat(32_000) + ']'.repeat(32_000);
    const r = await fetch(`${segd.url}/sync/out`, { method: 'POST', body: `{"partners":"*","gpp_sid":${deep}}` });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(600);
    const body = (await r.json()) as { error: { code: string } };
    expect(typeof body.error.code).toBe('string');
    // Still serving, on the same worker (one worker), many times over.
    for (let i = 0; i < 5; i++) {
      const again = await fetch(`${segd.url}/sync/out`, { method: 'POST', body: `{"partners":"*","gpp_sid":${deep}}` });
      expect(again.status).toBe(r.status);
    }
    expect((await fetch(`${segd.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${segd.url}/v1/segments?uid=someone`)).status).toBe(200);
    expect(alive(segd)).toBe(true);
    // A 500 is the guard's: logged with where it happened. (A 4xx means the route itself refuses the input.)
    if (r.status === 500) {
      const failed = await segd.waitForLog((l) => l.msg === 'request failed');
      expect(failed).toMatchObject({ route: '/sync/out', method: 'POST' });
    }
    // No worker was replaced: the answer came from the guard, not a restart.
    expect(segd.logs.filter((l) => l.msg === 'worker exited; restarting it')).toEqual([]);
  });
});

describe('a worker that fails anyway', () => {
  let segd: Segd;
  beforeAll(async () => {
    // SEGD_TEST_FAULTS=1 adds a test-only route that throws from a timer in the
    // worker (an exception no request guard can catch). One worker: while it is
    // replaced nothing else serves, so the process surviving is all that can.
    segd = await start({ SEGD_TEST_FAULTS: '1', SEGD_WORKERS: '1' });
  });

  it('is replaced, and the process keeps serving', async () => {
    const ok = async () => {
      try {
        return (await fetch(`${segd.url}/healthz`)).status === 200;
      } catch {
        return false;
      }
    };
    const FAILED = 'worker failed; closing it so the supervisor starts a replacement';
    const EXITED = 'worker exited; restarting it';
    const seen = (msg: string, n: number) =>
      segd.waitForLog((l) => l.msg === msg && segd.logs.filter((x) => x.msg === msg).length >= n);
    for (let round = 1; round <= 2; round++) {
      const r = await fetch(`${segd.url}/__test/fail-worker`);
      expect(r.status).toBe(200);
      // Both lines, whichever order they arrive in: the worker's own and the supervisor's.
      await Promise.all([seen(FAILED, round), seen(EXITED, round)]);
      await waitFor(ok);
      expect(alive(segd)).toBe(true);
    }
    expect(segd.logs.filter((l) => l.msg === FAILED)).toHaveLength(2);
    expect(segd.stderr.join('')).not.toMatch(/uv_loop_close|Assertion failed/);
    // And it still stops cleanly.
    expect(await segd.stop()).toBe(0);
  });
});

describe('admission budgets', () => {
  let segd: Segd;
  const INGEST_KEY = 'ingest-key-0123456789abcdef';
  beforeAll(async () => {
    // A body deadline far beyond the test: the slow requests stay held throughout.
    segd = await start({
      SEGD_MAX_INFLIGHT: '4',
      SEGD_MAX_INFLIGHT_PUBLIC: '8',
      SEGD_MAX_INFLIGHT_KEYED: '8',
      SEGD_BODY_TIMEOUT_MS: '600000',
      SEGD_INGEST_KEYS: INGEST_KEY,
    });
  });

  it('strangers holding slow bodies fill only the public budget: lookups and keyed routes are served', async () => {
    const SLOW = 30;
    const PUBLIC = 8;
    const head = `POST /sync/out HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`;
    const slow = Array.from({ length: SLOW }, () => raw(segd.port, head));
    try {
      // Past the public budget the rest are refused at once (503, closed): then PUBLIC are held.
      await waitFor(async () => slow.filter((s) => s.answered).length >= SLOW - PUBLIC, 30_000);
      const refused = slow.filter((s) => s.answered);
      expect(refused).toHaveLength(SLOW - PUBLIC);
      for (const s of refused) {
        const text = await s.closed;
        expect(text).toMatch(/^HTTP\/1\.1 503 /);
        expect(text).toContain('"OVERLOADED"');
      }
      // Lookups have their own budget…
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`${segd.url}/v1/segments?uid=someone`);
        expect(r.status).toBe(200);
      }
      const batch = await fetch(`${segd.url}/v1/segments:batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{"uids":["someone"]}',
      });
      expect(batch.status).toBe(200);
      // …and so do keyed routes.
      const push = await fetch(`${segd.url}/v1/ingest`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${INGEST_KEY}`, 'Content-Type': 'application/x-ndjson' },
        body: '{"op":"add","uid":"pushed","segments":[7]}\n',
      });
      expect(push.status).toBe(200);
      // The public budget is still full: the held ones have not been answered.
      expect(slow.filter((s) => s.answered)).toHaveLength(SLOW - PUBLIC);
      const more = await fetch(`${segd.url}/sync/out`, { method: 'POST', body: '{"partners":"*"}' });
      expect(more.status).toBe(503);
    } finally {
      for (const s of slow) s.socket.destroy();
    }
    // With the strangers gone, public routes are served again.
    await waitFor(
      async () => (await fetch(`${segd.url}/sync/out`, { method: 'POST', body: '{"partners":"*"}' })).status === 200,
    );
    expect(alive(segd)).toBe(true);
    expect(await guarded(segd, 'overloaded')).toBe(SLOW - PUBLIC + 1);
  });
});

describe('the body deadline', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await start({ SEGD_BODY_TIMEOUT_MS: '500' });
  });

  it('a body that does not arrive in time is answered 408 and its connection closed, trickled or silent', async () => {
    const head = (path: string) =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`;
    const silent = [
      raw(segd.port, head('/sync/out')),
      raw(segd.port, head('/v1/segments:batch')),
      raw(segd.port, head('/openrtb2/enrich')),
    ];
    // A byte every 50 ms: an idle timer alone would never drop it.
    const trickle = raw(segd.port, head('/sync/out'), '{');
    const timer = setInterval(() => trickle.socket.writable && trickle.socket.write(' '), 50);
    try {
      for (const text of await Promise.all([...silent, trickle].map((s) => s.closed))) {
        expect(text).toMatch(/^HTTP\/1\.1 408 /);
        expect(text).toContain('"BODY_TIMEOUT"');
      }
    } finally {
      clearInterval(timer);
    }
    // Logged with the route (the log pipe may trail the sockets).
    const timedOut = () => segd.logs.filter((l) => l.msg === 'request body timed out; connection closed');
    await waitFor(async () => timedOut().length >= 4);
    expect(
      timedOut()
        .map((l) => l.route)
        .sort(),
    ).toEqual(['/openrtb2/enrich', '/sync/out', '/sync/out', '/v1/segments:batch']);
    // A body that arrives in time is served as always.
    const r = await fetch(`${segd.url}/v1/segments:batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"uids":["someone"]}',
    });
    expect(r.status).toBe(200);
    expect(await guarded(segd, 'body_timeout')).toBe(4);
  });
});

describe('/metrics', () => {
  let segd: Segd;
  const KEY = 'metrics-key-0123456789abcdef';
  beforeAll(async () => {
    // A long cache, so "the same collection" does not depend on how fast this machine is.
    segd = await start({ SEGD_METRICS_KEYS: KEY, SEGD_METRICS_CACHE_MS: '600000' });
  });

  it('needs a key when SEGD_METRICS_KEYS is set', async () => {
    expect((await fetch(`${segd.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${segd.url}/metrics`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    const r = await fetch(`${segd.url}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } });
    expect(r.status).toBe(200);
    expect(await r.text()).toMatch(/^segd_http_requests_total/m);
  });

  it('serves one collection to every scrape within the cache period, concurrent or not', async () => {
    const scrape = async () =>
      (await fetch(`${segd.url}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } })).text();
    const first = await scrape();
    // Traffic in between that would show in a fresh collection.
    for (let i = 0; i < 5; i++) await fetch(`${segd.url}/v1/segments?uid=u${i}`);
    const later = await Promise.all(Array.from({ length: 8 }, scrape));
    for (const t of later) expect(t).toBe(first);
  });
});

describe('readBody memory', () => {
  // A real uWS app in this process, so its memory can be read directly.
  let app: uWS.TemplatedApp;
  let local: LocalApp;
  let port = 0;
  let handled = 0;
  beforeAll(async () => {
    app = uWS.App();
    app.post('/body', (res, req) => {
      res.onAborted(() => {});
      handled++;
      readBody(res, req.getHeader('content-length'), 64 << 20, (r) => {
        res.cork(() => res.end(r.ok ? createHash('sha256').update(r.body).digest('hex') : 'too-large'));
      });
    });
    app.post('/borrowed', (res, req) => {
      res.onAborted(() => {});
      readBody(
        res,
        req.getHeader('content-length'),
        64 << 20,
        (r) => res.cork(() => res.end(r.ok ? createHash('sha256').update(r.body).digest('hex') : 'too-large')),
        true,
      );
    });
    local = await listenLocal(app);
    port = local.port;
  });
  afterAll(() => local.close());

  it('grows with the bytes that arrive, not with the declared Content-Length', async () => {
    const N = 20;
    const before = process.memoryUsage().arrayBuffers;
    const held = Array.from({ length: N }, () =>
      raw(port, `POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: ${50 << 20}\r\n\r\n`, 'x'.repeat(10)),
    );
    try {
      await waitFor(async () => handled >= N);
      const grown = process.memoryUsage().arrayBuffers - before;
      // Declared: 20 × 50 MB. Held: a first buffer each.
      expect(grown).toBeLessThan(16 << 20);
    } finally {
      for (const h of held) h.socket.destroy();
    }
  });

  it('still reads a large body exactly, in many chunks', async () => {
    const body = Buffer.alloc(3 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    for (const path of ['/body', '/borrowed']) {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body });
      expect(await r.text()).toBe(createHash('sha256').update(body).digest('hex'));
    }
  });

  it('reads borrowed bodies exactly, in one chunk or many, through buffers it reuses', async () => {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    // ASCII, as raw() writes text as UTF-8.
    const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed + 7) & 0x7f));
    /** `body` as HTTP chunks of `piece` bytes: each reaches readBody as a chunk of its own. */
    const chunked = (body: Buffer, piece: number) => {
      let text = '';
      for (let at = 0; at < body.length; at += piece) {
        const part = body.subarray(at, at + piece);
        text += `${part.length.toString(16)}\r\n${part.toString('latin1')}\r\n`;
      }
      const head = 'POST /borrowed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
      return raw(port, head, text + '0\r\n\r\n');
    };
    const answerOf = async (r: Raw) => {
      const text = await r.closed;
      return text.slice(text.indexOf('\r\n\r\n') + 4);
    };
    // Large, then small, then in between, one after another: a pooled buffer
    // from a longer body holds a shorter one; then many at once, interleaved.
    const sizes = [200_000, 5, 3000, 70_000, 1, 16_385];
    for (const [k, n] of sizes.entries()) {
      const body = bytes(n, 31 + k);
      expect(await answerOf(chunked(body, 1 + (n >> 3)))).toBe(sha(body));
    }
    const bodies = sizes.map((n, k) => bytes(n, 61 + k));
    const answers = await Promise.all(bodies.map((b) => answerOf(chunked(b, 999))));
    expect(answers).toEqual(bodies.map(sha));
    // One chunk: uWS's own bytes.
    const one = bytes(2600, 5);
    const r = await fetch(`http://127.0.0.1:${port}/borrowed`, { method: 'POST', body: one });
    expect(await r.text()).toBe(sha(one));
  });
});
