// GET /v1/admin/timeline?since=<ms> — the process's event timeline (writer
// commits, snapshot flips, sweeps, filter saves, registry reloads, scrapes,
// GC pauses, loop-delay spikes) after a wall-clock time. Admin bearer key
// required; the ring lives on the main thread (metrics/timeline.ts).
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { BearerKeys } from '../auth.js';
import { sendError, sendBody, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';

const SINCE = /^\d{1,16}(\.\d{1,6})?$/;

export function timelineRoute(deps: AppDeps) {
  const keys = new BearerKeys(deps.config.adminKeys);
  const m = deps.metrics.route('admin');
  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    if (!keys.allows(req.getHeader('authorization'))) return done(sendError(res, 'UNAUTHORIZED'));
    const raw = req.getQuery('since');
    if (raw !== undefined && raw !== '' && !SINCE.test(raw)) return done(sendError(res, 'BAD_SINCE'));
    const since = raw ? Number(raw) : 0;
    const p = pending(res, deps.inflight);
    deps.timeline(since).then(
      (answer) => p.settle(() => done(sendBody(res, 200, JSON_TYPE, JSON.stringify(answer)))),
      (err: unknown) => {
        deps.log.error({ err }, 'timeline request failed');
        p.settle(() => done(sendError(res, 'INTERNAL', 'timeline unavailable')));
      },
    );
  };
}
