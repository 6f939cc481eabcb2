// HTTP metrics of one worker. Label sets are closed and preloaded at zero
// (every route × outcome exists from the first scrape); children are resolved
// once so the hot path pays an array index, not a label hash.
import { Counter, Histogram, Registry } from 'prom-client';

export const ROUTES = ['segments', 'batch', 'healthz', 'readyz', 'metrics', 'other'] as const;
export type Route = (typeof ROUTES)[number];
const STATUSES = [200, 204, 400, 404, 405, 413, 415, 500, 503] as const;

export interface RouteMetrics {
  observe(status: number, seconds: number): void;
}

export class HttpMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'segd_http_requests_total',
    help: 'HTTP requests answered, by route and status',
    labelNames: ['route', 'status'],
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'segd_http_request_duration_seconds',
    help: 'Time from request to response in the worker, by route',
    labelNames: ['route'],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [this.registry],
  });
  private readonly lookups = new Counter({
    name: 'segd_lookups_total',
    help: 'User keys looked up, by result (hit = known user, miss = unknown)',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly aborted = new Counter({
    name: 'segd_http_aborted_total',
    help: 'Requests whose client went away before the answer',
    registers: [this.registry],
  });
  readonly hit = this.lookups.labels('hit');
  readonly miss = this.lookups.labels('miss');
  private readonly byRoute = new Map<Route, RouteMetrics>();

  constructor() {
    for (const route of ROUTES) {
      const h = this.duration.labels(route);
      const counters: Record<number, Counter.Internal> = {};
      for (const s of STATUSES) counters[s] = this.requests.labels(route, String(s));
      this.byRoute.set(route, {
        observe: (status, seconds) => {
          (counters[status] ?? this.requests.labels(route, String(status))).inc();
          h.observe(seconds);
        },
      });
    }
    this.hit.inc(0);
    this.miss.inc(0);
  }

  route(r: Route): RouteMetrics {
    return this.byRoute.get(r)!;
  }
}
