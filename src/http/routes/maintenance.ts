// POST /v1/admin/maintenance/:task — writer-side upkeep run now instead of on
// its timer: `sweep` (a TTL sweep pass) or `filter-save` (the known-users
// filter written out whole). Operators save the filter before a planned
// restart; `segd loadtest` runs both to measure what they cost lookups.
// Admin bearer key required; the answer comes when the task is done.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { MAINTENANCE_TASKS, type AppDeps, type MaintenanceTask } from '../deps.js';
import { BearerKeys } from '../auth.js';
import { sendError, sendBody, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';

export function maintenanceRoute(deps: AppDeps) {
  const keys = new BearerKeys(deps.config.adminKeys);
  const m = deps.metrics.route('admin');
  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    if (!keys.allows(req.getHeader('authorization'))) return done(sendError(res, 'UNAUTHORIZED'));
    const task = req.getParameter(0) as MaintenanceTask;
    if (!MAINTENANCE_TASKS.includes(task))
      return done(sendError(res, 'NOT_FOUND', `unknown maintenance task; known: ${MAINTENANCE_TASKS.join(', ')}`));
    const p = pending(res, deps.inflight);
    deps.maintenance(task).then(
      (answer) => p.settle(() => done(sendBody(res, 200, JSON_TYPE, JSON.stringify(answer)))),
      (err: unknown) => {
        deps.log.error({ err, task }, 'maintenance task failed');
        p.settle(() => done(sendError(res, 'INTERNAL', `${task} failed`)));
      },
    );
  };
}
