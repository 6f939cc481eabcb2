// Every uWS callback runs inside a guard: an exception becomes an error answer
// (500 INTERNAL, or a 1011 close on a WebSocket), logged with where it
// happened — never a dead worker. It matters more than usual here: uWS
// terminates the whole process when a route handler returns (or throws)
// without answering, and a worker thread that dies with uWS sockets open
// aborts Node.
//
// Handlers are synchronous, so "the request being handled now" is a plain
// module variable: the route table sets it before each handler, and what the
// handler opens (pending.ts) reads it — the route's budget and its name for
// the logs — with no per-request allocation.
import type { HttpRequest, HttpResponse, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import type { Logger } from '../log.js';
import type { HttpMetrics } from '../metrics/http.js';
import type { Budget } from './admission.js';
import type { Pending } from './pending.js';
import { sendError } from './respond.js';

export interface RouteContext {
  readonly route: string;
  readonly method: string;
  /** What a request of this route waiting on a body or another thread counts against. */
  readonly budget: Budget;
  /** Refuse (503) when the budget is full; lookup routes shed themselves (204) instead. */
  readonly shed: boolean;
  readonly log: Logger;
  /** Counts what the guards end (segd_http_guarded_total); absent in tools that build bare apps. */
  readonly metrics?: HttpMetrics;
}

export type Handler = (res: HttpResponse, req: HttpRequest) => void;

let current: RouteContext | null = null;
let opened: Pending | null = null;
let corked: HttpResponse | null = null;

/**
 * The response whose uWS callback (its handler, or its onData) runs now: uWS
 * corks that socket for the callback, so an answer written there needs no
 * res.cork of its own (pending.ts).
 */
export function corkedResponse(): HttpResponse | null {
  return corked;
}

/** Marks `res` as the corked one for a uWS callback of it; returns the mark to put back when it ends. */
export function enterCallback(res: HttpResponse | null): HttpResponse | null {
  const outer = corked;
  corked = res;
  return outer;
}

/** The route whose handler runs now (null outside a handler). */
export function currentRoute(): RouteContext | null {
  return current;
}

/** The pending answer the running handler opened, if any (read by readBody, which belongs to it). */
export function openedPending(): Pending | null {
  return opened;
}

export function setOpenedPending(p: Pending): void {
  if (current !== null) opened = p;
}

/** Logs a failed request and ends `res` with 500, unless it was answered or aborted already (uWS throws on any access then). */
export function answerFailure(res: HttpResponse, err: unknown, ctx: RouteContext | null, url?: string): void {
  logFailure(err, ctx, url);
  ctx?.metrics?.guarded('failed');
  try {
    // Close: whatever was half-written or left unread on the wire goes with the connection.
    res.cork(() => sendError(res, 'INTERNAL', undefined, true));
  } catch {
    /* answered or aborted already: never a second answer */
  }
}

export function logFailure(err: unknown, ctx: RouteContext | null, url?: string): void {
  try {
    const log = ctx?.log;
    log?.error({ err, route: ctx?.route, method: ctx?.method, url }, 'request failed');
  } catch {
    /* a logger that throws must not turn a failed request into a dead worker */
  }
}

/** The route table's wrapper: budget check, then the handler inside a try. No closure per request. */
export function guardRoute(ctx: RouteContext, handler: Handler): Handler {
  const { budget, shed } = ctx;
  return (res, req) => {
    if (shed && budget.n >= budget.max) {
      // The body, if any, is left unread: close.
      sendError(res, 'OVERLOADED', budget.name, true);
      ctx.metrics?.guarded('overloaded');
      return;
    }
    current = ctx;
    opened = null;
    corked = res;
    try {
      handler(res, req);
    } catch (err) {
      // req is still valid here: the catch runs inside uWS's call of the handler.
      let url: string | undefined;
      try {
        url = req.getUrl().slice(0, 200);
      } catch {
        url = undefined;
      }
      const p = openedPending();
      if (p !== null && p.owns(res)) p.fail(err, url);
      else answerFailure(res, err, ctx, url);
    } finally {
      current = null;
      opened = null;
      corked = null;
    }
  };
}

const WS_INTERNAL_ERROR = 1011;

/** The same for the WebSocket channel: a throw closes that connection with 1011, the worker goes on. */
export function guardWs<T>(
  behavior: WebSocketBehavior<T>,
  log: Logger,
  route: string,
  metrics?: HttpMetrics,
): WebSocketBehavior<T> {
  const fail = (err: unknown, where: string, ws: WebSocket<T> | null) => {
    logFailure(err, { route, method: `ws ${where}`, log } as RouteContext);
    metrics?.guarded('failed');
    if (ws === null) return;
    try {
      ws.end(WS_INTERNAL_ERROR, 'internal error');
    } catch {
      /* already closed */
    }
  };
  const out: WebSocketBehavior<T> = { ...behavior };
  const { upgrade, open, message, drain, close, ping, pong, subscription } = behavior;
  if (upgrade) {
    out.upgrade = (res, req, context) => {
      try {
        void upgrade(res, req, context);
      } catch (err) {
        answerFailure(res, err, { route, method: 'ws upgrade', log, metrics } as RouteContext);
      }
    };
  }
  if (open)
    out.open = (ws) => {
      try {
        void open(ws);
      } catch (err) {
        fail(err, 'open', ws);
      }
    };
  if (message)
    out.message = (ws, m, b) => {
      try {
        void message(ws, m, b);
      } catch (err) {
        fail(err, 'message', ws);
      }
    };
  if (drain)
    out.drain = (ws) => {
      try {
        drain(ws);
      } catch (err) {
        fail(err, 'drain', ws);
      }
    };
  // Closed already: only logged.
  if (close)
    out.close = (ws, code, m) => {
      try {
        close(ws, code, m);
      } catch (err) {
        fail(err, 'close', null);
      }
    };
  if (ping)
    out.ping = (ws, m) => {
      try {
        ping(ws, m);
      } catch (err) {
        fail(err, 'ping', ws);
      }
    };
  if (pong)
    out.pong = (ws, m) => {
      try {
        pong(ws, m);
      } catch (err) {
        fail(err, 'pong', ws);
      }
    };
  if (subscription)
    out.subscription = (ws, t, n, o) => {
      try {
        subscription(ws, t, n, o);
      } catch (err) {
        fail(err, 'subscription', ws);
      }
    };
  return out;
}
