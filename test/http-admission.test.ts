// Shedding on the lookup paths: past the per-worker admission limit a lookup
// is answered 204 at once and counted; nothing queues; the requests already
// admitted complete normally and the server keeps serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { stopReport, CLEAN_STOP, type Segd } from './helpers/server.js';
import { startActivation, KEYS, bearer } from './helpers/activation.js';
import { metric } from './helpers/metrics.js';
import { WsLookupClient } from '../src/client/ws-client.js';

let segd: Segd;
beforeAll(async () => {
  segd = await startActivation({ SEGD_MAX_INFLIGHT: '4' });
});
afterAll(async () => {
  expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

/** Sends headers and half the body, holding the request open (in flight) until `finish`. */
function heldRequest(path: string, body: string): { answer: Promise<string>; finish: () => void; socket: Socket } {
  const socket = connect(segd.port, '127.0.0.1');
  const half = Math.floor(body.length / 2);
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEYS.dsp1}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, half)}`,
  );
  const answer = new Promise<string>((resolve, reject) => {
    let got = '';
    socket.on('data', (c) => {
      got += c.toString();
      const head = got.indexOf('\r\n\r\n');
      if (head < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(got)?.[1] ?? 0);
      if (got.length >= head + 4 + len) {
        socket.end();
        resolve(got);
      }
    });
    socket.on('error', reject);
  });
  return { answer, finish: () => socket.write(body.slice(half)), socket };
}

const statusOf = (raw: string) => Number(raw.slice(9, 12));
const shedCount = (route: string) => metric(segd.url, 'segd_shed_total', { route, reason: 'overload' });

describe('admission limit', () => {
  it('sheds a burst past the limit with 204 at once, on every lookup path, and counts it', async () => {
    const batchBody = JSON.stringify({ uids: ['rtb-user-1'] });
    const held = Array.from({ length: 4 }, () => heldRequest('/v1/segments:batch', batchBody));
    // The four are admitted (their headers read) once a lookup is shed: the budget is full.
    const lookup = () => fetch(`${segd.url}/v1/segments?uid=rtb-user-1`, { headers: bearer(KEYS.dsp1) });
    let probe = await lookup();
    while (probe.headers.get('x-segd-empty') !== 'overload') {
      // Admitted before the four were: answered in full.
      expect(probe.status).toBe(200);
      await probe.arrayBuffer();
      probe = await lookup();
    }
    expect(probe.status).toBe(204);
    const burst = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0
        ? heldRequest('/v1/segments:batch', batchBody)
        : heldRequest('/openrtb2/enrich', JSON.stringify({ id: 'x', imp: [], user: { id: 'rtb-user-1' } })),
    );
    // Shed ones are answered without their body: nothing to finish.
    const shed = await Promise.all(burst.map((b) => b.answer));
    for (const raw of shed) {
      expect(statusOf(raw)).toBe(204);
      expect(raw.toLowerCase()).toMatch(/x-segd-empty: overload/);
    }
    const ws = await WsLookupClient.connect(`ws://127.0.0.1:${segd.port}/v1/ws`, KEYS.dsp1);
    expect(await ws.lookup({ uid: 'rtb-user-1' })).toEqual({ segments: [], shed: true });

    // The admitted four complete normally.
    for (const h of held) h.finish();
    for (const raw of await Promise.all(held.map((h) => h.answer))) {
      expect(statusOf(raw)).toBe(200);
      expect(raw).toContain('"segments":[1001,1002,2001]');
    }
    // And with the load gone, lookups are served again.
    expect((await ws.lookup({ uid: 'rtb-user-1' })).segments).toEqual([1001, 1002, 2001]);
    await ws.close();
    const ok = await lookup();
    expect(((await ok.json()) as { segments: number[] }).segments).toEqual([1001, 1002, 2001]);

    expect(await shedCount('batch')).toBe(10);
    expect(await shedCount('enrich')).toBe(10);
    expect(await shedCount('segments')).toBe(1);
    expect(await shedCount('ws')).toBe(1);
  });
});
