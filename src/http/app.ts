// Builds the uWebSockets.js app with every route; listening is the worker's
// job, so tests and tools can build an app without a socket.
import uWS, { type HttpRequest, type HttpResponse, type TemplatedApp } from 'uWebSockets.js';
import type { AppDeps } from './deps.js';
import { segmentsRoute } from './routes/segments.js';
import { batchRoute } from './routes/batch.js';
import { healthzRoute, readyzRoute, metricsRoute } from './routes/ops.js';
import { segmentBloomRoute } from './routes/export.js';
import { ingestRoute } from './routes/ingest.js';
import { adminRoutes } from './routes/admin.js';
import { syncInRoute, syncOutRoutes } from './routes/sync.js';
import { privacyRoutes } from './routes/privacy.js';
import { sendError } from './respond.js';
import { enrichRoute } from './routes/enrich.js';
import { wsBehavior } from './routes/ws.js';

/** Route table: path → method → handler. Anything else is 404 or 405. */
export function createApp(deps: AppDeps): TemplatedApp {
  const app = uWS.App();
  const other = deps.metrics.route('other');
  const admin = adminRoutes(deps);
  const syncOut = syncOutRoutes(deps);
  const privacy = privacyRoutes(deps);
  type Route = [string, 'get' | 'post' | 'put' | 'del', (res: HttpResponse, req: HttpRequest) => void];
  const routes: Route[] = [
    ['/v1/segments', 'get', segmentsRoute(deps)],
    ['/v1/segments:batch', 'post', batchRoute(deps)],
    ['/healthz', 'get', healthzRoute(deps)],
    ['/readyz', 'get', readyzRoute(deps)],
    ['/metrics', 'get', metricsRoute(deps)],
    ['/v1/segments/:id/bloom', 'get', segmentBloomRoute(deps)],
    ['/v1/ingest', 'post', ingestRoute(deps)],
    ['/sync/in', 'get', syncInRoute(deps)],
    ['/sync/out', 'get', syncOut.get],
    ['/sync/out', 'post', syncOut.post],
    ['/sync/script.js', 'get', syncOut.script],
    ['/sync/frame.html', 'get', syncOut.frame],
    ['/optout', 'get', privacy.optout],
    ['/v1/users', 'del', privacy.deleteUser],
    ['/v1/admin/audit', 'get', privacy.audit],
    ...(['partners', 'segments'] as const).flatMap((kind) => [
      [`/v1/admin/${kind}`, 'get', admin.list(kind)],
      [`/v1/admin/${kind}/:id`, 'get', admin.get(kind)],
      [`/v1/admin/${kind}/:id`, 'put', admin.put(kind)],
      [`/v1/admin/${kind}/:id`, 'del', admin.del(kind)],
    ] satisfies Route[]),
  ];
  // Activation (issue 6): OpenRTB enrichment and the WebSocket lookup channel.
  routes.push(['/openrtb2/enrich', 'post', enrichRoute(deps)]);
  app.ws('/v1/ws', wsBehavior(deps));
  const known = new Set<string>();
  for (const [path, method, handler] of routes) {
    app[method](path, handler);
    known.add(path);
  }
  // Method-specific handlers win over `any` in uWS, so these catch the rest.
  for (const path of known) {
    app.any(path, (res) => {
      // Close: the request may carry a body we will not read.
      other.observe(sendError(res, 'METHOD_NOT_ALLOWED', undefined, true), 0);
    });
  }
  app.any('/*', (res, req) => {
    other.observe(sendError(res, 'NOT_FOUND', `${req.getMethod().toUpperCase()} ${req.getUrl()}`.slice(0, 200), true), 0);
  });
  return app;
}
