// /v1/ws — the persistent lookup channel for ad servers that keep connections
// open. Frames are msgpack maps both ways:
//   → {id, uid} | {id, puid} | {id, ifa}      (id: a number or a short string)
//   ← {id, segments: [..]}                    (licensed segments, ascending)
//   ← {id, segments: [], shed: true}          (overloaded: empty at once)
//   ← {id, error: {code, message}}            (a bad frame; the connection stays)
// Many frames may be in flight; answers carry the request's id and may come
// in any order (today lookups are synchronous, so they come in order).
// Auth is the partner's bearer key at upgrade; a key revoked or rotated out
// later closes the connection at its next frame (4401).
// Backpressure: past WS_HIGH_WATER bytes unsent, frames are no longer answered
// but held (copied) in a per-connection queue that `drain` works off once the
// client has read enough; the queue is capped (WS_MAX_QUEUED_BYTES), past it
// the connection is closed with 1013 (try again later). So a client that does
// not read its answers costs at most high water + queue cap, never more.
// (This uWS build has no WebSocket pause(); with it, we would stop reading.)
import { performance } from 'node:perf_hooks';
import { hash } from 'node:crypto';
import uWS, { type WebSocket, type WebSocketBehavior } from 'uWebSockets.js';
import { pack, unpack } from 'msgpackr';
import type { AppDeps } from '../deps.js';
import { ANONYMOUS } from '../../lookup/licences.js';
import { checkUid } from '../../identity/uid.js';
import { nowSeconds } from '../../lookup/segments.js';
import { ReadPath } from '../../lookup/read.js';
import { ERRORS, errorBody, statusLine, type ErrorCode } from '../../errors.js';

const WS_HIGH_WATER = 256 * 1024;
const WS_LOW_WATER = WS_HIGH_WATER / 4;
const WS_MAX_QUEUED_BYTES = 1024 * 1024;
/** uWS drops (and we close) past this; holding frames at the high water keeps us far below it. */
const WS_MAX_BACKPRESSURE = 16 * WS_HIGH_WATER;
/** Close code when a client's unanswered frames pass the queue cap. */
const WS_CLOSE_NOT_READING = 1013;
const MAX_ID_CHARS = 64;
/** Close code of a connection whose key stopped being valid. */
const WS_CLOSE_REVOKED = 4401;

interface Conn {
  /** '' = anonymous. */
  partner: string;
  /** sha256 hex of the key used at upgrade, re-checked when the registry changes. */
  digest: string;
  registryVersion: number;
  /** Frames held while the client is not reading (copies), and their bytes. */
  queue: Buffer[];
  queuedBytes: number;
}

export function wsBehavior(deps: AppDeps): WebSocketBehavior<Conn> {
  const { config, metrics, registry, licences, callers, admission, resolver, lookup, graph } = deps;
  const m = metrics.route('ws');
  const reader = new ReadPath(lookup, graph, metrics);
  const maxUid = config.maxUidBytes;
  const errorFrames = new Map<ErrorCode, { code: ErrorCode; message: string }>();
  const frameError = (code: ErrorCode) => {
    let e = errorFrames.get(code);
    if (e === undefined) errorFrames.set(code, (e = { code, message: ERRORS[code].message }));
    return e;
  };

  function send(ws: WebSocket<Conn>, frame: object): void {
    ws.send(pack(frame), true);
  }

  /** False (and the socket closing) when the key used at upgrade is no longer valid. */
  function stillValid(ws: WebSocket<Conn>, c: Conn): boolean {
    if (c.registryVersion === registry.version) return true;
    if (c.partner !== '') {
      const p = registry.partner(c.partner);
      if (p === undefined || p.disabled || !p.keyDigests.includes(c.digest)) {
        ws.end(WS_CLOSE_REVOKED, 'key no longer valid');
        return false;
      }
    }
    c.registryVersion = registry.version;
    return true;
  }

  return {
    compression: uWS.DISABLED,
    maxPayloadLength: config.wsMaxPayload,
    idleTimeout: config.wsIdleSeconds,
    sendPingsAutomatically: true,
    maxBackpressure: WS_MAX_BACKPRESSURE,
    closeOnBackpressureLimit: 1,

    upgrade(res, req, context) {
      // req is only valid now: everything is read synchronously, no await here.
      const authorization = req.getHeader('authorization');
      const licence = callers.licence(authorization);
      if (licence === null) {
        res
          .writeStatus(statusLine(401))
          .writeHeader('Content-Type', 'application/json')
          .end(errorBody('UNAUTHORIZED'), true);
        return;
      }
      const conn: Conn = {
        partner: licence.partner,
        digest: licence === ANONYMOUS ? '' : hash('sha256', authorization.slice(7).trim(), 'hex'),
        registryVersion: registry.version,
        queue: [],
        queuedBytes: 0,
      };
      res.upgrade(
        conn,
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },

    open() {
      metrics.wsConnections(1);
    },

    close() {
      metrics.wsConnections(-1);
    },

    drain(ws) {
      const c = ws.getUserData();
      if (c.queue.length === 0 || ws.getBufferedAmount() > WS_LOW_WATER) return;
      // Answer held frames until the high water again (the rest wait for the next drain).
      let i = 0;
      ws.cork(() => {
        while (i < c.queue.length && ws.getBufferedAmount() <= WS_HIGH_WATER) {
          const b = c.queue[i++]!;
          c.queuedBytes -= b.length;
          if (!answer(ws, c, b)) break;
        }
      });
      c.queue.splice(0, i);
    },

    message(ws, message) {
      const c = ws.getUserData();
      if (c.queue.length > 0 || ws.getBufferedAmount() > WS_HIGH_WATER) {
        // The client is not reading: hold the frame (the ArrayBuffer is only ours until we return).
        if (c.queue.length === 0) metrics.wsPaused();
        if (c.queuedBytes + message.byteLength > WS_MAX_QUEUED_BYTES) {
          ws.end(WS_CLOSE_NOT_READING, 'too many unanswered frames: read the answers');
          return;
        }
        c.queue.push(Buffer.from(new Uint8Array(message)));
        c.queuedBytes += message.byteLength;
        return;
      }
      answer(ws, c, Buffer.from(message));
    },
  };

  /** Answers one frame; false when the connection was closed instead. */
  function answer(ws: WebSocket<Conn>, c: Conn, buf: Buffer): boolean {
    const t0 = performance.now();
    if (!stillValid(ws, c)) return false;
    let frame: unknown;
    try {
      frame = unpack(buf);
    } catch {
      send(ws, { id: null, error: frameError('BAD_MSGPACK') });
      m.observe(400, (performance.now() - t0) / 1000);
      return true;
    }
    const f = (frame !== null && typeof frame === 'object' && !Array.isArray(frame) ? frame : {}) as Record<
      string,
      unknown
    >;
    const id = f.id;
    if (!(typeof id === 'number' || (typeof id === 'string' && id.length <= MAX_ID_CHARS))) {
      send(ws, { id: null, error: frameError('BAD_FRAME') });
      m.observe(400, (performance.now() - t0) / 1000);
      return true;
    }
    const key = f.uid ?? f.puid ?? f.ifa;
    const problem = key === undefined ? 'BAD_FRAME' : checkUid(key, maxUid);
    if (problem !== null) {
      send(ws, { id, error: frameError(problem) });
      m.observe(400, (performance.now() - t0) / 1000);
      return true;
    }
    if (admission.overloaded()) {
      metrics.shed('ws', 'overload');
      send(ws, { id, segments: [], shed: true });
      m.observe(204, (performance.now() - t0) / 1000);
      return true;
    }
    const licence = c.partner === '' ? ANONYMOUS : licences.of(c.partner);
    const uid =
      f.uid !== undefined
        ? (f.uid as string)
        : resolver.resolve({ partner: c.partner || null, buyeruid: f.puid, ifa: f.ifa });
    // The same read as every route; answers carry segments only, never a uid.
    const n = reader.read(uid, licence, nowSeconds());
    send(ws, { id, segments: Array.from(reader.ids.subarray(0, n)) });
    metrics.wsFrame();
    m.observe(200, (performance.now() - t0) / 1000);
    return true;
  }
}
