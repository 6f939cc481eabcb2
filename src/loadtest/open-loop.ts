// The µs load loop: raw keep-alive HTTP/1.1 sockets, one request in flight per
// socket (no pipelining), every latency recorded in µs (hdr-histogram-js):
// autocannon reports whole milliseconds only, and a p99 of "1 ms" from a
// ms-resolution histogram says nothing. Open loop on a fixed schedule (latency
// from when each request was due), or closed loop to learn how much it can
// drive. open-loop-client.ts runs it as its own process, so the caller's heap
// and GC pauses stay out of the figures.
import { performance } from 'node:perf_hooks';
import type { Histogram } from 'hdr-histogram-js';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { usHistogram, percentilesOf as latencyOf, type Percentiles as Latency } from './recorder.js';

export interface LoopOptions {
  host: string;
  port: number;
  /** Request paths (GET), cycled in order; or `requests`. */
  paths: string[];
  /** Whole HTTP/1.1 requests (see `rawRequest`), cycled in order; used instead of `paths` when given. */
  requests?: Buffer[];
  /** Called for every answer in the measured window (latency from the scheduled send, in µs). */
  onAnswer?: (latencyUs: number, status: number) => void;
  /** Called once per connection lost (error or close by the server). */
  onConnectionLost?: (why: string) => void;
  connections: number;
  /** Requests per second on a fixed schedule; 0 = closed loop. */
  rate: number;
  warmupMs: number;
  durationMs: number;
}

export interface LoopResult {
  /** Answers to requests scheduled (open loop) or sent (closed loop) inside the measured window. */
  completed: number;
  seconds: number;
  /** Connection errors and closes. */
  errors: number;
  non2xx: number;
  /** Requests never answered (connection lost, no answer 5 s after the end, or in open loop never sent by then). */
  lost: number;
  /** From the scheduled send time (open loop: includes waiting for a free connection). */
  latency: Histogram;
  /** From the actual send time. */
  service: Histogram;
  /** How late requests went out relative to the schedule (the client's own health). */
  sendLag: Histogram;
}

export interface LoopSummary {
  rate: number;
  connections: number;
  completed: number;
  seconds: number;
  rps: number;
  errors: number;
  non2xx: number;
  lost: number;
  latencyUs: Latency;
  serviceUs: Latency;
  sendLagUs: Latency;
}

const newHistogram = () => usHistogram(3);

interface Conn {
  sock: Socket;
  dead: boolean;
  busy: boolean;
  intended: number;
  sentAt: number;
  pending: Buffer | null;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;

/** GET requests for `paths`, in one buffer; a socket write takes a view of it. */
function getRequests(host: string, paths: string[]): Buffer[] {
  const texts = paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  const all = Buffer.from(texts.join(''), 'latin1');
  const offsets = new Uint32Array(texts.length + 1);
  for (let i = 0; i < texts.length; i++) offsets[i + 1] = offsets[i]! + texts[i]!.length;
  return texts.map((_, i) => all.subarray(offsets[i]!, offsets[i + 1]!));
}

/** Requests for --requests FILE: each one a u32 (big-endian) length, then its bytes. */
export function writeRequests(file: string, reqs: Buffer[]): void {
  const parts: Buffer[] = [];
  for (const r of reqs) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(r.length);
    parts.push(len, r);
  }
  writeFileSync(file, Buffer.concat(parts));
}

export function readRequests(file: string): Buffer[] {
  const all = readFileSync(file);
  const out: Buffer[] = [];
  for (let at = 0; at + 4 <= all.length;) {
    const n = all.readUInt32BE(at);
    out.push(all.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

/** One keep-alive HTTP/1.1 request, encoded once. */
export function rawRequest(
  host: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Buffer {
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  const b = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
  if (b) head += `Content-Length: ${b.length}\r\n`;
  head += '\r\n';
  return b ? Buffer.concat([Buffer.from(head, 'latin1'), b]) : Buffer.from(head, 'latin1');
}

/**
 * Open loop (`rate` > 0): request k is due at t0 + k/rate and goes out on the
 * next idle connection (FIFO, so every socket stays warm); when none is idle it
 * waits, and its latency still counts from when it was due (no coordinated
 * omission). The schedule is kept by spinning on setImmediate, so sends are not
 * bunched into 1 ms timer ticks (this keeps one core busy: the generator's).
 * Closed loop (`rate` = 0): each socket sends its next request as soon as the
 * answer arrives.
 */
export async function driveLoop(o: LoopOptions): Promise<LoopResult> {
  const latency = newHistogram();
  const service = newHistogram();
  const sendLag = newHistogram();
  const res: LoopResult = {
    completed: 0,
    seconds: o.durationMs / 1000,
    errors: 0,
    non2xx: 0,
    lost: 0,
    latency,
    service,
    sendLag,
  };

  const reqs = o.requests ?? getRequests(o.host, o.paths);
  const nReq = reqs.length;
  const onAnswerHook = o.onAnswer;

  const conns: Conn[] = await Promise.all(
    Array.from(
      { length: o.connections },
      () =>
        new Promise<Conn>((ok, fail) => {
          const sock = connect({ host: o.host, port: o.port, noDelay: true });
          sock.once('connect', () => {
            sock.off('error', fail);
            ok({ sock, dead: false, busy: false, intended: 0, sentAt: 0, pending: null });
          });
          sock.once('error', fail);
        }),
    ),
  );

  const openLoop = o.rate > 0;
  const interval = openLoop ? 1000 / o.rate : 0;
  let t0 = 0;
  let measureFrom = 0;
  let measureTo = 0;
  let totalK = 0;
  let nextK = 0;
  const idle: Conn[] = [];
  let idleHead = 0;
  let inFlight = 0;
  let finished = false;
  let finish!: () => void;
  const allDone = new Promise<void>((r) => (finish = r));
  const us = (ms: number) => Math.max(1, Math.round(ms * 1000));

  const send = (c: Conn, k: number, intended: number, now: number) => {
    c.busy = true;
    c.intended = intended;
    c.sentAt = now;
    inFlight++;
    if (intended >= measureFrom && intended < measureTo) sendLag.recordValue(us(now - intended));
    c.sock.write(reqs[k % nReq]!);
  };
  const dueCount = (now: number) => Math.min(totalK, Math.floor((now - t0) / interval) + 1);
  const takeIdle = (): Conn | undefined => {
    while (idleHead < idle.length) {
      const c = idle[idleHead++]!;
      if (idleHead > 4096 && idleHead * 2 > idle.length) {
        idle.splice(0, idleHead);
        idleHead = 0;
      }
      if (!c.dead) return c;
    }
    return undefined;
  };
  const maybeFinish = () => {
    if (!finished && inFlight === 0 && (openLoop ? nextK >= totalK : performance.now() >= measureTo)) {
      finished = true;
      finish();
    }
  };
  const onAnswer = (c: Conn, status: number) => {
    const now = performance.now();
    c.busy = false;
    inFlight--;
    if (c.intended >= measureFrom && c.intended < measureTo) {
      res.completed++;
      if (status < 200 || status > 299) res.non2xx++;
      latency.recordValue(us(now - c.intended));
      onAnswerHook?.((now - c.intended) * 1000, status);
      service.recordValue(us(now - c.sentAt));
    }
    if (openLoop) {
      if (nextK < dueCount(now)) {
        send(c, nextK, t0 + nextK * interval, now);
        nextK++;
      } else {
        idle.push(c);
      }
    } else if (now < measureTo) {
      send(c, nextK++, now, now);
    }
    maybeFinish();
  };
  const lose = (c: Conn, why: string) => {
    if (c.dead) return;
    c.dead = true;
    res.errors++;
    if (c.busy) {
      c.busy = false;
      inFlight--;
      res.lost++;
    }
    if (o.onConnectionLost) o.onConnectionLost(why);
    else if (res.errors <= 3) process.stderr.write(`open-loop-client: connection lost (${why})\n`);
    c.sock.destroy();
    maybeFinish();
  };

  for (const c of conns) {
    c.sock.on('data', (chunk: Buffer) => {
      let buf = c.pending ? Buffer.concat([c.pending, chunk]) : chunk;
      for (;;) {
        const end = buf.indexOf(HEADER_END);
        if (end < 0) break;
        const m = CONTENT_LENGTH.exec(buf.toString('latin1', 0, end));
        if (!m) return lose(c, 'answer without content-length');
        const total = end + 4 + Number(m[1]);
        if (buf.length < total) break;
        const status = (buf[9]! - 48) * 100 + (buf[10]! - 48) * 10 + (buf[11]! - 48);
        buf = buf.subarray(total);
        if (!c.busy) return lose(c, 'answer to no request');
        onAnswer(c, status);
      }
      c.pending = buf.length ? buf : null;
    });
    c.sock.on('error', (err) => lose(c, err.message));
    c.sock.on('close', () => lose(c, 'closed by the server'));
  }

  t0 = performance.now();
  measureFrom = t0 + o.warmupMs;
  measureTo = measureFrom + o.durationMs;
  if (openLoop) {
    totalK = Math.ceil(((o.warmupMs + o.durationMs) / 1000) * o.rate);
    for (const c of conns) idle.push(c);
    const SPIN_MS = 0.2;
    const tick = () => {
      if (finished) return;
      let now = performance.now();
      const spinUntil = now + SPIN_MS;
      for (;;) {
        const due = dueCount(now);
        while (nextK < due) {
          const c = takeIdle();
          if (!c) break;
          send(c, nextK, t0 + nextK * interval, now);
          nextK++;
        }
        if (nextK >= totalK) return maybeFinish();
        // Nothing in flight means no answer can be waiting: wait for the next
        // due time here instead of going round the event loop, which
        // allocates per turn and so brings GC pauses into the figures.
        if (inFlight > 0 || now >= spinUntil) break;
        now = performance.now();
      }
      setImmediate(tick);
    };
    setImmediate(tick);
  } else {
    for (const c of conns) send(c, nextK++, t0, t0);
    setTimeout(maybeFinish, o.warmupMs + o.durationMs + 1);
  }

  const deadline = setTimeout(
    () => {
      if (finished) return;
      for (const c of conns) {
        if (!c.busy) continue;
        res.lost++;
        c.busy = false;
        inFlight--;
      }
      // Requests still waiting for a free connection (a server slower than the rate) were never sent: lost too.
      if (openLoop) res.lost += Math.max(0, totalK - nextK);
      finished = true;
      finish();
    },
    o.warmupMs + o.durationMs + 5000,
  );
  await allDone;
  clearTimeout(deadline);
  for (const c of conns) {
    c.dead = true;
    c.sock.removeAllListeners('close');
    c.sock.destroy();
  }
  return res;
}

export function summarize(o: LoopOptions, r: LoopResult): LoopSummary {
  return {
    rate: o.rate,
    connections: o.connections,
    completed: r.completed,
    seconds: r.seconds,
    rps: r.completed / r.seconds,
    errors: r.errors,
    non2xx: r.non2xx,
    lost: r.lost,
    latencyUs: latencyOf(r.latency),
    serviceUs: latencyOf(r.service),
    sendLagUs: latencyOf(r.sendLag),
  };
}
