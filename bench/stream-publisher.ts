// A sustained JetStream feed for the scale-out benches, in a worker thread of
// its own so its event loop never delays the caller's probes and polls:
// `rate` messages/s of `records` NDJSON feed records each (random users of a
// `segd gen` data set, so a restored store sees its own users change), every
// publish acked by the stream, at most `inflight` unacked at once. A publisher
// that cannot keep the rate falls behind by at most a tenth of a second of
// messages, then skips ahead: the rate reached is what it reports, not a
// backlog it bursts later.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { uidFor, FIRST_SEGMENT_ID } from '../src/gen/synthetic.js';
import { prng } from '../src/loadtest/key-mix.js';

export interface PublisherOptions {
  urls: string[];
  subject: string;
  /** Messages per second. */
  rate: number;
  /** Feed records per message. */
  records: number;
  /** Users drawn from: uidFor(seed, 0 … users-1). */
  users: number;
  seed: number;
  taxonomy: number;
  /** Unacked publishes at most. */
  inflight: number;
}

export interface PublisherCounts {
  sent: number;
  acked: number;
  failed: number;
  /** Messages the publisher skipped because it could not keep the rate. */
  skipped: number;
  /** Seconds of publishing (the wait for the last acks after a stop is left out). */
  seconds: number;
  lastError: string | null;
}

export interface Publisher {
  /** The latest counts (posted every 250 ms). */
  counts(): PublisherCounts;
  /** Stops publishing, waits for the acks in flight, ends the thread. */
  stop(): Promise<PublisherCounts>;
}

const EMPTY: PublisherCounts = { sent: 0, acked: 0, failed: 0, skipped: 0, seconds: 0, lastError: null };

export async function startPublisher(o: PublisherOptions): Promise<Publisher> {
  const worker = new Worker(new URL(import.meta.url), { workerData: o });
  let latest = EMPTY;
  let failure: Error | null = null;
  const ended = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('error', (err) => (failure = err));
  let done: (c: PublisherCounts) => void = () => undefined;
  const finished = new Promise<PublisherCounts>((resolve) => (done = resolve));
  const started = new Promise<void>((resolve, reject) => {
    worker.on('message', (m: { started?: true; counts?: PublisherCounts; done?: true }) => {
      if (m.started) resolve();
      if (m.counts) latest = m.counts;
      if (m.done) done(latest);
    });
    void ended.then(() => reject(failure ?? new Error('publisher thread ended before it started')));
  });
  await started;
  return {
    counts: () => {
      if (failure) throw failure;
      return latest;
    },
    async stop() {
      worker.postMessage('stop');
      const counts = await Promise.race([finished, ended.then(() => latest)]);
      // The thread's message port would keep it alive: it has said all it has to say.
      await worker.terminate();
      if (failure) throw failure;
      return counts;
    },
  };
}

async function publishLoop(o: PublisherOptions): Promise<void> {
  const port = parentPort!;
  const nc = await connect({ servers: o.urls, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const js = jetstream(nc);
  const rnd = prng(o.seed ^ 0x9e3779b9);
  const c: PublisherCounts = { ...EMPTY };
  let inFlight = 0;
  let stopping = false;
  port.on('message', (m) => {
    if (m === 'stop') stopping = true;
  });
  const message = () => {
    let body = '';
    for (let r = 0; r < o.records; r++) {
      const uid = uidFor(o.seed, Math.floor(rnd() * o.users));
      const a = FIRST_SEGMENT_ID + Math.floor(rnd() * o.taxonomy);
      const b = FIRST_SEGMENT_ID + Math.floor(rnd() * o.taxonomy);
      body += `{"op":"add","uid":"${uid}","segments":[${a},${b}]}\n`;
    }
    return body;
  };
  port.postMessage({ started: true });
  const t0 = performance.now();
  let due = 0; // messages owed by the clock, sent or skipped
  let postedAt = t0;
  while (!stopping) {
    const now = performance.now();
    c.seconds = (now - t0) / 1000;
    const owed = Math.floor(o.rate * c.seconds) - due;
    // More than 100 ms behind: give up the oldest, so the rate reached is measured, not a backlog.
    const behind = owed - Math.ceil(o.rate / 10);
    if (behind > 0) {
      c.skipped += behind;
      due += behind;
    }
    while (Math.floor(o.rate * c.seconds) > due && inFlight < o.inflight) {
      due++;
      c.sent++;
      inFlight++;
      js.publish(o.subject, message()).then(
        () => {
          c.acked++;
          inFlight--;
        },
        (err: Error) => {
          c.failed++;
          c.lastError = err.message;
          inFlight--;
        },
      );
    }
    if (now - postedAt >= 250) {
      port.postMessage({ counts: { ...c } });
      postedAt = now;
    }
    await sleep(1);
  }
  for (const end = performance.now() + 10_000; inFlight > 0 && performance.now() < end;) await sleep(5);
  await nc.close();
  port.postMessage({ counts: { ...c }, done: true });
}

if (!isMainThread && (workerData as PublisherOptions | undefined)?.subject) {
  await publishLoop(workerData as PublisherOptions);
}
