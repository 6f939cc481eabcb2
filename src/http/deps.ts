// What the HTTP layer needs, handed in by the worker (the composition root).
import type { Config } from '../config/schema.js';
import type { SegmentLookup } from '../lookup/segments.js';
import type { HttpMetrics } from '../metrics/http.js';
import type { SharedState } from '../shared-state.js';
import type { Logger } from '../log.js';
import type { PushRequest, PushAnswer } from '../loader/push.js';
import type { Registry } from '../partners/registry.js';
import type { RegistryOp, RegistryResult } from '../partners/admin.js';
import type { Callers } from './caller.js';
import type { Licences } from '../lookup/licences.js';
import type { UserResolver } from '../lookup/resolve.js';
import type { Admission } from './admission.js';
import type { IdGraph } from '../identity/graph.js';
import type { MatchQueue } from '../identity/match-queue.js';
import type { ForgetRequest, ForgetAnswer } from '../privacy/forget.js';
import type { TimelineAnswer } from '../metrics/timeline.js';
import type { Capture } from './capture.js';

/** Writer-side upkeep an admin can run now: a TTL sweep pass, or a full save of the known-users filter. */
export type MaintenanceTask = 'sweep' | 'filter-save';
export const MAINTENANCE_TASKS: readonly MaintenanceTask[] = ['sweep', 'filter-save'];

export interface MaintenanceAnswer {
  task: MaintenanceTask;
  /** False when there was nothing to do: no membership can have expired yet, or the server keeps no filter. */
  ran: boolean;
  ms: number;
  /** sweep: users and memberships scanned and removed; filter-save: bytes written. */
  detail: Record<string, number>;
}
import type { InsightsQuery, InsightsAnswer } from '../insights/insights.js';
import type { ExposureItem } from '../loader/exposures.js';
import type { OutboundQuery, OutboundAnswer } from '../outbound/admin.js';

export interface AppDeps {
  config: Readonly<Config>;
  lookup: SegmentLookup;
  state: SharedState;
  metrics: HttpMetrics;
  /** Prometheus text for the whole process (all workers + loader). */
  metricsText: () => Promise<string>;
  /** A segment's members as a bloom filter export document (JSON text), built off the lookup path. */
  exportSegment: (segment: number, fpRate: number) => Promise<string>;
  /** Hands a pushed body to the loader thread (transferred); resolves once parsed and committed (durable). */
  ingest: (req: PushRequest, maxListed: number) => Promise<PushAnswer>;
  /** Partners and the taxonomy, reloaded when they change. */
  registry: Registry;
  /** Applies an admin change on the writer thread; every worker has reloaded when it resolves. */
  changeRegistry: (op: RegistryOp) => Promise<RegistryResult>;
  /** The ID graph (read side): any id → segd uid. */
  graph: IdGraph;
  /** Cookie-sync matches on their way to the writer, batched. */
  matches: MatchQueue;
  /** Opt-out or deletion on the writer thread; resolves once committed. */
  forget: (req: ForgetRequest) => Promise<ForgetAnswer>;
  /** Runs writer-side upkeep now; resolves when it is done. */
  maintenance: (task: MaintenanceTask) => Promise<MaintenanceAnswer>;
  /** Exposure pixel hits on their way to the writer, batched. */
  exposures: MatchQueue<ExposureItem>;
  /** An insights query on the writer's thread (licences already checked); null when the index is off. */
  insights: (q: InsightsQuery) => Promise<InsightsAnswer | null>;
  /** Destinations with their delivery state, or a replay of dead letters, answered by the outbound sender; null: no such destination. */
  outbound: (q: OutboundQuery) => Promise<OutboundAnswer>;
  /** The process's event timeline (main thread's ring) from `sinceMs` on (wall clock). */
  timeline: (sinceMs: number) => Promise<TimelineAnswer>;
  log: Logger;
  /** Which worker thread this app runs in (shown by /healthz). */
  workerIndex: number;
  /** Requests with async work outstanding (bodies, scrapes); graceful shutdown waits for 0. */
  inflight: { n: number };
  /** Lookup callers → their licence (SEGD_LOOKUP_AUTH). */
  callers: Callers;
  /** Compiled per-partner licences (for callers that are already authenticated, e.g. at WebSocket upgrade). */
  licences: Licences;
  /** Partner uid / device id / universal id → segd uid (the ID graph). */
  resolver: UserResolver;
  /** Shedding on the lookup paths. */
  admission: Admission;
  /** Sampled lookups written for replay (SEGD_CAPTURE_SAMPLE), or null when off. */
  capture: Capture | null;
}
