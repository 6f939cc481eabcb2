// Lookups while a heavy delta stream is applied: `npm run bench:ingest
// [-- --users N --rate R --seconds S --batch B --layout shared|split|isolated --single-gc]`.
//
// CPU layouts (2 cores, with taskset):
//   shared  segd (lookup worker + loader thread) on CPU 0; lookup client and pusher on CPU 1.
//   split   the loader thread (segd's main thread) moved to CPU 1 with the pusher; the lookup
//           worker thread on CPU 0 with the lookup client.
//   isolated  the lookup worker thread alone on CPU 0; the loader thread (nice 10), the lookup
//           client and the pusher on CPU 1. Closest to a node under heavy ingest: lookup workers
//           on all but one core (SEGD_WORKERS = cores - 1), the loader beside them, the callers
//           on other machines.
//
// One run, same segd, same lookup schedule (the µs open-loop client, keys 60%
// known / 40% unknown): first with no ingest, then while this process pushes
// delta batches over HTTP (`POST /v1/ingest`) as fast as segd acks them.
// Prints lookup latency for both phases and the delta apply rate; the target
// (docs/design.md) is lookup p99 ≤ 1.5 ms during heavy ingest.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intFlag, parseFlags } from '../src/terminal/flags.js';
import { uidFor, Synthetic, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { driveHttp, type DriveResult } from '../src/loadtest/drive-http.js';
import { hasCommand, installCleanupHandlers, pin as pinAll, tempDirs } from '../src/loadtest/processes.js';
import { runBench } from './run-bench.js';
import { startSeededSegd } from './seeded-segd.js';

const flags = parseFlags(
  'npm run bench:ingest --',
  process.argv.slice(2),
  {
    users: 'users in the data set (default 200000)',
    rate: 'lookups/s, open loop (default 10000)',
    seconds: 'seconds per phase (default 10)',
    batch: 'records per ingest request (default 5000)',
    layout: 'CPU layout: shared (default), split or isolated',
    'single-gc': 'segd runs with --single-threaded-gc',
  },
  ['single-gc'],
);
const USERS = intFlag(flags, 'users', { min: 1000, max: 100_000_000, def: 200_000 });
const RATE = intFlag(flags, 'rate', { min: 1, max: 10_000_000, def: 10_000 });
const SECONDS = intFlag(flags, 'seconds', { min: 1, max: 3600, def: 10 });
const BATCH = intFlag(flags, 'batch', { min: 1, max: 1_000_000, def: 5000 });
const LAYOUT = flags.layout ?? 'shared';
if (LAYOUT !== 'shared' && LAYOUT !== 'split' && LAYOUT !== 'isolated')
  throw new Error('--layout is shared, split or isolated');
const CLIENT_CPU = LAYOUT === 'split' ? 0 : 1;
// --single-gc: V8's GC helper threads run at normal priority whatever the loader thread's nice
// value; with --single-threaded-gc each isolate collects on its own thread.
const NODE_FLAGS = flags['single-gc'] ? ['--single-threaded-gc'] : [];
const KEY = 'bench-ingest-key-0123456789';
const pin = hasCommand('taskset');

function say(s: string) {
  process.stderr.write(`bench-ingest: ${s}\n`);
}
installCleanupHandlers(say);

async function main() {
  // The pusher (this process) shares the client's core, not segd's.
  if (pin) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-ingest-'));
  tempDirs.add(dir);
  const { segd: server } = await startSeededSegd({
    dir,
    users: USERS,
    seed: DEFAULT_SYNTHETIC.seed,
    workers: 1,
    host: '127.0.0.1',
    nodeFlags: NODE_FLAGS,
    env: { SEGD_INGEST_KEYS: KEY },
    say,
  });
  const { port, proc: segd } = server;
  if (pin) pinAll(segd.pid!, 0);
  // Only the main thread (tid = pid: the loader) moves; the worker threads stay on CPU 0.
  if (pin && LAYOUT !== 'shared') spawnSync('taskset', ['-p', '-c', '1', String(segd.pid)], { stdio: 'ignore' });

  const paths = Array.from(
    { length: 100_000 },
    (_, i) =>
      `/v1/segments?uid=${encodeURIComponent(uidFor(DEFAULT_SYNTHETIC.seed, i % 5 < 3 ? (i * 7919) % USERS : USERS + i))}`,
  );
  const requests = paths.map((path) => ({ method: 'GET' as const, path, headers: {} }));
  const lookups = () =>
    driveHttp({
      generator: 'client',
      host: '127.0.0.1',
      port,
      requests,
      rate: RATE,
      connections: 50,
      warmupS: 1,
      durationS: SECONDS,
      timeoutS: 10,
      maxRequests: Number.MAX_SAFE_INTEGER,
      okBelow: 300,
      ...(pin ? { cpu: CLIENT_CPU } : {}),
    });

  say(`phase 1: ${RATE} lookups/s for ${SECONDS} s, no ingest`);
  const quiet = await lookups();

  say(`phase 2: the same lookups while deltas are pushed in batches of ${BATCH}`);
  const syn = new Synthetic({ ...DEFAULT_SYNTHETIC, seed: 99 });
  // Bodies are built before the phase, so the pusher costs its core little more than the sends
  // (building them on the fly made the lookup client, which shares that core, fall behind).
  const bodies: string[] = [];
  for (let b = 0, next = 0; b < 40; b++) {
    let body = '';
    for (let j = 0; j < BATCH; j++, next++) {
      // Half updates of existing users, half new users; no ts, so a resent body applies again.
      const u = syn.user(next);
      const uid = next % 2 ? uidFor(DEFAULT_SYNTHETIC.seed, next % USERS) : u.uid;
      body += `{"op":"add","uid":"${uid}","segments":${JSON.stringify(u.segments)}}\n`;
    }
    bodies.push(body);
  }
  let pushing = true;
  let applied = 0;
  let batches = 0;
  const pushT0 = performance.now();
  const pusher = (async () => {
    while (pushing) {
      const body = bodies[batches % bodies.length]!;
      const r = await fetch(`http://127.0.0.1:${port}/v1/ingest`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-ndjson' },
        body,
      });
      const j = (await r.json()) as { applied: number };
      applied += j.applied;
      batches++;
    }
  })();
  const busy = await lookups();
  pushing = false;
  await pusher;
  const pushS = (performance.now() - pushT0) / 1000;

  const ms = (us: number) => (us / 1000).toFixed(2).padStart(7);
  const row = (name: string, { figures: f, info }: DriveResult) =>
    `  ${name.padEnd(22)} ${String(Math.round(f.rps)).padStart(7)}  ${ms(f.latencyUs.p50)}  ${ms(f.latencyUs.p90)}  ${ms(f.latencyUs.p99)}  ${ms(f.latencyUs.p999)}  ${ms(f.latencyUs.max)}   ${ms(info.sendLagUs!.p99)}   ${ms(info.serviceUs!.p99)}`;
  const where = !pin
    ? ''
    : LAYOUT === 'split'
      ? ' (layout split: lookup worker + client on CPU 0, loader thread + pusher on CPU 1)'
      : LAYOUT === 'isolated'
        ? ' (layout isolated: lookup worker alone on CPU 0, loader thread + client + pusher on CPU 1)'
        : ' (layout shared: segd on CPU 0, client + pusher on CPU 1)';
  console.log(
    `\nsegd bench-ingest — ${USERS} users, 1 worker${where}${NODE_FLAGS.length ? `, node ${NODE_FLAGS.join(' ')}` : ''}, lookups open loop at ${RATE}/s for ${SECONDS} s`,
  );
  console.log(
    '  phase                    req/s   p50 ms  p90 ms  p99 ms  p99.9    max   client lag p99   p99 from actual send',
  );
  console.log(row('lookups, no ingest', quiet));
  console.log(row('lookups during ingest', busy));
  console.log(
    `\n  ingest during phase 2: ${applied} records in ${batches} batches, ${Math.round(applied / pushS)} records/s applied and acked (HTTP push, batches of ${BATCH})`,
  );
  const p99 = busy.figures.latencyUs.p99 / 1000;
  console.log(
    `  [${p99 <= 1.5 ? 'PASS' : 'FAIL'}] lookup p99 during heavy ingest ≤ 1.5 ms: ${p99.toFixed(2)} ms (without ingest: ${(quiet.figures.latencyUs.p99 / 1000).toFixed(2)} ms); from the actual send ${(busy.info.serviceUs!.p99 / 1000).toFixed(2)} ms`,
  );
  console.log(
    '  (on 2 cores segd, the lookup client and this pusher share the CPUs: the client-lag column shows how much of the latency is the client waiting for a core)',
  );
}

runBench(main);
