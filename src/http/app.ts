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
import { destinationRoutes } from './routes/destinations.js';
import { timelineRoute } from './routes/timeline.js';
import { maintenanceRoute } from './routes/maintenance.js';
import { syncInRoute, syncOutRoutes } from './routes/sync.js';
import { privacyRoutes } from './routes/privacy.js';
import { insightsRoutes } from './routes/insights.js';
import { pixelRoute } from './routes/insights-pixel.js';
import { sendError } from './respond.js';
import { enrichRoute } from './routes/enrich.js';
import { rtdRoutes } from './routes/rtd.js';
import { wsBehavior } from './routes/ws.js';
import { guardRoute, guardWs, type RouteContext } from './guard.js';
import { setBodyTimeout } from './body.js';

/**
 * Which budget a route's waiting requests count against (admission.ts):
 * lookups shed themselves (204); keyed and public routes past their budget
 * are refused (503); ops routes are synchronous and never refused.
 */
type Kind = 'lookup' | 'keyed' | 'public' | 'ops';

/** Route table: path → method → handler. Anything else is 404 or 405. Every handler runs guarded (guard.ts). */
export function createApp(deps: AppDeps): TemplatedApp {
  const app = uWS.App();
  setBodyTimeout(deps.config.bodyTimeoutMs);
  const { admission, log } = deps;
  const budgets = {
    lookup: admission.lookups,
    keyed: admission.keyed,
    public: admission.public,
    ops: admission.public,
  };
  const context = (route: string, method: string, kind: Kind): RouteContext => ({
    route,
    method: method === 'del' ? 'DELETE' : method.toUpperCase(),
    budget: budgets[kind],
    shed: kind === 'keyed' || kind === 'public',
    log,
    metrics: deps.metrics,
  });
  const other = deps.metrics.route('other');
  const admin = adminRoutes(deps);
  const syncOut = syncOutRoutes(deps);
  const privacy = privacyRoutes(deps);
  const rtd = rtdRoutes(deps);
  const destinations = destinationRoutes(deps);
  type Route = [
    string,
    'get' | 'post' | 'put' | 'del' | 'options',
    (res: HttpResponse, req: HttpRequest) => void,
    Kind,
  ];
  const insights = insightsRoutes(deps);
  // An open /metrics is anyone's; a keyed one only its keys'.
  const metricsKind: Kind = deps.config.metricsKeys.length > 0 ? 'keyed' : 'public';
  const routes: Route[] = [
    ['/v1/segments', 'get', segmentsRoute(deps), 'lookup'],
    ['/v1/segments:batch', 'post', batchRoute(deps), 'lookup'],
    ['/healthz', 'get', healthzRoute(deps), 'ops'],
    ['/readyz', 'get', readyzRoute(deps), 'ops'],
    ['/metrics', 'get', metricsRoute(deps), metricsKind],
    ['/v1/segments/:id/bloom', 'get', segmentBloomRoute(deps), 'keyed'],
    ['/v1/ingest', 'post', ingestRoute(deps), 'keyed'],
    ['/sync/in', 'get', syncInRoute(deps), 'public'],
    ['/sync/out', 'get', syncOut.get, 'public'],
    ['/sync/out', 'post', syncOut.post, 'public'],
    ['/sync/script.js', 'get', syncOut.script, 'public'],
    ['/sync/frame.html', 'get', syncOut.frame, 'public'],
    ['/optout', 'get', privacy.optout, 'public'],
    ['/v1/users', 'del', privacy.deleteUser, 'keyed'],
    ['/v1/admin/audit', 'get', privacy.audit, 'keyed'],
    ['/v1/admin/timeline', 'get', timelineRoute(deps), 'keyed'],
    ['/v1/admin/maintenance/:task', 'post', maintenanceRoute(deps), 'keyed'],
    ['/v1/insights/segments/:id', 'get', insights.size, 'keyed'],
    ['/v1/insights/segments/:id/affinity', 'get', insights.affinity, 'keyed'],
    ['/v1/insights/overlap', 'get', insights.overlap, 'keyed'],
    ['/v1/insights/reach', 'post', insights.reach, 'keyed'],
    ['/insights', 'get', insights.page, 'keyed'],
    ['/px', 'get', pixelRoute(deps), 'public'],
    ...(['partners', 'segments'] as const).flatMap(
      (kind) =>
        [
          [`/v1/admin/${kind}`, 'get', admin.list(kind), 'keyed'],
          [`/v1/admin/${kind}/:id`, 'get', admin.get(kind), 'keyed'],
          [`/v1/admin/${kind}/:id`, 'put', admin.put(kind), 'keyed'],
          [`/v1/admin/${kind}/:id`, 'del', admin.del(kind), 'keyed'],
        ] satisfies Route[],
    ),
    ['/v1/admin/destinations', 'get', destinations.list, 'keyed'],
    ['/v1/admin/destinations/:id', 'get', destinations.get, 'keyed'],
    ['/v1/admin/destinations/:id', 'put', destinations.put, 'keyed'],
    ['/v1/admin/destinations/:id', 'del', destinations.del, 'keyed'],
    ['/v1/admin/destinations/:id/replay', 'post', destinations.replay, 'keyed'],
    ['/v1/admin/destinations/:id/resync', 'post', destinations.resync, 'keyed'],
  ];
  // Activation: OpenRTB enrichment and the WebSocket lookup channel.
  routes.push(['/openrtb2/enrich', 'post', enrichRoute(deps), 'lookup']);
  // Prebid's segd RTD module in publishers' pages (CORS, the browser's cookie).
  routes.push(['/v1/rtd', 'get', rtd.get, 'lookup'], ['/v1/rtd', 'options', rtd.preflight, 'ops']);
  app.ws('/v1/ws', guardWs(wsBehavior(deps), log, '/v1/ws', deps.metrics));
  const known = new Set<string>();
  for (const [path, method, handler, kind] of routes) {
    app[method](path, guardRoute(context(path, method, kind), handler));
    known.add(path);
  }
  // Method-specific handlers win over `any` in uWS, so these catch the rest.
  for (const path of known) {
    app.any(
      path,
      guardRoute(context(path, 'any', 'ops'), (res) => {
        // Close: the request may carry a body we will not read.
        other.observe(sendError(res, 'METHOD_NOT_ALLOWED', undefined, true), 0);
      }),
    );
  }
  app.any(
    '/*',
    guardRoute(context('/*', 'any', 'ops'), (res, req) => {
      other.observe(
        sendError(res, 'NOT_FOUND', `${req.getMethod().toUpperCase()} ${req.getUrl()}`.slice(0, 200), true),
        0,
      );
    }),
  );
  return app;
}
