// Health, readiness and metrics: what load balancers and Prometheus call.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { Flag, Gauge } from '../../shared-state.js';
import { STALL_REASONS } from '../../store/write-failure.js';
import { sendBody, sendError, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';
import { BearerKeys } from '../auth.js';

// The filter's state is shown, not gated on: without one, lookups are slower, never wrong.
const READY = '{"status":"ready","filter":"ready"}';
const READY_NO_FILTER = '{"status":"ready","filter":"none"}';
const LOADING = '{"status":"loading","reason":"initial load not finished"}';
const DRAINING = '{"status":"draining","reason":"shutting down"}';
const CATCHING_UP = '{"status":"catching up","reason":"JetStream backlog above SEGD_NATS_READY_LAG","lag":{"nats":';

export function healthzRoute(deps: AppDeps) {
  const m = deps.metrics.route('healthz');
  const ALIVE = JSON.stringify({ status: 'ok', worker: deps.workerIndex });
  return (res: HttpResponse): void => {
    const t0 = performance.now();
    // Still alive while draining, but send the caller elsewhere next time.
    m.observe(sendBody(res, 200, JSON_TYPE, ALIVE, deps.state.get(Flag.Draining)), (performance.now() - t0) / 1000);
  };
}

/**
 * 200 once LMDB is open (it is, or this worker would not run), the initial
 * load is done and, with SEGD_NATS_READY_LAG set, the JetStream backlog has
 * once been at most that many messages: a node started from a backup joins
 * the pool only when its answers are nearly current. Only once: a backlog
 * that grows later (a burst, a slow disk) hits every replica alike, and
 * taking them all out of the pool would turn stale answers into no answers.
 */
export function readyzRoute(deps: AppDeps) {
  const m = deps.metrics.route('readyz');
  const maxLag = deps.config.natsUrl ? deps.config.natsReadyLag : 0;
  let caughtUp = maxLag === 0;
  return (res: HttpResponse): void => {
    const t0 = performance.now();
    let st: number;
    const pending = deps.state.value(Gauge.NatsPending);
    if (!caughtUp && pending >= 0 && pending <= maxLag) caughtUp = true;
    if (deps.state.get(Flag.Draining)) st = sendBody(res, 503, JSON_TYPE, DRAINING, true);
    else if (!deps.state.get(Flag.Loaded)) st = sendBody(res, 503, JSON_TYPE, LOADING);
    else if (!caughtUp) st = sendBody(res, 503, JSON_TYPE, `${CATCHING_UP}${pending < 0 ? '"unknown"' : pending}}}`);
    else {
      // Past the first catch-up the lag is reported, not gated on (see above).
      const body = deps.lookup.filter ? READY : READY_NO_FILTER;
      let text = pending < 0 ? body : `${body.slice(0, -1)},"lag":{"nats":${pending}}}`;
      // A full store stops the loader, not lookups: still ready (last committed data), and it says why.
      const stall = deps.state.value(Gauge.LoaderStall);
      if (stall > 0) text = `${text.slice(0, -1)},"loader":"stalled","reason":"${STALL_REASONS[stall - 1]}"}`;
      st = sendBody(res, 200, JSON_TYPE, text);
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };
}

/** Open unless SEGD_METRICS_KEYS names keys; the text is collected at most once per SEGD_METRICS_CACHE_MS (supervisor). */
export function metricsRoute(deps: AppDeps) {
  const m = deps.metrics.route('metrics');
  const keys = deps.config.metricsKeys.length > 0 ? new BearerKeys(deps.config.metricsKeys) : null;
  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    if (keys !== null && !keys.allows(req.getHeader('authorization'))) return done(sendError(res, 'UNAUTHORIZED'));
    const p = pending(res, deps.inflight);
    deps.metricsText().then(
      (text) => p.settle(() => done(sendBody(res, 200, 'text/plain; version=0.0.4; charset=utf-8', text))),
      (err: unknown) => {
        deps.log.error({ err }, 'metrics scrape failed');
        p.settle(() => done(sendError(res, 'INTERNAL', 'metrics unavailable')));
      },
    );
  };
}
