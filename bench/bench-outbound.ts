// Outbound delivery throughput: `npm run bench:outbound [-- --changes N --batch B --concurrency C]`,
// and a receiver's outage: `npm run bench:outbound -- --outage-s S [--rate R --users U]`.
//
// A real store in a temp dir, the writer applying N membership changes (one
// join each, N distinct users) with one webhook destination configured, then
// the sender draining the outbox to a local HTTP receiver (node:http, in a
// worker thread so it does not share the sender's event loop) that answers
// 200 to each batch. Prints: the writer's apply rate without and with the
// destination (what queuing in the same transaction costs), and the changes
// delivered per second (queued → acknowledged, batches of B users).
//
// With --outage-s, the receiver answers 503 for S seconds while the writer
// keeps applying R changes a second (flips of U users), then answers 200
// again while the writes go on: reported are the backlog at the end of the
// outage, whether it was compacted (SEGD_OUTBOUND_MAX_BACKLOG: --max-backlog),
// the time until the backlog is drained (down to one batch) and the changes
// delivered per second meanwhile. Bounded: the drain is given at most
// max(60 s, 2 S).
import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { intFlag, parseFlags } from '../src/terminal/flags.js';
import { openStore, type Store } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import type { Change } from '../src/loader/records.js';
import { Registry } from '../src/partners/registry.js';
import { applyRegistryOp } from '../src/partners/admin.js';
import { OutboundSender } from '../src/outbound/sender.js';

const flags = parseFlags('npm run bench:outbound --', process.argv.slice(2), {
  changes: 'membership changes to deliver (default 200000)',
  batch: 'users per request (default 500)',
  concurrency: "the destination's requests in flight (default 1)",
  'outage-s': 'receiver down (503) this many seconds while changes are written (0 = throughput run; at most 600)',
  rate: 'changes written per second during an outage run (default 2000)',
  users: 'users the outage run flips (default 100000)',
  'max-backlog': 'SEGD_OUTBOUND_MAX_BACKLOG for the outage run (default 1000000)',
});
const N = intFlag(flags, 'changes', { min: 1, max: 100_000_000, def: 200_000 });
const BATCH = intFlag(flags, 'batch', { min: 1, max: 10_000, def: 500 });
const CONCURRENCY = intFlag(flags, 'concurrency', { min: 1, max: 64, def: 1 });
const WRITE_CHUNK = 5000;
const OUTAGE_S = intFlag(flags, 'outage-s', { min: 0, max: 600, def: 0 });
const RATE = intFlag(flags, 'rate', { min: 1, max: 1_000_000, def: 2000 });
const USERS = intFlag(flags, 'users', { min: 1, max: 100_000_000, def: 100_000 });
const MAX_BACKLOG = intFlag(flags, 'max-backlog', { min: 100, max: 1_000_000_000, def: 1_000_000 });

const RECEIVER = `
const { createServer } = require('node:http');
const { parentPort } = require('node:worker_threads');
let users = 0;
let down = false;
parentPort.on('message', (m) => { down = m.down; });
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (down) {
      res.writeHead(503);
      return res.end();
    }
    users += JSON.parse(Buffer.concat(chunks).toString()).users.length;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
    parentPort.postMessage({ users });
  });
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
`;

function apply(store: Store, from: number, segment: number): number {
  const writer = new Writer(store);
  const ts = Math.floor(Date.now() / 1000);
  const t0 = performance.now();
  for (let i = 0; i < N; i += WRITE_CHUNK) {
    const changes: Change[] = [];
    for (let k = i; k < Math.min(N, i + WRITE_CHUNK); k++)
      changes.push({ op: 'add', uid: `user-${from + k}`, ids: [segment], ttls: [0], ts });
    writer.apply(changes, ts);
  }
  return N / ((performance.now() - t0) / 1000);
}

interface Rig {
  store: Store;
  receiver: Worker;
  port: number;
  sender: OutboundSender;
}

/**
 * A store in a temp dir holding partner `dsp` and segment 1, the receiver
 * thread, and a sender on them; all of it goes when `run` ends.
 */
async function withRig(maxBacklog: number, log: Logger, run: (rig: Rig) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-outbound-'));
  const receiver = new Worker(RECEIVER, { eval: true });
  const port = await new Promise<number>((r) => receiver.once('message', (m: { port: number }) => r(m.port)));
  const store = openStore(dir);
  try {
    const sender = new OutboundSender(store, Registry.load(store), log, {
      maxBacklog,
      maxAttempts: 5,
      backoffBaseMs: 100,
      backoffMaxMs: 2000,
    });
    applyRegistryOp(store, { kind: 'putPartner', id: 'dsp', body: { segments: '*' } });
    applyRegistryOp(store, { kind: 'putSegment', id: 1, body: { name: 'one', segtax: 600 } });
    await run({ store, receiver, port, sender });
  } finally {
    await receiver.terminate();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Destination `hook`: every segment of `dsp`, to the receiver, in batches of BATCH users. */
function putHook({ store, port, sender }: Rig, maxDelayMs: number): void {
  applyRegistryOp(store, {
    kind: 'putDestination',
    id: 'hook',
    body: {
      partner: 'dsp',
      url: `http://127.0.0.1:${port}/`,
      maxUsers: BATCH,
      concurrency: CONCURRENCY,
      maxDelayMs,
      maxRps: 100_000,
    },
  });
  sender.registryChanged();
}

function main(): Promise<void> {
  return withRig(10 * N, pino({ level: 'warn' }), async (rig) => {
    const { store, receiver, sender } = rig;
    applyRegistryOp(store, { kind: 'putSegment', id: 2, body: { name: 'two', segtax: 600 } });
    const bare = apply(store, 0, 1);
    putHook(rig, 0);
    const queued = apply(store, N, 2);
    const t0 = performance.now();
    const done = new Promise<void>((resolve) =>
      receiver.on('message', (m: { users?: number }) => {
        if ((m.users ?? 0) >= N) resolve();
      }),
    );
    sender.start();
    await done;
    const seconds = (performance.now() - t0) / 1000;
    await sender.stop();
    process.stdout.write(
      JSON.stringify(
        {
          changes: N,
          batchUsers: BATCH,
          concurrency: CONCURRENCY,
          writerChangesPerSec: { noDestination: Math.round(bare), oneDestination: Math.round(queued) },
          deliveredChangesPerSec: Math.round(N / seconds),
          drainSeconds: Number(seconds.toFixed(2)),
        },
        null,
        2,
      ) + '\n',
    );
  });
}

/** The outage run: steady writes, the receiver down for OUTAGE_S seconds, then the drain. */
function outage(): Promise<void> {
  let compactions = 0;
  const logs = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (chunk.includes('outbound backlog compacted')) compactions++;
      done();
    },
  });
  return withRig(MAX_BACKLOG, pino({ level: 'warn' }, logs), async (rig) => {
    const { store, receiver, sender } = rig;
    let delivered = 0;
    receiver.on('message', (m: { users?: number }) => (delivered = m.users ?? delivered));
    putHook(rig, 100);
    sender.start();
    // Steady writes, every 100 ms: flips of segment 1 across USERS users.
    const writer = new Writer(store);
    let written = 0;
    const tick = setInterval(() => {
      const ts = Math.floor(Date.now() / 1000);
      const changes: Change[] = [];
      for (let i = 0; i < RATE / 10; i++, written++) {
        const uid = `user-${written % USERS}`;
        const join = Math.floor(written / USERS) % 2 === 0;
        changes.push(
          join ? { op: 'add', uid, ids: [1], ttls: [0], ts } : { op: 'remove', uid, ids: [1], ttls: [0], ts },
        );
      }
      writer.apply(changes, ts);
    }, 100);
    const backlog = () => sender.status()[0]!.backlog;
    receiver.postMessage({ down: true });
    await sleep(OUTAGE_S * 1000);
    const atEnd = { backlog: backlog(), written, compactions };
    receiver.postMessage({ down: false });
    const t0 = performance.now();
    const delivered0 = delivered;
    const limitMs = Math.max(60_000, 2 * OUTAGE_S * 1000);
    while (backlog() > BATCH && performance.now() - t0 < limitMs) await sleep(100);
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(tick);
    await sender.stop();
    process.stdout.write(
      JSON.stringify(
        {
          outageSeconds: OUTAGE_S,
          writtenPerSec: RATE,
          users: USERS,
          batchUsers: BATCH,
          concurrency: CONCURRENCY,
          maxBacklog: MAX_BACKLOG,
          changesWrittenDuringOutage: atEnd.written,
          backlogAtEndOfOutage: atEnd.backlog,
          compactedDuringOutage: atEnd.compactions,
          drained: backlog() <= BATCH,
          drainSeconds: Number(seconds.toFixed(2)),
          deliveredChangesPerSecWhileDraining: Math.round((delivered - delivered0) / seconds),
          compactionsInAll: compactions,
        },
        null,
        2,
      ) + '\n',
    );
  });
}

await (OUTAGE_S > 0 ? outage() : main());
