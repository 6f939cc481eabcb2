// A lookup worker thread: opens the store (the same in-process LMDB env as the
// loader, read-only by use), builds the app, listens on the shared port, and
// drains on request. One per core; the kernel spreads connections (SO_REUSEPORT).
import { parentPort, workerData } from 'node:worker_threads';
import uWS, { type us_listen_socket } from 'uWebSockets.js';
import { openStore } from '../store/env.js';
import { SegmentLookup } from '../lookup/segments.js';
import { BlockedBloom } from '../filters/blocked-bloom.js';
import type { FilterHandle } from '../filters/known-users.js';
import { HttpMetrics } from '../metrics/http.js';
import { RuntimeObservers } from '../metrics/runtime.js';
import { timeline } from '../metrics/timeline.js';
import { createApp } from '../http/app.js';
import { createLogger, flushLog, lastWordsLogger } from '../log.js';
import { Registry } from '../partners/registry.js';
import { Licences } from '../lookup/licences.js';
import { graphResolver } from '../lookup/resolve.js';
import { Callers } from '../http/caller.js';
import { Admission } from '../http/admission.js';
import { Capture } from '../http/capture.js';
import { IdGraph } from '../identity/graph.js';
import { MatchQueue } from '../identity/match-queue.js';
import type { ExposureItem } from '../loader/exposures.js';
import { SharedState, Flag, GENERATION_SLOT, COMMIT_SLOT } from '../shared-state.js';
import type { FromWorker, ToWorker, WorkerData, Rpc, RpcMethod } from './messages.js';
import { restoreThisThread, threadId } from './thread-priority.js';

const data = workerData as WorkerData;
// A worker restarted after the loader thread lowered its own priority
// inherits that priority (nice value or SCHED_IDLE); take normal priority back.
const lowered = restoreThisThread();
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const { config } = data;
// The kernel's id of this thread is what `ps -T`, `perf sched` and `chrt -p` name it by.
const log = createLogger(config.logLevel, { worker: data.index, tid: threadId() });
if (lowered) log.warn({ why: lowered }, 'could not take normal CPU priority back from the loader');
const state = new SharedState(data.stateBuffer);
const store = openStore(config.dataDir, {
  maxReaders: config.maxReaders,
  readOnly: true,
  generationCell: { cells: state.flags, index: GENERATION_SLOT },
  commitCell: { cells: state.flags, index: COMMIT_SLOT },
});
const metrics = new HttpMetrics();
timeline.thread = `worker ${data.index}`;
const runtime = new RuntimeObservers(
  metrics.registry,
  { thread: 'worker', worker: String(data.index) },
  timeline,
  config.loopMonitorMs,
);
/** How often this worker hands its timeline events (GC pauses, loop-delay spikes) to the main thread's ring. */
const EVENTS_EVERY_MS = 1000;
const eventsTimer = setInterval(() => {
  const events = timeline.drain();
  if (events.length) send({ type: 'events', events });
}, EVENTS_EVERY_MS);
eventsTimer.unref();
const inflight = { n: 0 };

let rpcSeq = 0;
const pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
function rpc<M extends RpcMethod>(method: M, args: Rpc[M][0], transfer: ArrayBuffer[] = []): Promise<Rpc[M][1]> {
  return new Promise((resolve, reject) => {
    const id = ++rpcSeq;
    pending.set(id, { resolve: resolve as (r: unknown) => void, reject });
    port.postMessage({ type: 'rpc', id, method, args } satisfies FromWorker, transfer);
  });
}

const lookup = new SegmentLookup(store, metrics.filterStats);
const registry = Registry.load(store);
const graph = new IdGraph(store, config.maxUidBytes);
/** One filter, users and id keys: lookups and id resolution ask it before LMDB. */
const attachFilter = (h: FilterHandle | null) => {
  lookup.filter = graph.filter = h ? new BlockedBloom(h.params, h.buffer) : null;
};
attachFilter(data.filter);
const licences = new Licences(registry);
const admission = new Admission(
  { lookups: config.maxInflight, keyed: config.maxInflightKeyed, public: config.maxInflightPublic },
  config.shedLagMs,
);
const matches = new MatchQueue(
  (items) => rpc('matches', { items }),
  (err, lost) => log.error({ err, lost }, 'cookie-sync matches were not stored'),
  (outcome, n) => metrics.queueOutcome('matches', outcome, n),
);
const capture = Capture.open(config, data.index, config.workers, log);
const exposures = new MatchQueue<ExposureItem>(
  (items) => rpc('exposures', { items }),
  (err, lost) => log.error({ err, lost }, 'exposure pixel hits were not stored'),
  (outcome, n) => metrics.queueOutcome('exposures', outcome, n),
);
const app = createApp({
  capture,
  config,
  lookup,
  state,
  metrics,
  log,
  inflight,
  registry,
  workerIndex: data.index,
  licences,
  admission,
  callers: new Callers(registry, licences, config.lookupAuth === 'required', config.adminKeys),
  resolver: graphResolver(graph, config.maxUidBytes),
  metricsText: () => rpc('scrape', {}),
  exportSegment: (segment, fpRate) => rpc('exportSegment', { segment, fpRate }),
  ingest: (req, maxListed) => rpc('ingest', { req, maxListed }, [req.body]),
  changeRegistry: (op) => rpc('registry', op),
  graph,
  matches,
  forget: (req) => rpc('forget', req),
  timeline: (since) => rpc('timeline', { since }),
  maintenance: (task) => rpc('maintenance', { task }),
  insights: (q) => rpc('insights', q),
  outbound: (q) => rpc('outbound', q),
  exposures,
});
let listenSocket: us_listen_socket | null = null;

// A throw that escaped every guard (a timer, a message handler) leaves this
// worker in an unknown state: log it, stop uWS and end the thread; the
// supervisor starts a replacement. Stopping uWS first matters: a worker
// thread that ends with uWS sockets open aborts the whole process.
let failing = false;
process.on('uncaughtException', (err) => {
  if (failing) return;
  failing = true;
  try {
    lastWordsLogger(log).fatal({ err }, 'worker failed; closing it so the supervisor starts a replacement');
  } catch {
    /* the exit below matters more than the log line */
  }
  admission.stop();
  try {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    listenSocket = null;
    (app as unknown as { close(): void }).close();
  } catch {
    /* closing as much as we can */
  }
  // Next turn: uWS's handles finish closing before the thread ends.
  setImmediate(() => process.exit(1));
});
// A failed async step (a promise nobody awaited) is logged; the worker's state is intact.
process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection in a worker'));

// Fault injection for the test suite only: the route exists only when the
// test sets SEGD_TEST_FAULTS=1 (never in production), and makes this worker
// fail the way a bug in a timer would.
if (process.env.SEGD_TEST_FAULTS === '1') {
  app.get('/__test/fail-worker', (res) => {
    setTimeout(() => {
      throw new Error('injected worker failure (SEGD_TEST_FAULTS)');
    }, 0);
    res.end(String(data.index));
  });
}

app.listen(config.host, data.port, (ls) => {
  if (!ls) {
    send({ type: 'listen-failed', port: data.port });
    return;
  }
  listenSocket = ls;
  log.info({ port: uWS.us_socket_local_port(ls) }, 'worker listening');
  send({ type: 'listening', port: uWS.us_socket_local_port(ls) });
});

// The message listener also keeps this thread alive: uWS alone does not.
port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'collect':
      void metrics.registry.getMetricsAsJSON().then((m) => send({ type: 'collected', id: msg.id, metrics: m }));
      break;
    case 'rpc-result': {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error === undefined) p?.resolve(msg.result);
      else p?.reject(new Error(msg.error));
      break;
    }
    case 'filter':
      attachFilter(msg.filter);
      break;
    case 'registry':
      registry.reload();
      licences.refresh(); // now, not in the first lookup after the change
      send({ type: 'registry-reloaded', id: msg.id });
      break;
    case 'drain':
      drainUntil = Math.min(drainUntil, Date.now() + msg.graceMs);
      draining ??= drain();
      break;
  }
});

let draining: Promise<void> | null = null;
/** When requests still in flight are cut off (a later drain message can bring it forward). */
let drainUntil = Infinity;

async function drain(): Promise<void> {
  // Whatever fails here, the supervisor hears "drained": it must not wait for
  // a worker that will never say so.
  try {
    state.set(Flag.Draining, true);
    admission.stop();
    runtime.stop();
    clearInterval(eventsTimer);
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    listenSocket = null;
    matches.flush();
    exposures.flush();
    while ((inflight.n > 0 || matches.inFlight > 0 || exposures.inFlight > 0) && Date.now() < drainUntil)
      await new Promise((r) => setTimeout(r, 10));
    if (inflight.n > 0) log.warn({ inflight: inflight.n }, 'grace period over; closing with requests in flight');
    await capture?.close();
    // Close idle keep-alive connections too: a worker thread may only end with
    // no open uv handles (Node aborts the whole process otherwise, also on
    // process.exit). `close` is in uWS.js ≥ 20.x at runtime though missing
    // from this build's typings.
    (app as unknown as { close(): void }).close();
  } catch (err) {
    log.error({ err }, 'draining the worker failed');
  } finally {
    // The supervisor terminates this thread on "drained": the drain's log lines first.
    await flushLog(log);
    send({ type: 'drained' });
  }
}
