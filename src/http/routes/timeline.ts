// GET /v1/admin/timeline?since=<ms> — the process's event timeline (writer
// commits, snapshot flips, sweeps, filter saves, registry reloads, scrapes,
// GC pauses, loop-delay spikes) after a wall-clock time. Admin bearer key
// required; the ring lives on the main thread (metrics/timeline.ts).
import type { AppDeps } from '../deps.js';
import { sendError } from '../respond.js';
import { adminRoute, answerLater } from '../admin-route.js';

const SINCE = /^\d{1,16}(\.\d{1,6})?$/;

export function timelineRoute(deps: AppDeps) {
  return adminRoute(deps, 'admin', (res, req, done) => {
    const raw = req.getQuery('since');
    if (raw !== undefined && raw !== '' && !SINCE.test(raw)) return done(sendError(res, 'BAD_SINCE'));
    const since = raw ? Number(raw) : 0;
    answerLater(res, deps, done, deps.timeline(since).then(JSON.stringify), { what: 'timeline request', since });
  });
}
