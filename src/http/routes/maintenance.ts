// POST /v1/admin/maintenance/:task — writer-side upkeep run now instead of on
// its timer: `sweep` (a TTL sweep pass) or `filter-save` (the known-users
// filter written out whole). Operators save the filter before a planned
// restart; `segd loadtest` runs both to measure what they cost lookups.
// Admin bearer key required; the answer comes when the task is done.
import { MAINTENANCE_TASKS, type AppDeps, type MaintenanceTask } from '../deps.js';
import { sendError } from '../respond.js';
import { adminRoute, answerLater } from '../admin-route.js';

export function maintenanceRoute(deps: AppDeps) {
  return adminRoute(deps, 'admin', (res, req, done) => {
    const task = req.getParameter(0) as MaintenanceTask;
    if (!MAINTENANCE_TASKS.includes(task))
      return done(sendError(res, 'NOT_FOUND', `unknown maintenance task; known: ${MAINTENANCE_TASKS.join(', ')}`));
    answerLater(res, deps, done, deps.maintenance(task).then(JSON.stringify), { what: task, task });
  });
}
