// /v1/admin/destinations[/:id] — where membership changes are pushed
// (docs/outbound.md). Admin bearer key required. Reads, replays and resyncs
// are answered by the sender on the writer's thread (it holds the delivery state);
// changes go through the registry like partners', every worker reloading
// before the answer.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { sendError, sendBody, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';
import { PARTNER_ID } from '../../partners/validate.js';
import type { RegistryOp } from '../../partners/admin.js';
import type { OutboundQuery } from '../../outbound/admin.js';
import { adminRoute, readAdminJson, type Done } from '../admin-route.js';
import { answerRegistryChange } from './admin.js';

type Handler = (res: HttpResponse, req: HttpRequest) => void;

export function destinationRoutes(deps: AppDeps): {
  list: Handler;
  get: Handler;
  put: Handler;
  del: Handler;
  replay: Handler;
  resync: Handler;
} {
  /** The path's id, or an error already sent. */
  const idOf = (res: HttpResponse, req: HttpRequest, done: Done, unreadBody = false): string | null => {
    const raw = req.getParameter(0) ?? '';
    if (PARTNER_ID.test(raw)) return raw;
    done(sendError(res, 'BAD_DESTINATION_ID', undefined, unreadBody));
    return null;
  };

  const ask = (res: HttpResponse, done: Done, q: OutboundQuery, p = pending(res, deps.inflight)) => {
    deps.outbound(q).then(
      (a) =>
        p.settle(() =>
          a === null
            ? done(sendError(res, 'NO_SUCH_DESTINATION'))
            : done(sendBody(res, 200, JSON_TYPE, JSON.stringify(a))),
        ),
      (err: unknown) => {
        deps.log.error({ err, op: q.op }, 'outbound request failed');
        p.settle(() => done(sendError(res, 'INTERNAL', 'outbound request failed')));
      },
    );
  };

  const change = (res: HttpResponse, done: Done, op: RegistryOp, p = pending(res, deps.inflight)) =>
    answerRegistryChange(deps, res, done, op, p);

  return {
    list: adminRoute(deps, 'admin', (res, _req, done) => ask(res, done, { op: 'list' })),
    get: adminRoute(deps, 'admin', (res, req, done) => {
      const id = idOf(res, req, done);
      if (id !== null) ask(res, done, { op: 'get', id });
    }),
    replay: adminRoute(deps, 'admin', (res, req, done) => {
      const id = idOf(res, req, done, true);
      if (id !== null) ask(res, done, { op: 'replay', id });
    }),
    resync: adminRoute(deps, 'admin', (res, req, done) => {
      const id = idOf(res, req, done, true);
      if (id !== null) ask(res, done, { op: 'resync', id });
    }),
    del: adminRoute(deps, 'admin', (res, req, done) => {
      const id = idOf(res, req, done);
      if (id !== null) change(res, done, { kind: 'deleteDestination', id });
    }),
    put: adminRoute(
      deps,
      'admin',
      (res, req, done) => {
        const id = idOf(res, req, done, true);
        if (id === null) return;
        readAdminJson(deps, res, req, done, (body, p) => change(res, done, { kind: 'putDestination', id, body }, p));
      },
      true,
    ),
  };
}
