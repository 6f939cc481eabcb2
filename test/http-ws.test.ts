// /v1/ws through the real server with the repo's own client: auth at upgrade,
// pipelined lookups matched by id, licensing, bad frames, oversized frames,
// key revocation, and backpressure from a client that stops reading.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import uWS from 'uWebSockets.js';
import { pack, unpack } from 'msgpackr';
import { stopReport, CLEAN_STOP, waitFor, type Segd } from './helpers/server.js';
import { startActivation, bearer, KEYS, ADMIN_KEY, USERS, GRAPH_IDS } from './helpers/activation.js';
import { WsLookupClient, WsLookupError } from '../src/client/ws-client.js';
import { metric as metricAt } from './helpers/metrics.js';

let segd: Segd;
const wsUrl = () => `ws://127.0.0.1:${segd.port}/v1/ws`;
beforeAll(async () => {
  segd = await startActivation({ SEGD_WS_MAX_PAYLOAD: '1024' });
});
afterAll(async () => {
  expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

const metric = (name: string) => metricAt(segd.url, name);

describe('/v1/ws', () => {
  it('refuses the upgrade without a valid partner key (401)', async () => {
    for (const key of [undefined, 'wrong-key-wrong-key-wrong-key']) {
      const err = await WsLookupClient.connect(wsUrl(), key).then(
        () => null,
        (e: Error & { status?: number }) => e,
      );
      expect(err?.status).toBe(401);
    }
  });

  it('answers many pipelined lookups on one connection, each matched to its request', async () => {
    const c = await WsLookupClient.connect(wsUrl(), KEYS.dsp2);
    const asks = Array.from({ length: 3000 }, (_, i) => ['rtb-user-1', 'only-dsp1', `nobody-${i}`][i % 3]!);
    const want: Record<string, number[]> = { 'rtb-user-1': [1002, 2001, 3005, 4002], 'only-dsp1': [] };
    const pending = asks.map((uid) => c.lookup({ uid }));
    expect(c.inFlight).toBeGreaterThan(100); // really pipelined: sent before any answer came back
    const answers = await Promise.all(pending);
    answers.forEach((a, i) => expect(a.segments, asks[i]).toEqual(want[asks[i]!] ?? []));
    // Device ids resolve through the ID graph; an unknown partner uid is an unknown user, not an error.
    expect((await c.lookup({ ifa: GRAPH_IDS.ifa })).segments).toEqual([2001]); // of graph-user's, only the open 2001 is dsp2's
    expect((await c.lookup({ puid: 'dsp2-cookie' })).segments).toEqual([]);
    await c.close();
    expect(await metric('segd_ws_frames_total')).toBeGreaterThanOrEqual(3000);
  });

  it('answers bad msgpack and bad frames with an error frame and keeps the connection', async () => {
    const c = await WsLookupClient.connect(wsUrl(), KEYS.dsp1);
    c.sendRaw(Uint8Array.from([0xc1])); // never-used msgpack byte (msgpackr reads it as no value: not a map)
    c.sendRaw(pack([1, 2, 3])); // not a map
    c.sendRaw(Uint8Array.from([0x82, 0xa2, 0x69])); // truncated map
    c.sendRaw(pack({ id: { nested: 1 }, uid: 'x' })); // id must be a number or short string
    await expect(c.lookup({ uid: 123 as unknown as string })).rejects.toMatchObject({ code: 'UID_INVALID' });
    await expect(c.lookup({} as { uid: string })).rejects.toBeInstanceOf(WsLookupError);
    await expect(c.lookup({ uid: 'a\u0000b' })).rejects.toMatchObject({ code: 'UID_INVALID' });
    expect(c.orphanErrors.map((e) => e.code)).toEqual(['BAD_FRAME', 'BAD_FRAME', 'BAD_MSGPACK', 'BAD_FRAME']);
    expect((await c.lookup({ uid: 'rtb-user-1' })).segments).toEqual([1001, 1002, 2001]);
    // puid is the connection's partner's own uid for the user.
    expect((await c.lookup({ puid: GRAPH_IDS.dsp1Uid })).segments).toEqual([1001, 2001]);
    expect((await c.lookup({ ifa: GRAPH_IDS.ifa })).segments).toEqual([1001, 2001]);
    await c.close();
  });

  it('drops a connection that sends a frame over the limit; others go on', async () => {
    const other = await WsLookupClient.connect(wsUrl(), KEYS.dsp1);
    const c = await WsLookupClient.connect(wsUrl(), KEYS.dsp1);
    const inFlight = c.lookup({ uid: 'x'.repeat(2000) });
    await expect(inFlight).rejects.toThrow(/closed/);
    // uWS closes the socket at once, without a close frame: the client sees 1006.
    expect(c.closed?.code).toBe(1006);
    expect((await other.lookup({ uid: 'rtb-user-1' })).segments).toEqual([1001, 1002, 2001]);
    await other.close();
  });

  it('closes a connection whose key was rotated out (4401) at its next frame', async () => {
    const admin = { ...bearer(ADMIN_KEY), 'Content-Type': 'application/json' };
    const OLD = 'dsp2-temp-key-0123456789';
    const put = (keys: string[]) =>
      fetch(`${segd.url}/v1/admin/partners/dsp2`, {
        method: 'PUT',
        headers: admin,
        body: JSON.stringify({ name: 'DSP Two', keys, segments: [4002] }),
      });
    expect((await put([KEYS.dsp2, OLD])).status).toBeLessThan(300);
    const c = await WsLookupClient.connect(wsUrl(), OLD);
    expect((await c.lookup({ uid: 'rtb-user-1' })).segments).toEqual([1002, 2001, 3005, 4002]);
    expect((await put([KEYS.dsp2])).status).toBeLessThan(300);
    await expect(c.lookup({ uid: 'rtb-user-1' })).rejects.toThrow(/closed/);
    expect(c.closed?.code).toBe(4401);
  });

  it('holds frames while the client does not read, answers them all once it does', async () => {
    const c = await WsLookupClient.connect(wsUrl(), KEYS.all, { maxPayload: 1 << 20 });
    const tcp = (c.socket as unknown as { _socket: import('node:net').Socket })._socket;
    tcp.pause();
    const before = await metric('segd_ws_backpressure_pauses_total');
    // ≈6 KB answers to 30-byte requests: the server's unsent bytes pass its high water quickly.
    const pending = Array.from({ length: 3000 }, () => c.lookup({ uid: 'big-user' }));
    await waitFor(async () => (await metric('segd_ws_backpressure_pauses_total')) > before, 10_000);
    tcp.resume();
    const answers = await Promise.all(pending);
    const want = USERS['big-user']!.join();
    expect(answers.filter((a) => a.segments.join() !== want)).toEqual([]);
    await c.close();
  });

  it('closes (1013) a client that never reads past the queue cap, and keeps serving others', async () => {
    const c = await WsLookupClient.connect(wsUrl(), KEYS.all, { maxPayload: 1 << 20 });
    const tcp = (c.socket as unknown as { _socket: import('node:net').Socket })._socket;
    tcp.pause();
    const pending = Array.from({ length: 3000 }, () => c.lookup({ uid: 'big-user' }).catch(() => null));
    // Then far more than the 1 MB queue cap of small frames.
    for (let i = 0; i < 60_000; i++) pending.push(c.lookup({ uid: `nobody-${i}-padding-padding` }).catch(() => null));
    // Segd closes it (and counts it gone) once the queue passes the cap; only then does the client read.
    await waitFor(async () => (await metric('segd_ws_connections')) === 0, 30_000);
    tcp.resume();
    await Promise.all(pending);
    await waitFor(async () => c.closed !== null, 10_000);
    expect(c.closed?.code).toBe(1013);
    const fresh = await WsLookupClient.connect(wsUrl(), KEYS.dsp1);
    expect((await fresh.lookup({ uid: 'rtb-user-1' })).segments).toEqual([1001, 1002, 2001]);
    await fresh.close();
  });
});

describe('WsLookupClient', () => {
  it('matches answers that come back out of order to their requests', async () => {
    // A uWS server that holds 50 frames, then answers them in reverse order.
    const held: Array<{ id: number; uid: string }> = [];
    const app = uWS.App().ws('/*', {
      message(ws, msg) {
        held.push(unpack(Buffer.from(msg)) as { id: number; uid: string });
        if (held.length === 50)
          for (const f of held.reverse()) ws.send(pack({ id: f.id, segments: [Number(f.uid.slice(1))] }), true);
      },
    });
    const port = await new Promise<number>((r) => app.listen('127.0.0.1', 0, (ls) => r(uWS.us_socket_local_port(ls))));
    try {
      const c = await WsLookupClient.connect(`ws://127.0.0.1:${port}/`);
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.lookup({ uid: `u${i}` })));
      answers.forEach((a, i) => expect(a.segments).toEqual([i]));
      await c.close();
    } finally {
      (app as unknown as { close(): void }).close(); // at runtime, missing from these typings
    }
  });
});
