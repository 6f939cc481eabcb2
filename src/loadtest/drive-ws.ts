// Drives the WebSocket lookup channel (/v1/ws): one socket per connection,
// the partner's bearer key at the upgrade, msgpack frames {id, uid} answered by
// {id, segments} (or {id, error}), pipelined: closed loop keeps `pipeline`
// frames in flight per socket; open loop sends on a fixed schedule, spread
// over the sockets, and counts latency from when each frame was due.
// Uses the `ws` package: Node 20's WebSocket is experimental and, like a
// browser's, cannot send an Authorization header.
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { pack, unpack } from 'msgpackr';
import { Recorder } from './recorder.js';
import type { DriveResult, LoadShape } from './drive-http.js';

export interface WsDriveOptions extends LoadShape {
  url: string;
  partnerKey: string;
  uids: string[];
  /** Closed loop: frames in flight per socket. */
  pipeline: number;
}

export class WsUnavailable extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Sock {
  ws: WebSocket;
  inFlight: Map<number, number>;
  open: boolean;
}

/** Opens one socket; rejects with WsUnavailable when the upgrade is answered with an HTTP status. */
export function openWs(url: string, partnerKey: string, timeoutMs = 5000): Promise<WebSocket> {
  return new Promise((ok, fail) => {
    const ws = new WebSocket(url, {
      headers: partnerKey ? { Authorization: `Bearer ${partnerKey}` } : {},
      perMessageDeflate: false,
      handshakeTimeout: timeoutMs,
    });
    ws.once('open', () => ok(ws));
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      fail(new WsUnavailable(res.statusCode ?? 0, `upgrade answered ${res.statusCode}`));
    });
    ws.once('error', (err) => fail(err));
  });
}

export async function driveWs(o: WsDriveOptions): Promise<DriveResult> {
  const socks: Sock[] = [];
  for (let c = 0; c < o.connections; c++)
    socks.push({ ws: await openWs(o.url, o.partnerKey), inFlight: new Map(), open: true });
  const rec = new Recorder((s) => s >= 200 && s < o.okBelow);
  let measuring = false;
  let stopped = false;
  let sent = 0;
  let nextId = 1;
  let answered = 0;

  const send = (s: Sock, due: number) => {
    if (!s.open) return;
    const id = nextId++;
    s.inFlight.set(id, measuring ? due : -due);
    s.ws.send(pack({ id, uid: o.uids[sent++ % o.uids.length] }));
  };
  const closedLoop = o.rate <= 0;

  for (const s of socks) {
    s.ws.on('message', (data: Buffer) => {
      const now = performance.now();
      let msg: { id?: number; segments?: unknown; error?: { code?: string } };
      try {
        msg = unpack(data) as typeof msg;
      } catch {
        if (measuring) rec.failure('other');
        return;
      }
      const due = msg.id === undefined ? undefined : s.inFlight.get(msg.id);
      if (due === undefined) {
        if (measuring) rec.failure('other');
        return;
      }
      s.inFlight.delete(msg.id!);
      // Negative: sent during warm-up, not counted.
      if (due > 0 && measuring) {
        rec.answer((now - due) * 1000, msg.error ? 0 : 200, msg.error ? `ws:${msg.error.code ?? 'error'}` : undefined);
        if (++answered >= o.maxRequests) stopped = true;
      }
      if (closedLoop && !stopped) send(s, performance.now());
    });
    s.ws.on('close', () => {
      if (s.open && !stopped) rec.failure('connection');
      s.open = false;
    });
    s.ws.on('error', () => {});
  }

  const t0 = performance.now();
  const tMeasure = t0 + o.warmupS * 1000;
  const tEnd = tMeasure + o.durationS * 1000;
  const begin = () => {
    void o.onMeasureStart?.();
    measuring = true;
    rec.start();
  };
  const warmTimer = o.warmupS > 0 ? setTimeout(begin, o.warmupS * 1000) : undefined;
  if (!warmTimer) begin();

  let schedule: NodeJS.Timeout | undefined;
  if (closedLoop) {
    for (const s of socks) for (let k = 0; k < o.pipeline; k++) send(s, performance.now());
  } else {
    const interval = 1000 / o.rate;
    let k = 0;
    let rr = 0;
    // A 1 ms tick sends every frame due by then; latency still counts from each frame's own due time.
    schedule = setInterval(() => {
      const now = performance.now();
      while (!stopped && t0 + k * interval <= now && t0 + k * interval < tEnd) {
        send(socks[rr++ % socks.length]!, t0 + k * interval);
        k++;
      }
    }, 1);
  }

  await new Promise<void>((r) => {
    const check = setInterval(() => {
      if (stopped || performance.now() >= tEnd) {
        clearInterval(check);
        r();
      }
    }, 5);
  });
  stopped = true;
  if (schedule) clearInterval(schedule);
  clearTimeout(warmTimer);
  // Give answers in flight a moment, then count what never came back.
  const grace = Date.now() + Math.min(o.timeoutS * 1000, 2000);
  while (Date.now() < grace && socks.some((s) => s.open && [...s.inFlight.values()].some((d) => d > 0)))
    await new Promise((r) => setTimeout(r, 10));
  rec.stop();
  let lost = 0;
  for (const s of socks) for (const d of s.inFlight.values()) if (d > 0) lost++;
  if (lost) rec.failure('timeouts', lost);
  for (const s of socks) {
    s.open = false;
    s.ws.terminate();
  }
  const info = {
    generator: closedLoop
      ? `ws, closed loop, ${o.connections} sockets × ${o.pipeline} frames in flight`
      : `ws, open loop at ${o.rate} frames/s over ${o.connections} sockets`,
    latencySource: 'WebSocket client, µs, frame sent (open loop: due) to answer',
  };
  return { info, figures: rec.figures() };
}
