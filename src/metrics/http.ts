// HTTP metrics of one worker, recorded into typed arrays and turned into
// Prometheus metrics only when scraped.
//
// Why not prom-client's Counter/Histogram on the hot path: measured with
// `npm run bench:micro`, a labelled child's observe + inc costs ≈ 1,670 ns per
// request (label hashing on every call) — a quarter of a whole hello-world
// request on this machine. These arrays cost ≈ 10 ns. prom-client still owns
// the registry, the text format and the cross-worker merge: the metrics below
// implement its `get()` contract.
import { Registry } from 'prom-client';

const ROUTES = [
  'segments',
  'batch',
  'ingest',
  'healthz',
  'readyz',
  'metrics',
  'admin',
  'sync',
  'privacy',
  'other',
  'enrich',
  'ws',
  'rtd',
  'insights',
] as const;
/** Why a lookup was answered empty at once: past the admission limit (or loop lag), or past its deadline. */
const SHED_REASONS = ['overload', 'deadline'] as const;
export type ShedReason = (typeof SHED_REASONS)[number];
/** How an enrichment ended (besides errors). */
const ENRICH_OUTCOMES = ['enriched', 'empty', 'coppa', 'gdpr', 'us_privacy', 'gpp', 'deadline', 'overload'] as const;
export type EnrichOutcome = (typeof ENRICH_OUTCOMES)[number];
export type Route = (typeof ROUTES)[number];
/** Writes a pixel hands the writer in batches (identity/match-queue.ts): cookie-sync matches, exposure hits. */
const QUEUES = ['matches', 'exposures'] as const;
export type WriteQueue = (typeof QUEUES)[number];
/** stored: the writer confirmed it; refused: the queue was full (the pixel answered a no-op); lost: the write failed. */
const QUEUE_OUTCOMES = ['stored', 'refused', 'lost'] as const;
export type QueueOutcome = (typeof QUEUE_OUTCOMES)[number];
/** Requests ended by the edge's guards rather than their route: an exception (500), a full budget (503), a late body (408). */
const GUARD_OUTCOMES = ['failed', 'overloaded', 'body_timeout'] as const;
export type GuardOutcome = (typeof GUARD_OUTCOMES)[number];
const STATUSES = [200, 204, 400, 401, 403, 404, 405, 413, 415, 422, 431, 500, 503] as const;
const OTHER_STATUS = STATUSES.length; // slot for anything not listed
const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1];

const statusIndex = new Int8Array(600).fill(OTHER_STATUS);
STATUSES.forEach((s, i) => (statusIndex[s] = i));

export interface RouteMetrics {
  observe(status: number, seconds: number): void;
}

export type Value = { value: number; labels: Record<string, string | number>; metricName?: string };
interface CustomMetric {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Value[] }>;
}

function metric(name: string, help: string, type: 'counter' | 'histogram', values: () => Value[]): CustomMetric {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
  };
}

export class HttpMetrics {
  readonly registry = new Registry();
  /** [route][status] request counts. */
  private readonly requests = new Float64Array(ROUTES.length * (STATUSES.length + 1));
  /** [route][bucket] non-cumulative counts; the last slot is +Inf. */
  private readonly buckets = new Float64Array(ROUTES.length * (BUCKETS.length + 1));
  private readonly sums = new Float64Array(ROUTES.length);
  /** [hit, miss, aborted] */
  private readonly misc = new Float64Array(3);
  private readonly byRoute: RouteMetrics[];
  /** [negative, true positive, false positive] of the known-users filter; written by SegmentLookup. */
  readonly filterStats = new Float64Array(3);
  /** [route][shed reason] */
  private readonly sheds = new Float64Array(ROUTES.length * SHED_REASONS.length);
  private readonly enrichOutcomes = new Float64Array(ENRICH_OUTCOMES.length);
  /** [open connections, frames answered, times a socket was paused for backpressure] of /v1/ws */
  private readonly ws = new Float64Array(3);
  private readonly guards = new Float64Array(GUARD_OUTCOMES.length);
  /** [queue][outcome] items */
  private readonly queued = new Float64Array(QUEUES.length * QUEUE_OUTCOMES.length);

  constructor() {
    const S = STATUSES.length + 1;
    const B = BUCKETS.length + 1;
    this.byRoute = ROUTES.map((_, r) => ({
      observe: (status: number, seconds: number) => {
        this.requests[r * S + (status < 600 ? statusIndex[status]! : OTHER_STATUS)]!++;
        let b = 0;
        while (b < BUCKETS.length && seconds > BUCKETS[b]!) b++;
        this.buckets[r * B + b]!++;
        this.sums[r]! += seconds;
      },
    }));

    const reg = (m: CustomMetric) => this.registry.registerMetric(m as never);
    reg(
      metric('segd_http_requests_total', 'HTTP requests answered, by route and status', 'counter', () => {
        const out: Value[] = [];
        ROUTES.forEach((route, r) => {
          STATUSES.forEach((status, s) => out.push({ value: this.requests[r * S + s]!, labels: { route, status } }));
          const other = this.requests[r * S + OTHER_STATUS]!;
          if (other) out.push({ value: other, labels: { route, status: 'other' } });
        });
        return out;
      }),
    );
    reg(
      metric(
        'segd_http_request_duration_seconds',
        'Time from request to response in the worker, by route',
        'histogram',
        () => {
          const out: Value[] = [];
          ROUTES.forEach((route, r) => {
            let cum = 0;
            for (let b = 0; b < B; b++) {
              cum += this.buckets[r * B + b]!;
              out.push({
                value: cum,
                labels: { le: b < BUCKETS.length ? BUCKETS[b]! : '+Inf', route },
                metricName: 'segd_http_request_duration_seconds_bucket',
              });
            }
            out.push({ value: this.sums[r]!, labels: { route }, metricName: 'segd_http_request_duration_seconds_sum' });
            out.push({ value: cum, labels: { route }, metricName: 'segd_http_request_duration_seconds_count' });
          });
          return out;
        },
      ),
    );
    reg(
      metric(
        'segd_lookups_total',
        'User keys looked up, by result (hit = known user, miss = unknown)',
        'counter',
        () => [
          { value: this.misc[0]!, labels: { result: 'hit' } },
          { value: this.misc[1]!, labels: { result: 'miss' } },
        ],
      ),
    );
    reg(
      metric(
        'segd_bloom_checks_total',
        'Known-users filter outcomes: negative = LMDB skipped; false_positive = filter said maybe, user unknown',
        'counter',
        () => [
          { value: this.filterStats[0]!, labels: { result: 'negative' } },
          { value: this.filterStats[1]!, labels: { result: 'true_positive' } },
          { value: this.filterStats[2]!, labels: { result: 'false_positive' } },
        ],
      ),
    );
    reg(
      metric('segd_http_aborted_total', 'Requests whose client went away before the answer', 'counter', () => [
        { value: this.misc[2]!, labels: {} },
      ]),
    );
    reg(
      metric(
        'segd_shed_total',
        "Lookups answered empty at once (204) instead of being served: overload = past the admission limit or event-loop lag; deadline = past the request's time budget",
        'counter',
        () => {
          const out: Value[] = [];
          ROUTES.forEach((route, r) =>
            SHED_REASONS.forEach((reason, i) => {
              const v = this.sheds[r * SHED_REASONS.length + i]!;
              if (v || route === 'segments' || route === 'batch' || route === 'enrich' || route === 'ws')
                out.push({ value: v, labels: { route, reason } });
            }),
          );
          return out;
        },
      ),
    );
    reg(
      metric(
        'segd_http_guarded_total',
        'Requests ended by the HTTP edge instead of their route: failed = an exception answered 500 INTERNAL; overloaded = refused past the keyed or public budget (503); body_timeout = body not complete in time (408)',
        'counter',
        () => GUARD_OUTCOMES.map((outcome, i) => ({ value: this.guards[i]!, labels: { outcome } })),
      ),
    );
    reg(
      metric(
        'segd_enrich_total',
        'OpenRTB enrichments by outcome (enriched; empty = nothing licensed/known; coppa/gdpr/us_privacy/gpp = refused by that signal; deadline; overload)',
        'counter',
        () => ENRICH_OUTCOMES.map((outcome, i) => ({ value: this.enrichOutcomes[i]!, labels: { outcome } })),
      ),
    );
    reg(
      metric(
        'segd_queued_writes_total',
        'Writes a pixel queues for the writer, by queue (matches = cookie sync, exposures = /px) and outcome: stored; refused = the writer was too far behind, the pixel answered a no-op; lost = the write failed',
        'counter',
        () =>
          QUEUES.flatMap((queue, q) =>
            QUEUE_OUTCOMES.map((outcome, o) => ({
              value: this.queued[q * QUEUE_OUTCOMES.length + o]!,
              labels: { queue, outcome },
            })),
          ),
      ),
    );
    reg(
      metric('segd_ws_frames_total', 'Lookup frames answered on /v1/ws', 'counter', () => [
        { value: this.ws[1]!, labels: {} },
      ]),
    );
    reg(
      metric(
        'segd_ws_backpressure_pauses_total',
        '/v1/ws connections paused (not read) because their unsent answers passed the high-water mark',
        'counter',
        () => [{ value: this.ws[2]!, labels: {} }],
      ),
    );
    this.registry.registerMetric({
      name: 'segd_ws_connections',
      help: 'Open /v1/ws connections',
      type: 'gauge',
      aggregator: 'sum',
      get: async () => ({
        name: 'segd_ws_connections',
        help: 'Open /v1/ws connections',
        type: 'gauge',
        aggregator: 'sum',
        values: [{ value: this.ws[0]!, labels: {} }],
      }),
    } as never);
  }

  shed(r: Route, reason: ShedReason): void {
    this.sheds[ROUTES.indexOf(r) * SHED_REASONS.length + SHED_REASONS.indexOf(reason)]!++;
  }
  enriched(outcome: EnrichOutcome): void {
    this.enrichOutcomes[ENRICH_OUTCOMES.indexOf(outcome)]!++;
  }
  guarded(outcome: GuardOutcome): void {
    this.guards[GUARD_OUTCOMES.indexOf(outcome)]!++;
  }
  wsConnections(delta: number): void {
    this.ws[0]! += delta;
  }
  wsFrame(): void {
    this.ws[1]!++;
  }
  wsPaused(): void {
    this.ws[2]!++;
  }

  /** Counts queued writes by outcome (identity/match-queue.ts reports them). */
  queueOutcome(queue: WriteQueue, outcome: QueueOutcome, n: number): void {
    this.queued[QUEUES.indexOf(queue) * QUEUE_OUTCOMES.length + QUEUE_OUTCOMES.indexOf(outcome)]! += n;
  }

  route(r: Route): RouteMetrics {
    return this.byRoute[ROUTES.indexOf(r)]!;
  }

  hit(n = 1): void {
    this.misc[0]! += n;
  }
  miss(n = 1): void {
    this.misc[1]! += n;
  }
  aborted(): void {
    this.misc[2]!++;
  }

  /** Cookie-sync outcomes (one per sync request), by direction and outcome. */
  readonly sync = new SyncOutcomes(this.registry);
}

const SYNC_OUTCOMES = {
  in: ['stored', 'opted_out', 'no_consent', 'privacy_blocked', 'bad_partner', 'bad_uid', 'bad_signature', 'overloaded'],
  out: ['ok', 'opted_out', 'no_consent', 'privacy_blocked', 'bad_request'],
} as const;
export type SyncDirection = keyof typeof SYNC_OUTCOMES;
export type SyncOutcome<D extends SyncDirection> = (typeof SYNC_OUTCOMES)[D][number];

/** Why each sync request ended as it did: a 204 no-op says only "nothing stored", this says why. Preloaded at zero. */
class SyncOutcomes {
  private readonly counts = {
    in: new Float64Array(SYNC_OUTCOMES.in.length),
    out: new Float64Array(SYNC_OUTCOMES.out.length),
  };

  constructor(registry: Registry) {
    registry.registerMetric(
      metric(
        'segd_sync_total',
        'Cookie-sync requests by direction (in = partner callback, out = sync list) and outcome',
        'counter',
        () => {
          const out: Value[] = [];
          for (const d of ['in', 'out'] as const)
            SYNC_OUTCOMES[d].forEach((outcome, i) =>
              out.push({ value: this.counts[d][i]!, labels: { direction: d, outcome } }),
            );
          return out;
        },
      ) as never,
    );
  }

  record<D extends SyncDirection>(direction: D, outcome: SyncOutcome<D>): void {
    this.counts[direction][(SYNC_OUTCOMES[direction] as readonly string[]).indexOf(outcome)]!++;
  }
}
