// The guards themselves, on a real uWS app in this process: whatever throws,
// where (handler, body callback, late answer, WebSocket handler), the client
// gets one clean answer and the app goes on. Independent of any route's own
// bugs, which get fixed one by one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { connect } from 'node:net';
import uWS from 'uWebSockets.js';
import WebSocket from 'ws';
import { pino } from 'pino';
import { corkedResponse, guardRoute, guardWs, type RouteContext } from '../src/http/guard.js';
import { pending } from '../src/http/pending.js';
import { readBody } from '../src/http/body.js';
import { Budget } from '../src/http/admission.js';
import { sendBody } from '../src/http/respond.js';
import { waitFor } from './helpers/server.js';
import { listenLocal, type LocalApp } from './helpers/uws.js';

const lines: Array<Record<string, unknown>> = [];
const log = pino(
  { level: 'info' },
  new Writable({
    write(c, _e, cb) {
      lines.push(JSON.parse(String(c)));
      cb();
    },
  }),
);
const budget = new Budget('public', 100);
const inflight = { n: 0 };
const lateWrites: string[] = [];
/** Where /corked saw the corked-response mark: is it this response, null, or another one. */
const marks: Record<string, string> = {};
const markOf = (res: uWS.HttpResponse) => {
  const c = corkedResponse();
  return c === res ? 'this' : c === null ? 'null' : 'other';
};
let app: uWS.TemplatedApp;
let local: LocalApp;
let port = 0;

beforeAll(async () => {
  app = uWS.App();
  const ctx = (route: string): RouteContext => ({ route, method: 'POST', budget, shed: true, log });
  const route = (path: string, h: (res: uWS.HttpResponse, req: uWS.HttpRequest) => void) =>
    app.post(path, guardRoute(ctx(path), h));
  route('/throws', () => {
    throw new Error('in the handler');
  });
  route('/throws-after-pending', (res, req) => {
    const p = pending(res, inflight);
    readBody(res, req.getHeader('content-length'), 1 << 20, () =>
      p.settle(() => {
        lateWrites.push('after-pending');
        res.end('late');
      }),
    );
    throw new Error('after the body read began');
  });
  route('/throws-in-settle', (res, req) => {
    const p = pending(res, inflight);
    readBody(res, req.getHeader('content-length'), 1 << 20, () =>
      p.settle(() => {
        throw new RangeError('in the answer');
      }),
    );
  });
  route('/throws-in-body-callback', (res, req) => {
    pending(res, inflight);
    readBody(res, req.getHeader('content-length'), 1 << 20, () => {
      throw new Error('in onData');
    });
  });
  route('/answers-after-abort', (res, req) => {
    const p = pending(res, inflight, () =>
      setTimeout(
        () =>
          p.settle(() => {
            lateWrites.push('after-abort');
            res.end('too late');
          }),
        10,
      ),
    );
    void req;
  });
  // Answers from outside any uWS callback: settle must cork there (the mark is null).
  route('/corked', (res, req) => {
    marks.handler = markOf(res);
    const p = pending(res, inflight);
    readBody(res, req.getHeader('content-length'), 1 << 20, () => {
      marks.body = markOf(res);
      setImmediate(() => {
        marks.later = markOf(res);
        p.settle(() => void res.end('late'));
      });
    });
  });
  route('/ok', (res) => {
    sendBody(res, 200, 'text/plain', 'ok');
  });
  app.ws(
    '/ws',
    guardWs<object>(
      {
        message(ws, m) {
          if (Buffer.from(m).toString() === 'boom') throw new Error('in a ws handler');
          ws.send(m, false);
        },
      },
      log,
      '/ws',
    ),
  );
  local = await listenLocal(app);
  port = local.port;
});
afterAll(() => local.close());

const post = (path: string, body = '{}') => fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', body });
const failures = () => lines.filter((l) => l.msg === 'request failed');

describe('guarded uWS callbacks', () => {
  it.each(['/throws', '/throws-after-pending', '/throws-in-settle', '/throws-in-body-callback'])(
    '%s: 500 INTERNAL, logged with route, method and URL',
    async (path) => {
      const before = failures().length;
      const r = await post(`${path}?x=1`);
      expect(r.status).toBe(500);
      expect(await r.json()).toEqual({ error: { code: 'INTERNAL', message: 'internal error' } });
      const logged = failures().slice(before);
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ route: path, method: 'POST', level: 50 });
      expect((logged[0]!.err as { message: string }).message).toBeTruthy();
      if (path === '/throws') expect(logged[0]!.url).toBe('/throws');
      // Still serving.
      expect((await post('/ok')).status).toBe(200);
    },
  );

  it('marks the response corked only inside its own handler and body callback', async () => {
    const r = await post('/corked');
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('late');
    expect(marks).toEqual({ handler: 'this', body: 'this', later: 'null' });
    // A handler that throws leaves no mark behind.
    expect((await post('/throws')).status).toBe(500);
    expect(corkedResponse()).toBeNull();
  });

  it('answers once: a late answer after a failure or an abort writes nothing, and budgets return to zero', async () => {
    // A client that sends headers and leaves: the late settle must be a no-op.
    const s = connect(port, '127.0.0.1');
    s.write('POST /answers-after-abort HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n');
    await waitFor(async () => inflight.n === 1);
    s.destroy();
    await waitFor(async () => inflight.n === 0);
    expect(budget.n).toBe(0);
    expect(lateWrites).toEqual([]);
    expect((await post('/ok')).status).toBe(200);
  });

  it('a WebSocket handler that throws closes that connection with 1011; others go on', async () => {
    const open = (): Promise<WebSocket> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    const a = await open();
    const b = await open();
    const closed = new Promise<number>((r) => a.once('close', (code) => r(code)));
    a.send('boom');
    expect(await closed).toBe(1011);
    const echo = new Promise<string>((r) => b.once('message', (m) => r(String(m))));
    b.send('hello');
    expect(await echo).toBe('hello');
    b.close();
    expect(lines.some((l) => l.msg === 'request failed' && l.route === '/ws' && l.method === 'ws message')).toBe(true);
  });
});
