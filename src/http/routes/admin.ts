// /v1/admin/partners[/:id] and /v1/admin/segments[/:id] — the partners
// registry and the taxonomy. Admin bearer key required. Reads come from this
// worker's in-memory Registry; writes go to the writer thread, and every
// worker has reloaded before the answer is sent.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { BearerKeys } from '../auth.js';
import { sendError, sendBody, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';
import { readAdminJson } from '../admin-route.js';
import { ERRORS } from '../../errors.js';
import { PARTNER_ID } from '../../partners/validate.js';
import { publicPartner, type RegistryOp } from '../../partners/admin.js';

type Handler = (res: HttpResponse, req: HttpRequest) => void;
type Kind = 'partners' | 'segments';

export interface AdminRoutes {
  list(kind: Kind): Handler;
  get(kind: Kind): Handler;
  put(kind: Kind): Handler;
  del(kind: Kind): Handler;
}

export function adminRoutes(deps: AppDeps): AdminRoutes {
  const keys = new BearerKeys(deps.config.adminKeys);
  const m = deps.metrics.route('admin');
  const { registry } = deps;

  /** Checks the key; returns a finisher that records the outcome, or null when refused. */
  const begin = (res: HttpResponse, req: HttpRequest, unreadBody: boolean) => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    if (!keys.allows(req.getHeader('authorization'))) {
      done(sendError(res, 'UNAUTHORIZED', undefined, unreadBody));
      return null;
    }
    return done;
  };

  /** The path's id, or an error already sent. */
  const idOf = (
    kind: Kind,
    res: HttpResponse,
    req: HttpRequest,
    done: (st: number) => void,
    unreadBody: boolean,
  ): string | number | null => {
    const raw = req.getParameter(0);
    if (kind === 'partners') {
      if (PARTNER_ID.test(raw)) return raw;
      done(sendError(res, 'BAD_PARTNER_ID', undefined, unreadBody));
    } else {
      if (/^\d{1,10}$/.test(raw) && Number(raw) <= 0xffff_ffff) return Number(raw);
      done(sendError(res, 'BAD_SEGMENT', undefined, unreadBody));
    }
    return null;
  };

  const segmentView = (id: number) => {
    const s = registry.segment(id);
    return s ? { ...s, members: registry.memberCount(id) } : undefined;
  };

  const change = (res: HttpResponse, done: (st: number) => void, op: RegistryOp, p = pending(res, deps.inflight)) =>
    answerRegistryChange(deps, res, done, op, p);

  return {
    list: (kind) => (res, req) => {
      const done = begin(res, req, false);
      if (!done) return;
      const items =
        kind === 'partners'
          ? registry.partners().map(publicPartner)
          : registry.segments().map((s) => segmentView(s.id));
      done(sendBody(res, 200, JSON_TYPE, JSON.stringify({ [kind]: items })));
    },
    get: (kind) => (res, req) => {
      const done = begin(res, req, false);
      if (!done) return;
      const id = idOf(kind, res, req, done, false);
      if (id === null) return;
      const item = kind === 'partners' ? registry.partner(id as string) : segmentView(id as number);
      if (!item) return done(sendError(res, kind === 'partners' ? 'NO_SUCH_PARTNER' : 'NO_SUCH_SEGMENT'));
      done(sendBody(res, 200, JSON_TYPE, JSON.stringify(kind === 'partners' ? publicPartner(item as never) : item)));
    },
    put: (kind) => (res, req) => {
      const done = begin(res, req, true);
      if (!done) return;
      const id = idOf(kind, res, req, done, true);
      if (id === null) return;
      readAdminJson(deps, res, req, done, (body, p) =>
        change(
          res,
          done,
          kind === 'partners'
            ? { kind: 'putPartner', id: id as string, body }
            : { kind: 'putSegment', id: id as number, body },
          p,
        ),
      );
    },
    del: (kind) => (res, req) => {
      const done = begin(res, req, false);
      if (!done) return;
      const id = idOf(kind, res, req, done, false);
      if (id === null) return;
      change(
        res,
        done,
        kind === 'partners' ? { kind: 'deletePartner', id: id as string } : { kind: 'deleteSegment', id: id as number },
      );
    },
  };
}

/** Applies a registry change on the writer's thread and answers it: 201/200 with the record, 204, or the refusal with its problems. */
export function answerRegistryChange(
  deps: AppDeps,
  res: HttpResponse,
  done: (st: number) => void,
  op: RegistryOp,
  p: ReturnType<typeof pending>,
): void {
  deps.changeRegistry(op).then(
    (r) =>
      p.settle(() => {
        if (!r.ok) {
          const e = ERRORS[r.code];
          return done(
            sendBody(
              res,
              e.status,
              JSON_TYPE,
              JSON.stringify({ error: { code: r.code, message: e.message, problems: r.problems } }),
            ),
          );
        }
        if (r.value === null) return done(sendBody(res, 204, JSON_TYPE, ''));
        done(sendBody(res, r.created ? 201 : 200, JSON_TYPE, JSON.stringify(r.value)));
      }),
    (err: unknown) => {
      deps.log.error({ err, op: op.kind }, 'registry change failed');
      p.settle(() => done(sendError(res, 'INTERNAL', 'the change was not applied')));
    },
  );
}
