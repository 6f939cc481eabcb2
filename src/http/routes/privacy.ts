// Privacy actions.
//
//   GET /optout            the browser's opt-out: a non-unique opt-out cookie
//                          (5 years), the id cookie expired, and — for a uid
//                          segd knows, at most SEGD_OPTOUT_RATE per second per
//                          worker — the user's matches and memberships deleted
//                          with a tombstone that never lapses. Answers a short
//                          HTML page. A GET (opt-out tools call it as an image),
//                          so any page can trigger it: what it may write is
//                          bounded by the rate and by the uids segd holds data for.
//   DELETE /v1/users?…     (admin) CCPA-style deletion by any id: uid=,
//                          partner=&puid=, ifa=, eid_source=&eid=, login=[&login_source=].
//                          Memberships and every linked id removed, tombstoned
//                          for SEGD_DELETION_TOMBSTONE_DAYS, audited.
//   GET /v1/admin/audit?limit=N   (admin) the newest audit entries.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { BearerKeys } from '../auth.js';
import { sendError, sendBody, status, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';
import { checkUid } from '../../identity/uid.js';
import { readUid, optoutCookie, expiredCookie, cookieSettings } from '../../identity/cookie.js';
import { readGraphKey } from './id-query.js';
import { queryParam } from '../query.js';
import type { ForgetAnswer } from '../../privacy/forget.js';
import { TokenBucket } from '../../identity/token-bucket.js';

const fullDetail = (reason: string) =>
  `${reason === 'map_full' ? 'LMDB map size reached' : 'disk full'}; nothing was deleted, retry later`;

const OPTED_OUT_PAGE =
  '<!doctype html><meta charset="utf-8"><title>Opted out</title><p>You have opted out: this browser will not be tracked by segd.</p>\n';

export function privacyRoutes(deps: AppDeps) {
  const { config } = deps;
  const m = deps.metrics.route('privacy');
  const cs = cookieSettings(config);
  const admin = new BearerKeys(config.adminKeys);
  const bucket = new TokenBucket(config.optoutRate, config.optoutBurst);
  let warnedAt = -Infinity;

  const optout = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const uid = readUid(req.getHeader('cookie'), cs);
    const answer = () => {
      res
        .writeStatus(status(200))
        .writeHeader('Cache-Control', 'no-store')
        .writeHeader('Set-Cookie', optoutCookie(cs))
        .writeHeader('Set-Cookie', expiredCookie(cs, cs.name))
        .writeHeader('Content-Type', 'text/html; charset=utf-8')
        .end(OPTED_OUT_PAGE);
      done(200);
    };
    // Stored only for a uid segd knows, once, and at a bounded rate: the
    // cookie is the user's choice either way (it stops every later sync).
    if (uid === null || deps.graph.optedOut(uid) || !deps.graph.knows(uid)) return answer();
    if (!bucket.take()) {
      if (performance.now() - warnedAt > 10_000) {
        warnedAt = performance.now();
        deps.log.warn(
          { rate: config.optoutRate, burst: config.optoutBurst },
          'browser opt-outs over SEGD_OPTOUT_RATE: cookie set, store write refused',
        );
      }
      return answer();
    }
    const p = pending(res, deps.inflight, () => deps.metrics.aborted());
    deps.forget({ target: { uid }, reason: 'optout', by: 'cookie' }).then(
      (r: ForgetAnswer) =>
        p.settle(() => ('full' in r ? done(sendError(res, 'STORE_FULL', fullDetail(r.full))) : answer())),
      (err: unknown) => {
        deps.log.error({ err }, 'opt-out failed');
        p.settle(() => done(sendError(res, 'INTERNAL', 'the opt-out was not stored; try again')));
      },
    );
  };

  const deleteUser = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const by = admin.match(req.getHeader('authorization'));
    if (by === null) return done(sendError(res, 'UNAUTHORIZED'));
    const query = req.getQuery() ?? '';
    const uid = queryParam(req, query, 'uid');
    const k = readGraphKey(req, query, config.maxUidBytes);
    if ((uid !== undefined && uid !== '') === (k !== null))
      return done(sendError(res, 'BAD_ID_KEY', 'give exactly one id'));
    if (k !== null && 'problem' in k) return done(sendError(res, 'BAD_ID_KEY', k.problem));
    if (k === null && checkUid(uid, config.maxUidBytes) !== null) return done(sendError(res, 'UID_INVALID'));
    const target = k !== null ? { key: k.key } : { uid: uid! };
    const p = pending(res, deps.inflight, () => deps.metrics.aborted());
    deps.forget({ target, reason: 'deletion', by: `admin:${by}` }).then(
      (r: ForgetAnswer) =>
        p.settle(() =>
          'full' in r
            ? done(sendError(res, 'STORE_FULL', fullDetail(r.full)))
            : done(
                sendBody(
                  res,
                  200,
                  JSON_TYPE,
                  JSON.stringify({
                    found: r.found,
                    uid: r.uid,
                    ids: r.ids,
                    memberships: r.memberships,
                    tombstoneUntil: r.until === 0 ? null : new Date(r.until * 1000).toISOString(),
                    audit: r.auditSeq,
                  }),
                ),
              ),
        ),
      (err: unknown) => {
        deps.log.error({ err }, 'deletion failed');
        p.settle(() => done(sendError(res, 'INTERNAL', 'nothing was deleted; retry')));
      },
    );
  };

  const audit = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    let st: number;
    if (!admin.allows(req.getHeader('authorization'))) st = sendError(res, 'UNAUTHORIZED');
    else {
      const raw = req.getQuery('limit') ?? '';
      const limit = /^\d{1,4}$/.test(raw) ? Math.max(1, Number(raw)) : 100;
      st = sendBody(res, 200, JSON_TYPE, JSON.stringify({ entries: deps.graph.auditTail(limit) }));
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };

  return { optout, deleteUser, audit };
}
