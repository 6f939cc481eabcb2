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
// (DESIGN.md) is lookup p99 ≤ 1.5 ms during heavy ingest.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { followJsonLog } from '../src/loadtest/json-log.js';
import { uidFor, Synthetic, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import type { LoopSummary } from '../src/loadtest/open-loop.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const USERS = arg('users', 200_000);
const RATE = arg('rate', 10_000);
const SECONDS = arg('seconds', 10);
const BATCH = arg('batch', 5000);
const LAYOUT = process.argv.includes('--layout') ? process.argv[process.argv.indexOf('--layout') + 1] : 'shared';
if (LAYOUT !== 'shared' && LAYOUT !== 'split' && LAYOUT !== 'isolated') throw new Error('--layout is shared, split or isolated');
const CLIENT_CPU = LAYOUT === 'split' ? 0 : 1;
// --single-gc: V8's GC helper threads run at normal priority whatever the loader thread's nice
// value; with --single-threaded-gc each isolate collects on its own thread.
const NODE_FLAGS = process.argv.includes('--single-gc') ? ['--single-threaded-gc'] : [];
const KEY = 'bench-ingest-key-0123456789';
const pin = spawnSync('sh', ['-c', 'command -v taskset'], { stdio: 'ignore' }).status === 0;
const onCpu = (cpu: number, cmd: string[]) => (pin ? ['taskset', '-c', String(cpu), ...cmd] : cmd);

const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'segd-bench-ingest-'));
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));

function say(s: string) {
  process.stderr.write(`bench-ingest: ${s}\n`);
}

async function main() {
  // The pusher (this process) shares the client's core, not segd's.
  if (pin) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const seed = join(dir, 'seed.ndjson');
  say(`generating ${USERS} users…`);
  const gen = spawnSync(process.execPath, [join(ROOT, 'bin/segd.js'), 'gen', '--users', String(USERS), '--out', seed, '--quiet', '--ts', '0']);
  if (gen.status !== 0) throw new Error(`gen failed: ${gen.stderr}`);

  const [cmd, ...args] = onCpu(0, [process.execPath, ...NODE_FLAGS, join(ROOT, 'bin/segd.js'), 'serve']);
  const segd = spawn(cmd!, args, {
    env: { PATH: process.env.PATH ?? '', SEGD_PORT: '0', SEGD_HOST: '127.0.0.1', SEGD_DATA_DIR: join(dir, 'data'), SEGD_SEED: seed, SEGD_WORKERS: '1', SEGD_INGEST_KEYS: KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(segd);
  const log = followJsonLog(segd, 'segd', 1000);
  const port = (await log.waitFor((l) => l.msg === 'listening', 30_000)).port as number;
  const ready = await log.waitFor((l) => l.msg === 'ready', 600_000);
  say(`segd ready on ${port}: ${USERS} users in ${ready.ms} ms`);
  // Only the main thread (tid = pid: the loader) moves; the worker threads stay on CPU 0.
  if (pin && LAYOUT !== 'shared') spawnSync('taskset', ['-p', '-c', '1', String(segd.pid)], { stdio: 'ignore' });

  const paths = Array.from({ length: 100_000 }, (_, i) =>
    `/v1/segments?uid=${encodeURIComponent(uidFor(DEFAULT_SYNTHETIC.seed, i % 5 < 3 ? (i * 7919) % USERS : USERS + i))}`);
  const pathsFile = join(dir, 'paths.txt');
  writeFileSync(pathsFile, paths.join('\n') + '\n');

  const lookups = () =>
    new Promise<LoopSummary>((resolveRun, reject) => {
      const [c, ...a] = onCpu(CLIENT_CPU, [process.execPath, join(ROOT, 'dist/src/loadtest/open-loop-client.js'), '--port', String(port), '--paths', pathsFile, '--rate', String(RATE), '--duration-ms', String(SECONDS * 1000), '--warmup-ms', '1000']);
      const p = spawn(c!, a, { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(p);
      let out = '';
      p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      p.once('exit', (code) => (code === 0 ? resolveRun(JSON.parse(out.trim().split('\n').pop()!) as LoopSummary) : reject(new Error(`client exit ${code}`))));
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
      const r = await fetch(`http://127.0.0.1:${port}/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-ndjson' }, body });
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
  const row = (name: string, s: LoopSummary) =>
    `  ${name.padEnd(22)} ${String(Math.round(s.rps)).padStart(7)}  ${ms(s.latencyUs.p50)}  ${ms(s.latencyUs.p90)}  ${ms(s.latencyUs.p99)}  ${ms(s.latencyUs.p999)}  ${ms(s.latencyUs.max)}   ${ms(s.sendLagUs.p99)}   ${ms(s.serviceUs.p99)}`;
  const where = !pin ? ''
    : LAYOUT === 'split' ? ' (layout split: lookup worker + client on CPU 0, loader thread + pusher on CPU 1)'
    : LAYOUT === 'isolated' ? ' (layout isolated: lookup worker alone on CPU 0, loader thread + client + pusher on CPU 1)'
    : ' (layout shared: segd on CPU 0, client + pusher on CPU 1)';
  console.log(`\nsegd bench-ingest — ${USERS} users, 1 worker${where}${NODE_FLAGS.length ? `, node ${NODE_FLAGS.join(' ')}` : ''}, lookups open loop at ${RATE}/s for ${SECONDS} s`);
  console.log('  phase                    req/s   p50 ms  p90 ms  p99 ms  p99.9    max   client lag p99   p99 from actual send');
  console.log(row('lookups, no ingest', quiet));
  console.log(row('lookups during ingest', busy));
  console.log(`\n  ingest during phase 2: ${applied} records in ${batches} batches, ${Math.round(applied / pushS)} records/s applied and acked (HTTP push, batches of ${BATCH})`);
  const p99 = busy.latencyUs.p99 / 1000;
  console.log(`  [${p99 <= 1.5 ? 'PASS' : 'FAIL'}] lookup p99 during heavy ingest ≤ 1.5 ms: ${p99.toFixed(2)} ms (without ingest: ${(quiet.latencyUs.p99 / 1000).toFixed(2)} ms); from the actual send ${(busy.serviceUs.p99 / 1000).toFixed(2)} ms`);
  console.log('  (on 2 cores segd, the lookup client and this pusher share the CPUs: the client-lag column shows how much of the latency is the client waiting for a core)');
  segd.kill('SIGTERM');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
