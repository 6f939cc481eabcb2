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
import { createApp } from '../http/app.js';
import { createLogger } from '../log.js';
import { SharedState, Flag } from './state.js';
import type { FromWorker, ToWorker, WorkerData } from './messages.js';

const data = workerData as WorkerData;
const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const { config } = data;
const log = createLogger(config.logLevel, { worker: data.index });
const store = openStore(config.dataDir, { maxReaders: config.maxReaders, readOnly: true });
const state = new SharedState(data.stateBuffer);
const metrics = new HttpMetrics();
const inflight = { n: 0 };

let scrapeSeq = 0;
const scrapes = new Map<number, { resolve: (t: string) => void; reject: (e: Error) => void }>();
const metricsText = () =>
  new Promise<string>((resolve, reject) => {
    const id = ++scrapeSeq;
    scrapes.set(id, { resolve, reject });
    send({ type: 'scrape', id });
  });

const lookup = new SegmentLookup(store, metrics.filterStats);
const attachFilter = (h: FilterHandle | null) => {
  lookup.filter = h ? new BlockedBloom(h.params, h.buffer) : null;
};
attachFilter(data.filter);
const app = createApp({ config, lookup, state, metrics, metricsText, log, inflight, workerIndex: data.index });
let listenSocket: us_listen_socket | null = null;

app.listen(config.host, data.port, (ls) => {
  if (!ls) {
    send({ type: 'listen-failed', port: data.port });
    return;
  }
  listenSocket = ls;
  send({ type: 'listening', port: uWS.us_socket_local_port(ls) });
});

// The message listener also keeps this thread alive: uWS alone does not.
port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'collect':
      void metrics.registry.getMetricsAsJSON().then((m) => send({ type: 'collected', id: msg.id, metrics: m }));
      break;
    case 'scrape-result': {
      const p = scrapes.get(msg.id);
      scrapes.delete(msg.id);
      if (msg.text !== undefined) p?.resolve(msg.text);
      else p?.reject(new Error(msg.error ?? 'scrape failed'));
      break;
    }
    case 'filter':
      attachFilter(msg.filter);
      break;
    case 'drain':
      void drain();
      break;
  }
});

async function drain(): Promise<void> {
  state.set(Flag.Draining, true);
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  listenSocket = null;
  const deadline = Date.now() + config.shutdownGraceMs;
  while (inflight.n > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (inflight.n > 0) log.warn({ inflight: inflight.n }, 'grace period over; closing with requests in flight');
  // Close idle keep-alive connections too: a worker thread may only end with
  // no open uv handles (Node aborts otherwise). `close` is in uWS.js ≥ 20.x at
  // runtime though missing from this build's typings.
  (app as unknown as { close(): void }).close();
  send({ type: 'drained' });
}
