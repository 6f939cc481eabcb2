// Writing answers with uWebSockets.js. Constant bodies and status lines are
// built once. Callers inside a synchronous handler write directly; after any
// async step they go through `pending` (pending.ts), which corks the answer.
import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, errorBody, statusLine, type ErrorCode } from '../errors.js';

// Header names and values as bytes, encoded once: uWS takes them as they are,
// where a JS string is converted on every call. Measured with wrk, segd pinned
// to one core, alternating in one run: 159k → 165–168k req/s on a stripped
// lookup handler, 151.5k → 153.5k on the whole lookup path.
export const CT = Buffer.from('Content-Type');
export const JSON_TYPE = Buffer.from('application/json');
export const MSGPACK_TYPE = Buffer.from('application/msgpack');
export const TEXT_TYPE = Buffer.from('text/plain; charset=utf-8');
export const ALLOW_ORIGIN = Buffer.from('Access-Control-Allow-Origin');
export const ANY_ORIGIN = Buffer.from('*');
const NO_BODY = Buffer.alloc(0);

const ERROR_BODIES = new Map<ErrorCode, string>((Object.keys(ERRORS) as ErrorCode[]).map((c) => [c, errorBody(c)]));
const STATUS_LINES = new Map<number, string>();
export function status(code: number): string {
  let s = STATUS_LINES.get(code);
  if (s === undefined) STATUS_LINES.set(code, (s = statusLine(code)));
  return s;
}

export interface Outcome {
  status: number;
}

/**
 * Ends `res` with a JSON error. `close` asks uWS to close the connection after
 * the answer (used when an unread body is left on the wire, or while draining).
 */
export function sendError(res: HttpResponse, code: ErrorCode, detail?: string, close = false): number {
  const st = ERRORS[code].status;
  res
    .writeStatus(status(st))
    .writeHeader(CT, JSON_TYPE)
    .end(detail ? errorBody(code, detail) : ERROR_BODIES.get(code)!, close);
  return st;
}

export function sendBody(
  res: HttpResponse,
  st: number,
  type: string | Uint8Array,
  body: string | Uint8Array,
  close = false,
): number {
  if (st !== 200) res.writeStatus(status(st));
  res.writeHeader(CT, type).end(body, close);
  return st;
}

const EMPTY = Buffer.from('X-Segd-Empty');
const NO_CONTENT = Buffer.from(statusLine(204));
/** Reasons as bytes, encoded on first use (a handful: the routes' outcomes). */
const REASONS = new Map<string, Buffer>();

/** 204: the "empty answer now" of shed lookups and declined enrichments; `reason` goes in X-Segd-Empty. */
export function sendEmpty(res: HttpResponse, reason: string, close = false): number {
  let r = REASONS.get(reason);
  if (r === undefined) REASONS.set(reason, (r = Buffer.from(reason)));
  // end(''), not endWithoutBody(): the latter does not end a request whose body is unread (uWS aborts).
  res.writeStatus(NO_CONTENT).writeHeader(EMPTY, r).end(NO_BODY, close);
  return 204;
}
