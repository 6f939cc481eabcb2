// Outbound delivery throughput: `npm run bench:outbound [-- --changes N --batch B]`.
//
// A real store in a temp dir, the writer applying N membership changes (one
// join each, N distinct users) with one webhook destination configured, then
// the sender draining the outbox to a local HTTP receiver (node:http, in a
// worker thread so it does not share the sender's event loop) that answers
// 200 to each batch. Prints: the writer's apply rate without and with the
// destination (what queuing in the same transaction costs), and the changes
// delivered per second (queued → acknowledged, batches of B users).
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
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
});
const N = intFlag(flags, 'changes', { min: 1, max: 100_000_000, def: 200_000 });
const BATCH = intFlag(flags, 'batch', { min: 1, max: 10_000, def: 500 });
const WRITE_CHUNK = 5000;

const RECEIVER = `
const { createServer } = require('node:http');
const { parentPort } = require('node:worker_threads');
let users = 0;
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
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

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-outbound-'));
  const receiver = new Worker(RECEIVER, { eval: true });
  const port = await new Promise<number>((r) => receiver.once('message', (m: { port: number }) => r(m.port)));
  const store = openStore(dir);
  try {
    const log = pino({ level: 'warn' });
    const registry = Registry.load(store);
    const sender = new OutboundSender(store, registry, log, {
      maxBacklog: 10 * N,
      maxAttempts: 5,
      backoffBaseMs: 100,
      backoffMaxMs: 2000,
    });
    for (const op of [
      { kind: 'putPartner', id: 'dsp', body: { segments: '*' } },
      { kind: 'putSegment', id: 1, body: { name: 'one', segtax: 600 } },
      { kind: 'putSegment', id: 2, body: { name: 'two', segtax: 600 } },
    ] as const)
      applyRegistryOp(store, op);
    const bare = apply(store, 0, 1);
    applyRegistryOp(store, {
      kind: 'putDestination',
      id: 'hook',
      body: { partner: 'dsp', url: `http://127.0.0.1:${port}/`, maxUsers: BATCH, maxDelayMs: 0, maxRps: 100_000 },
    });
    sender.registryChanged();
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
          writerChangesPerSec: { noDestination: Math.round(bare), oneDestination: Math.round(queued) },
          deliveredChangesPerSec: Math.round(N / seconds),
          drainSeconds: Number(seconds.toFixed(2)),
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    await receiver.terminate();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
