// The shape every admin-keyed route shares: 401 without an admin key, the
// answer's status and time recorded under the route's label, and work done
// off this thread answered when it settles (a failure logged with context,
// answered 500).
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from './deps.js';
import type { Route } from '../metrics/http.js';
import { BearerKeys } from './auth.js';
import { sendBody, sendError, JSON_TYPE } from './respond.js';
import { pending, type Pending } from './pending.js';
import { readBody } from './body.js';
import { parseJson } from '../codec/json.js';

/** Records an answer's status (and the time since the request came in). */
export type Done = (status: number) => void;

export function adminRoute(
  deps: AppDeps,
  label: Route,
  handle: (res: HttpResponse, req: HttpRequest, done: Done) => void,
  /** The request carries a body: a refusal closes the connection rather than leave the body unread. */
  withBody = false,
): (res: HttpResponse, req: HttpRequest) => void {
  const keys = new BearerKeys(deps.config.adminKeys);
  const m = deps.metrics.route(label);
  return (res, req) => {
    const t0 = performance.now();
    const done: Done = (st) => m.observe(st, (performance.now() - t0) / 1000);
    if (!keys.allows(req.getHeader('authorization'))) return done(sendError(res, 'UNAUTHORIZED', undefined, withBody));
    handle(res, req, done);
  };
}

/** Answers `work`'s JSON text with 200 once it settles; a failure is logged with `context` and answered 500. */
export function answerLater(
  res: HttpResponse,
  deps: AppDeps,
  done: Done,
  work: Promise<string>,
  context: Record<string, unknown> & { what: string },
): void {
  const p = pending(res, deps.inflight);
  work.then(
    (text) => p.settle(() => done(sendBody(res, 200, JSON_TYPE, text))),
    (err: unknown) => {
      deps.log.error({ err, ...context }, `${context.what} failed`);
      p.settle(() => done(sendError(res, 'INTERNAL', `${context.what} failed`)));
    },
  );
}

/**
 * The JSON body of an admin record's PUT: 415 unless JSON, 413 past
 * SEGD_MAX_BODY_BYTES, 400 unless it parses; otherwise `use` gets it and the
 * pending answer (refusals close the connection: the body may be unread).
 */
export function readAdminJson(
  deps: AppDeps,
  res: HttpResponse,
  req: HttpRequest,
  done: Done,
  use: (body: unknown, p: Pending) => void,
): void {
  if (!req.getHeader('content-type').startsWith('application/json'))
    return done(sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'admin records are application/json', true));
  const p = pending(res, deps.inflight);
  readBody(res, req.getHeader('content-length'), deps.config.maxBodyBytes, (r) => {
    if (!r.ok) return p.settle(() => done(sendError(res, 'BODY_TOO_LARGE', undefined, true)));
    let body: unknown;
    try {
      body = parseJson(r.body);
    } catch (err) {
      return p.settle(() => done(sendError(res, 'BAD_JSON', (err as Error).message.slice(0, 200))));
    }
    use(body, p);
  });
}
