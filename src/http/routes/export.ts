// GET /v1/segments/:id/bloom?fp=0.001 — a segment's members as a bloom filter
// (format: src/filters/segment-export.ts). Admin key required: the export
// lets its holder test any key for membership.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { BearerKeys } from '../auth.js';
import { sendError, sendBody, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';

const DEFAULT_EXPORT_FP = 0.001;

export function segmentBloomRoute(deps: AppDeps) {
  const keys = new BearerKeys(deps.config.adminKeys);
  const m = deps.metrics.route('other');
  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    if (!keys.allows(req.getHeader('authorization'))) return done(sendError(res, 'UNAUTHORIZED'));
    const rawId = req.getParameter(0);
    const segment = /^\d{1,10}$/.test(rawId) ? Number(rawId) : NaN;
    if (!(segment <= 0xffff_ffff)) return done(sendError(res, 'BAD_SEGMENT'));
    const rawFp = req.getQuery('fp');
    const fpRate = rawFp ? Number(rawFp) : DEFAULT_EXPORT_FP;
    if (!(fpRate >= 0.000001 && fpRate <= 0.5)) return done(sendError(res, 'BAD_FP_RATE'));

    const p = pending(res, deps.inflight);
    deps.exportSegment(segment, fpRate).then(
      (doc) => p.settle(() => done(sendBody(res, 200, JSON_TYPE, doc))),
      (err: unknown) => {
        deps.log.error({ err, segment }, 'segment export failed');
        p.settle(() => done(sendError(res, 'INTERNAL', 'export failed')));
      },
    );
  };
}
