// GET /v1/segments/:id/bloom?fp=0.001 — a segment's members as a bloom filter
// (format: src/filters/segment-export.ts). Admin key required: the export
// lets its holder test any key for membership.
import type { AppDeps } from '../deps.js';
import { sendError } from '../respond.js';
import { adminRoute, answerLater } from '../admin-route.js';

const DEFAULT_EXPORT_FP = 0.001;

export function segmentBloomRoute(deps: AppDeps) {
  return adminRoute(deps, 'other', (res, req, done) => {
    const rawId = req.getParameter(0);
    const segment = /^\d{1,10}$/.test(rawId) ? Number(rawId) : NaN;
    if (!(segment <= 0xffff_ffff)) return done(sendError(res, 'BAD_SEGMENT'));
    const rawFp = req.getQuery('fp');
    const fpRate = rawFp ? Number(rawFp) : DEFAULT_EXPORT_FP;
    if (!(fpRate >= 0.000001 && fpRate <= 0.5)) return done(sendError(res, 'BAD_FP_RATE'));
    answerLater(res, deps, done, deps.exportSegment(segment, fpRate), { what: 'segment export', segment });
  });
}
