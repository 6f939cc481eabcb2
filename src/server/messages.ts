// Messages between the supervisor (main thread) and lookup workers.
import type { Config } from '../config/schema.js';
import type { FilterHandle } from '../filters/known-users.js';

/** Work only the main thread can do, asked for by a worker: method → [args, result]. */
export interface Rpc {
  /** Prometheus text for the whole process. */
  scrape: [Record<string, never>, string];
  /** The event timeline (metrics/timeline.ts) from a wall-clock ms on. */
  timeline: [{ since: number }, import('../metrics/timeline.js').TimelineAnswer];
  /** A segment's members as a bloom filter export (JSON text). */
  exportSegment: [{ segment: number; fpRate: number }, string];
  /** Parse and apply a pushed batch (raw body transferred, not copied). */
  ingest: [{ req: import('../loader/push.js').PushRequest; maxListed: number }, import('../loader/push.js').PushAnswer];
  /** A change to partners or the taxonomy; every worker reloads its Registry before the answer. */
  registry: [import('../partners/admin.js').RegistryOp, import('../partners/admin.js').RegistryResult];
  /** ID graph matches from cookie sync, batched by the worker (identity/match-queue.ts). */
  matches: [{ items: import('../identity/match-queue.js').MatchItem[] }, { applied: number; refused: number }];
  /** Opt-out or deletion: memberships and linked ids removed, tombstone and audit entry written, in one transaction. */
  forget: [import('../privacy/forget.js').ForgetRequest, import('../privacy/forget.js').ForgetAnswer];
  /** Writer-side upkeep run now instead of on its timer (a TTL sweep pass, a full filter save). */
  maintenance: [{ task: import('../http/deps.js').MaintenanceTask }, import('../http/deps.js').MaintenanceAnswer];
  /** Exposure pixel hits, batched by the worker: users join their campaign's exposure segments. */
  exposures: [{ items: import('../loader/exposures.js').ExposureItem[] }, { applied: number }];
  /** An insights query (licences checked by the worker), answered from the index on this thread; null: the index is off. */
  insights: [import('../insights/insights.js').InsightsQuery, import('../insights/insights.js').InsightsAnswer | null];
  /** Destinations with their delivery state, or a dead-letter replay, from the outbound sender on this thread. */
  outbound: [import('../outbound/admin.js').OutboundQuery, import('../outbound/admin.js').OutboundAnswer];
}
export type RpcMethod = keyof Rpc;

export type ToWorker =
  /** Stop accepting, give requests in flight up to `graceMs`, close; a later drain can only shorten it. */
  | { type: 'drain'; graceMs: number }
  | { type: 'collect'; id: number }
  | { type: 'rpc-result'; id: number; result?: unknown; error?: string }
  | { type: 'filter'; filter: FilterHandle | null }
  /** Partners or taxonomy changed in the store: reload the Registry. */
  | { type: 'registry'; id: number };

export type FromWorker =
  | { type: 'listening'; port: number }
  | { type: 'listen-failed'; port: number }
  | { type: 'collected'; id: number; metrics: object }
  /** Timeline events this worker recorded (GC pauses, loop-delay spikes), for the main thread's ring. */
  | { type: 'events'; events: import('../metrics/timeline.js').TimelineEvent[] }
  | { type: 'rpc'; id: number; method: RpcMethod; args: unknown }
  | { type: 'registry-reloaded'; id: number }
  | { type: 'drained' };

export interface WorkerData {
  config: Config;
  stateBuffer: SharedArrayBuffer;
  index: number;
  port: number;
  filter: FilterHandle | null;
}
