// `segd serve`: the composition root of a node. The main thread owns the LMDB
// writer (the loader) and supervises N lookup worker threads on one port.
//
//   start:    open store → start workers (healthz answers, readyz says loading)
//             → initial load (seed + inbox) → ready → poll the inbox
//   SIGTERM:  readyz says draining → stop the loader between batches →
//             workers stop accepting and finish in-flight requests → close LMDB
//             (all within SEGD_SHUTDOWN_TIMEOUT_MS; past it, what still hangs is
//             logged, the store is closed if it can be, and shutdown rejects)
import { performance } from 'node:perf_hooks';
import type { MaintenanceAnswer } from '../http/deps.js';
import { Worker } from 'node:worker_threads';
import { createServer } from 'node:net';
import type { Config } from '../config/schema.js';
import { openStore, userCount, writemapFromConfig, type Store } from '../store/env.js';
import { Loader } from '../loader/loader.js';
import { KnownUsers } from '../filters/known-users.js';
import { ProcessMetrics } from '../metrics/process.js';
import { RuntimeObservers, unservedMonitorMs } from '../metrics/runtime.js';
import { timeline } from '../metrics/timeline.js';
import type { Logger } from '../log.js';
import { SharedState, Flag, Gauge, GENERATION_SLOT, COMMIT_SLOT } from '../shared-state.js';
import { STALL_REASONS } from '../store/write-failure.js';
import type { FromWorker, ToWorker, WorkerData, Rpc, RpcMethod } from './messages.js';
import { SegmentExporter } from '../filters/segment-export.js';
import { writePidfile, removePidfile, runningServer } from './pidfile.js';
import { applyRegistryOp, upsertFromConfig, type RegistrySeed } from '../partners/admin.js';
import { Waiting, settlesBy } from '../waiting.js';
import { lowerThisThread } from './thread-priority.js';
import { lmdbAddon } from '../store/lmdb-addon.js';
import { Insights } from '../insights/insights.js';
import { Exposures } from '../loader/exposures.js';
import { Registry } from '../partners/registry.js';
import { OutboundSender } from '../outbound/sender.js';
import { answerOutbound } from '../outbound/admin.js';
import { registerOutboundMetrics } from '../outbound/metrics.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);
/** A worker that fails again within this long of its last restart is restarted after a delay, doubling up to the max. */
const RESTART_CALM_MS = 60_000;
const RESTART_MIN_DELAY_MS = 250;
const RESTART_MAX_DELAY_MS = 10_000;

interface Slot {
  index: number;
  worker: Worker;
  drained: Promise<void>;
}

export interface RunningServer {
  port: number;
  ready: Promise<void>;
  /** Stops the node; rejects with ShutdownTimeout when it could not within SEGD_SHUTDOWN_TIMEOUT_MS. */
  shutdown(reason: string): Promise<void>;
  /** What a shutdown in progress still waits for. */
  waitingFor(): string[];
  /** Cuts a shutdown short: workers close their connections at once, so the process can exit. */
  closeNow(): Promise<void>;
}

export async function serve(
  config: Readonly<Config>,
  log: Logger,
  registrySeed?: RegistrySeed,
): Promise<RunningServer> {
  const other = runningServer(config.dataDir);
  if (other !== null) throw new Error(`another segd (pid ${other}) is serving ${config.dataDir}`);
  const state = SharedState.create();
  const store = openStore(config.dataDir, {
    maxReaders: config.maxReaders,
    ...writemapFromConfig(config.writemapHeadroomMb),
    generationCell: { cells: state.flags, index: GENERATION_SLOT },
    commitCell: { cells: state.flags, index: COMMIT_SLOT },
  });
  writePidfile(config.dataDir);
  if (registrySeed) upsertFromConfig(store, registrySeed);
  const known =
    config.bloomUsers > 0
      ? new KnownUsers(
          store,
          { expectedUsers: config.bloomUsers, fpRate: config.bloomFpRate, saveEveryMs: config.bloomSaveMs },
          log,
        )
      : null;
  const metrics = new ProcessMetrics(store, known);
  // Before the loader: the index watches every write to members from the first one on.
  const insights = config.insights === 'on' ? await Insights.open(store, config.insightsSaveMs, log) : null;
  if (insights === null) Insights.disabled(store);
  // Before the loader too: the outbox is written in the transactions of the changes it records.
  const outbound = new OutboundSender(store, Registry.load(store), log.child({ part: 'outbound' }), {
    maxBacklog: config.outboundMaxBacklog,
    maxAttempts: config.outboundMaxAttempts,
    backoffBaseMs: config.outboundBackoffBaseMs,
    backoffMaxMs: config.outboundBackoffMaxMs,
  });
  registerOutboundMetrics(metrics.registry, () => outbound.status());
  const loader = new Loader(store, config, log, metrics, {
    onNewUser: known?.onNewUser,
    // Every committed loader transaction, whatever its source.
    afterBatch: (seconds) => {
      metrics.commitSeconds.observe(seconds);
      metrics.lastCommit.set(Date.now() / 1000);
      known?.afterBatch();
    },
    // The store is full: every source retries its uncommitted work until a commit succeeds again.
    onStall: (reason, err) => {
      state.setValue(Gauge.LoaderStall, reason === null ? 0 : 1 + STALL_REASONS.indexOf(reason));
      for (const r of STALL_REASONS) metrics.stalled.labels(r).set(r === reason ? 1 : 0);
      if (reason === null) log.info('store takes writes again; loader resumed');
      else
        log.error(
          { reason, err: (err as Error | undefined)?.message, dataDir: config.dataDir },
          'store full: loader stopped, lookups keep serving the last committed data',
        );
    },
  });
  // Event-loop delay, GC pauses and CPU of this (the writer's) thread; workers run their own.
  // It serves no lookups: a coarser monitor, which does not wake it every ms while it idles.
  timeline.resize(config.timelineEvents);
  const runtime = new RuntimeObservers(
    metrics.registry,
    { thread: 'main' },
    timeline,
    unservedMonitorMs(config.loopMonitorMs),
  );
  const slots: Slot[] = [];
  /** The last restart of each worker index, for the restart backoff. */
  const restarts = new Map<number, { at: number; delay: number }>();
  let shuttingDown = false;
  let port = config.port;

  // Metrics scrape: ask every worker for its registry, merge with ours.
  let collectSeq = 0;
  const collecting = new Map<number, { want: number; got: object[]; done: (m: object[]) => void }>();
  const collect = async (): Promise<string> => {
    const t0 = performance.now();
    const id = ++collectSeq;
    const live = slots.filter((s) => s.worker.threadId > 0);
    const got = await new Promise<object[]>((resolve) => {
      collecting.set(id, { want: live.length, got: [], done: resolve });
      for (const s of live) s.worker.postMessage({ type: 'collect', id } satisfies ToWorker);
      setTimeout(() => collecting.get(id)?.done(collecting.get(id)!.got), 1000).unref();
    });
    collecting.delete(id);
    const text = await metrics.text(got);
    timeline.mark('metrics-scrape', t0, { workers: got.length });
    return text;
  };
  // A registry change is answered once every live worker has reloaded it, so
  // the next request sees it whichever worker takes it (a worker that does not
  // answer within a second, being restarted say, loads the registry afresh at start).
  let reloadSeq = 0;
  const reloading = new Map<number, { want: number; got: number; done: () => void }>();
  const reloadWorkers = async (): Promise<void> => {
    const id = ++reloadSeq;
    const live = slots.filter((s) => s.worker.threadId > 0);
    await new Promise<void>((resolve) => {
      reloading.set(id, { want: live.length, got: 0, done: resolve });
      for (const s of live) s.worker.postMessage({ type: 'registry', id } satisfies ToWorker);
      if (live.length === 0) resolve();
      setTimeout(resolve, 1000).unref();
    });
    reloading.delete(id);
  };
  // One collection serves every scrape for SEGD_METRICS_CACHE_MS, counted from
  // when it started, so concurrent scrapes share it: scrapes cannot make the
  // workers do more than one fan-out per period. A failed one is not kept.
  let cached: { at: number; text: Promise<string> } | null = null;
  const scrape = (): Promise<string> => {
    const now = performance.now();
    if (cached !== null && now - cached.at < config.metricsCacheMs) return cached.text;
    const entry = { at: now, text: collect() };
    cached = entry;
    entry.text.catch(() => {
      if (cached === entry) cached = null;
    });
    return entry.text;
  };

  const exporter = new SegmentExporter(store);
  // A new exposure segment is in the taxonomy, and every worker has it, before its first members are written.
  const exposures = new Exposures(store, loader.writer, config.exposureTtl, async (id, body) => {
    applyRegistryOp(store, { kind: 'putSegment', id, body });
    await reloadWorkers();
    loader.taxonomy.refresh();
    outbound.registryChanged();
  });
  const rpcs: { [M in RpcMethod]: (args: Rpc[M][0]) => Promise<Rpc[M][1]> } = {
    scrape: () => scrape(),
    exportSegment: ({ segment, fpRate }) => exporter.export(segment, fpRate),
    ingest: async ({ req, maxListed }) => loader.push.apply(req, maxListed),
    matches: async ({ items }) => loader.matches.apply(items),
    forget: async (req) => loader.privacy.run(req),
    registry: async (op) => {
      const t0 = performance.now();
      const r = applyRegistryOp(store, op);
      if (r.ok) await reloadWorkers();
      if (r.ok) loader.taxonomy.refresh();
      if (r.ok) outbound.registryChanged();
      if (r.ok) timeline.mark('registry-reload', t0, { change: op.kind, id: op.id });
      return r;
    },
    timeline: async ({ since }) => timeline.since(since),
    maintenance: async ({ task }): Promise<MaintenanceAnswer> => {
      const t0 = performance.now();
      if (task === 'sweep') {
        const p = await loader.sweepNow();
        const detail = { scanned: p.scanned, users: p.users, removed: p.removed };
        return { task, ran: p.ran, ms: performance.now() - t0, detail };
      }
      const saved = await known?.saveNow();
      return {
        task,
        ran: !!saved,
        ms: performance.now() - t0,
        detail: saved ? { bytes: saved.bytes } : ({} as Record<string, number>),
      };
    },
    insights: async (q) => insights?.answer(q) ?? null,
    exposures: ({ items }) => exposures.apply(items),
    outbound: async (q) => answerOutbound(outbound, q),
  };

  const startWorker = (index: number, wantPort: number) =>
    new Promise<{ slot: Slot; port: number }>((resolve, reject) => {
      const data: WorkerData = {
        config: { ...config },
        stateBuffer: state.buffer,
        index,
        port: wantPort,
        filter: known?.handle() ?? null,
      };
      const worker = new Worker(WORKER_URL, { workerData: data });
      let onDrained!: () => void;
      const slot: Slot = { index, worker, drained: new Promise((r) => (onDrained = r)) };
      let listening = false;
      worker.on('message', (msg: FromWorker) => {
        switch (msg.type) {
          case 'listening':
            listening = true;
            // The filter may have been swapped since this worker's workerData
            // was made (a rebuild during start-up or a restart): send the current one.
            worker.postMessage({ type: 'filter', filter: known?.handle() ?? null } satisfies ToWorker);
            resolve({ slot, port: msg.port });
            break;
          case 'listen-failed':
            reject(new Error(`worker ${index} could not listen on ${config.host}:${msg.port}`));
            void worker.terminate();
            break;
          case 'collected': {
            const c = collecting.get(msg.id);
            if (c) {
              c.got.push(msg.metrics);
              if (c.got.length >= c.want) c.done(c.got);
            }
            break;
          }
          case 'registry-reloaded': {
            const c = reloading.get(msg.id);
            if (c && ++c.got >= c.want) c.done();
            break;
          }
          case 'events':
            timeline.append(msg.events);
            break;
          case 'rpc':
            rpcs[msg.method](msg.args as never).then(
              (result) => worker.postMessage({ type: 'rpc-result', id: msg.id, result } satisfies ToWorker),
              (err: Error) => {
                log.error({ err, method: msg.method }, 'worker request failed');
                worker.postMessage({ type: 'rpc-result', id: msg.id, error: err.message } satisfies ToWorker);
              },
            );
            break;
          case 'drained':
            onDrained();
            break;
        }
      });
      worker.on('error', (err) => {
        log.error({ err, worker: index }, 'worker failed');
        if (!listening) reject(err);
      });
      worker.on('exit', (code) => {
        onDrained();
        if (shuttingDown || !listening) return;
        // A crashed worker is replaced; the others keep serving meanwhile.
        // Failing again soon after a restart waits longer each time (a worker
        // that fails at every start must not spin the process).
        const now = Date.now();
        const last = restarts.get(index);
        const delay =
          last !== undefined && now - last.at < RESTART_CALM_MS
            ? Math.min(Math.max(last.delay * 2, RESTART_MIN_DELAY_MS), RESTART_MAX_DELAY_MS)
            : 0;
        restarts.set(index, { at: now, delay });
        log.error({ worker: index, code, delayMs: delay }, 'worker exited; restarting it');
        const i = slots.indexOf(slot);
        setTimeout(() => {
          if (shuttingDown) return;
          startWorker(index, port).then(
            (r) => {
              if (i >= 0) slots[i] = r.slot;
              if (shuttingDown) r.slot.worker.postMessage({ type: 'drain', graceMs: 0 } satisfies ToWorker);
            },
            (err: unknown) => log.error({ err, worker: index }, 'worker restart failed'),
          );
        }, delay);
      });
    });

  // The filter first: a saved one is attached by workers from their first request.
  await known?.init();
  known?.onChange((filter) => {
    for (const s of slots) s.worker.postMessage({ type: 'filter', filter } satisfies ToWorker);
  });

  try {
    // Port 0: pick a free port here, because workers can only share a port
    // they all bind explicitly. A race with another process is retried.
    for (let attempt = 0; ; attempt++) {
      // Workers bind with SO_REUSEPORT so they can share the port; that would
      // also let them join another process already on it. Refuse instead.
      const want = config.port === 0 ? await freePort(config.host) : await portIsFree(config.host, config.port);
      try {
        const first = await startWorker(0, want);
        slots.push(first.slot);
        port = first.port;
        break;
      } catch (err) {
        if (config.port !== 0 || attempt >= 4) throw err;
      }
    }
    const rest = await Promise.all(Array.from({ length: config.workers - 1 }, (_, i) => startWorker(i + 1, port)));
    for (const r of rest) slots.push(r.slot);
  } catch (err) {
    shuttingDown = true;
    await Promise.all(slots.map((s) => s.worker.terminate()));
    await known?.close();
    await insights?.close();
    await store.close();
    removePidfile(config.dataDir);
    throw err;
  }
  log.info({ port, host: config.host, workers: config.workers, dataDir: config.dataDir }, 'listening');
  const addon = lmdbAddon();
  if (addon.fromSource) log.info({ addon: addon.path }, 'lmdb addon built from source');
  else
    log.warn(
      { addon: addon.path },
      'lmdb-js runs its prebuilt addon, a debug build (a write costs ≈ 1.5× the CPU of a source build): npm run build:lmdb',
    );
  // The loader (this thread) yields the CPU to lookups: Linux priorities are
  // per thread, and workers were created before this, so only the loader
  // thread drops. Measured with bench:ingest: lookup p99 during heavy push
  // ingest, segd pinned to one core, went from 24.8 ms to 11.9–15.4 ms at nice 10.
  const lowered = lowerThisThread(config.loaderPriority);
  if (lowered) log.warn({ why: lowered, mode: config.loaderPriority }, 'could not lower the loader thread priority');
  else log.info({ mode: config.loaderPriority, tid: process.pid }, 'loader thread priority');

  const ready = (async () => {
    const t0 = performance.now();
    await loader.initialLoad();
    state.set(Flag.Loaded, true);
    metrics.ready.set(1);
    log.info({ ms: Math.round(performance.now() - t0), users: userCount(store) }, 'ready');
    loader.startPolling();
    outbound.start();
    const nats = loader.nats;
    if (nats) {
      metrics.watchNats(
        () => nats.pending,
        () => nats.connected,
      );
      // Set as each group commits, so /readyz turns ready with the lag, not up to a poll later.
      nats.onPending = (n) => state.setValue(Gauge.NatsPending, n);
      state.setValue(Gauge.NatsPending, nats.pending);
    }
  })();
  ready.catch((err: unknown) => {
    if (!shuttingDown) log.error({ err }, 'initial load failed');
  });

  // One shutdown, however often it is asked for; bounded by SEGD_SHUTDOWN_TIMEOUT_MS
  // whatever a source or a worker is doing.
  let stopping: Promise<void> | null = null;
  const waiting = new Waiting();
  const shutdown = (reason: string) => (stopping ??= stopAll(reason));
  // A worker ends only after closing its own connections (Node aborts the
  // process otherwise): each is told to cut requests in flight off early
  // enough to close before the deadline, or at once.
  const drainWorkers = (graceMs: number) => {
    for (const s of slots) s.worker.postMessage({ type: 'drain', graceMs } satisfies ToWorker);
  };
  const workersDrained = () => Promise.all(slots.map((s) => waiting.track(`worker ${s.index}: drain`, s.drained)));
  const stopAll = async (reason: string) => {
    shuttingDown = true;
    runtime.stop();
    const timeoutMs = config.shutdownTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    log.info({ reason, timeoutMs }, 'shutting down');
    state.set(Flag.Draining, true);
    // Stop taking connections at once; the loader finishes its batch meanwhile.
    drainWorkers(Math.min(config.shutdownGraceMs, timeoutMs - Math.min(CLOSE_STEP_MS, timeoutMs / 2)));
    const drained = await settlesBy(
      Promise.all([
        loader.stop(waiting.track),
        waiting.track('outbound sender: stop', outbound.stop()),
        workersDrained(),
      ]),
      deadline,
    );
    if (!drained) {
      log.error(
        { waitingFor: waiting.list(), timeoutMs },
        'shutdown timed out; closing the store without waiting for the rest',
      );
      drainWorkers(0);
    }
    // Past the deadline each closing step still gets a moment: a clean LMDB close is worth it.
    const closed = await closeSteps(
      [
        [
          'workers: close',
          async () => {
            await workersDrained();
            await Promise.all(slots.map((s) => s.worker.terminate()));
          },
        ],
        ['known-users filter: save', async () => known?.close()],
        ['insights index: save', async () => insights?.close()],
        ['store: close', () => closeStore(store, log)],
      ],
      waiting,
      deadline,
    );
    removePidfile(config.dataDir);
    if (!closed) log.error({ waitingFor: waiting.list() }, 'shutdown could not close everything');
    if (!drained || !closed) throw new ShutdownTimeout(waiting.list());
    log.info('stopped');
  };
  /** For a second signal: workers close their connections now (the process may then exit). */
  const closeNow = async () => {
    drainWorkers(0);
    await settlesBy(workersDrained(), Date.now() + CLOSE_STEP_MS);
  };

  return { port, ready, shutdown, closeNow, waitingFor: () => waiting.list() };
}

/** A shutdown that did not finish in SEGD_SHUTDOWN_TIMEOUT_MS: what it still waited for. */
export class ShutdownTimeout extends Error {
  constructor(readonly waitingFor: string[]) {
    super(`shutdown timed out waiting for ${waitingFor.join(', ') || 'nothing'}`);
    this.name = 'ShutdownTimeout';
  }
}

/** How long each closing step may take once the shutdown deadline has passed. */
const CLOSE_STEP_MS = 2000;

/** Runs the steps in order, each until the deadline (or CLOSE_STEP_MS past it); false at the first one that hangs. */
async function closeSteps(
  steps: [string, () => Promise<unknown>][],
  waiting: Waiting,
  deadline: number,
): Promise<boolean> {
  for (const [name, step] of steps) {
    const run = waiting.track(name, step());
    if (!(await settlesBy(run, Math.max(deadline, Date.now() + CLOSE_STEP_MS)))) return false;
  }
  return true;
}

async function closeStore(store: Store, log: Logger): Promise<void> {
  try {
    await store.close();
  } catch (err) {
    log.error({ err }, 'closing the store failed');
  }
}

/** The port, if nothing listens on it now (a plain bind, without SO_REUSEPORT). */
function portIsFree(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(err.code === 'EADDRINUSE' ? `port ${port} on ${host} is in use by another process` : err.message),
      ),
    );
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(port)));
  });
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
