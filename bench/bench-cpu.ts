// `npm run bench:cpu -- --route enrich|batch|lookup [--base DIR] [--prof DIR]`:
// the server's CPU time per request under wrk, for segd and the bare
// uWebSockets.js hello-world answering the same requests (POST bodies read
// and dropped), alternating rounds (each starting at the next server),
// median of each, and the median of each round's own hello/x ratio (the
// figure to quote: the VM's speed moves between rounds). A round in which
// wrk timed out is left out for that server; any other error ends the run. On a shared machine CPU time per request moves far less
// than requests per second, so this is how a change is judged before the
// quiet-window wrk A/B (`segd loadtest … --compare`, `npm run
// bench:activation`).
//
//   enrich: POST /openrtb2/enrich, the banner fixture minified (≈ 2.5 KB),
//           user.id 60% known / 40% unknown, a partner key.
//   batch:  POST /v1/segments:batch, 1000 uids a body (JSON), same key mix
//           (20 bodies: 12,000 known users, uniformly); --zipf: lookup's mix;
//           also keys per CPU-second.
//   lookup: GET /v1/segments?uid=…, 60% known users drawn Zipf (s=1), 40% unknown.
//
// --base DIR[,DIR…]: segds from other checkouts (their bin/segd.js, built),
// driven in the same rounds: before/after for a change. --prof DIR: segd
// (this checkout's) runs with --cpu-prof, its profiles written to DIR on exit.
// --fastify (lookup, batch): Fastify + Redis holding the same users joins the
// rounds, its CPU time Fastify's and redis-server's together. --calls
// (lookup): the hello-world making the uWS calls a lookup makes and nothing
// else joins them: what is left between it and segd is segd's own work.
// The CPU time is the whole process's (/proc/<pid>/stat: every thread).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { intFlag, parseFlags } from '../src/terminal/flags.js';
import { uidFor, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { sampleKeys } from '../src/loadtest/key-mix.js';
import { driveHttp } from '../src/loadtest/drive-http.js';
import {
  installCleanupHandlers,
  pin,
  planPinning,
  startServer,
  stopChild,
  tempDirs,
} from '../src/loadtest/processes.js';
import type { HttpReq } from '../src/loadtest/scenarios.js';
import { startFastifyRedis } from '../src/loadtest/baselines.js';
import { runBench } from './run-bench.js';
import { writeActivationData } from './activation-data.js';
import { envWithoutSegd, SEGD_BIN } from './seeded-segd.js';
import { cpuOfStat } from './proc-stat.js';

const ROOT = resolve(import.meta.dirname, '../..');
const flags = parseFlags(
  'npm run bench:cpu --',
  process.argv.slice(2),
  {
    route: 'enrich | batch | lookup (default enrich)',
    users: 'users in the data set (default 100000)',
    seconds: 'seconds per measured run (default 3)',
    rounds: 'alternating rounds (default 7)',
    connections: 'wrk connections (default 50)',
    base: 'other checkouts (comma-separated) whose segd is measured in the same rounds',
    prof: "write this segd's CPU profiles (--cpu-prof) to this dir",
    perf: 'run this segd with --perf-basic-prof and print its pid, for `perf record -g -e cpu-clock:u -p PID`',
    fastify: 'lookup, batch: Fastify + Redis on the same users joins the rounds (CPU of both processes)',
    calls: "lookup: the hello-world making a lookup's uWS calls and nothing else (HELLO_CALLS=1) joins the rounds",
    zipf: "batch: draw the bodies' keys as lookup does (known users Zipf s=1) instead of 12,000 known users uniformly",
  },
  ['perf', 'zipf', 'fastify', 'calls'],
);
const ROUTE = typeof flags.route === 'string' ? flags.route : 'enrich';
if (ROUTE !== 'enrich' && ROUTE !== 'batch' && ROUTE !== 'lookup')
  throw new Error('--route takes enrich, batch or lookup');
const USERS = intFlag(flags, 'users', { min: 1000, max: 100_000_000, def: 100_000 });
const SECONDS = intFlag(flags, 'seconds', { min: 1, max: 3600, def: 3 });
const ROUNDS = intFlag(flags, 'rounds', { min: 1, max: 100, def: 7 });
const CONNECTIONS = intFlag(flags, 'connections', { min: 1, max: 10_000, def: 50 });
const BASES = typeof flags.base === 'string' ? flags.base.split(',').map((d) => resolve(d)) : [];
const PROF = typeof flags.prof === 'string' ? resolve(flags.prof) : null;
const PERF = flags.perf === true;
const ZIPF = flags.zipf === true;
const FASTIFY = flags.fastify === true;
const CALLS = flags.calls === true;
if (CALLS && ROUTE !== 'lookup') throw new Error('--calls takes --route lookup');
if (FASTIFY && ROUTE === 'enrich') throw new Error('--fastify takes --route lookup or batch');
const BATCH = 1000;
const KEY = 'bench-partner-key-0123456789';
const HOST = '127.0.0.1';
const pinning = planPinning(true);
installCleanupHandlers((m) => process.stderr.write(`bench-cpu: ${m}\n`));

/** [user, system] CPU seconds of every thread of `pid` so far. */
function cpuSeconds(pid: number): [number, number] {
  return cpuOfStat(`/proc/${pid}/stat`);
}

function cpuOf(pids: number[]): [number, number] {
  const sum: [number, number] = [0, 0];
  for (const pid of pids) {
    const [u, s] = cpuSeconds(pid);
    sum[0] += u;
    sum[1] += s;
  }
  return sum;
}

function requests(): { reqs: HttpReq[]; keysPerRequest: number } {
  if (ROUTE === 'lookup') {
    const keys = sampleKeys({ seed: DEFAULT_SYNTHETIC.seed, users: USERS, hitRatio: 0.6, zipf: 1, count: 20_000 });
    const reqs: HttpReq[] = keys.uids.map((uid) => ({
      method: 'GET',
      path: `/v1/segments?uid=${encodeURIComponent(uid)}`,
      headers: {},
    }));
    return { reqs, keysPerRequest: 1 };
  }
  const known = (i: number) => uidFor(DEFAULT_SYNTHETIC.seed, Math.floor((i * 7919) % USERS));
  const unknown = (i: number) => uidFor(DEFAULT_SYNTHETIC.seed, USERS + i);
  const uidAt = (i: number) => (i % 5 < 3 ? known(i) : unknown(i));
  if (ROUTE === 'batch') {
    const zipf = ZIPF
      ? sampleKeys({ seed: DEFAULT_SYNTHETIC.seed, users: USERS, hitRatio: 0.6, zipf: 1, count: 20 * BATCH }).uids
      : null;
    const reqs: HttpReq[] = Array.from({ length: 20 }, (_, b) => ({
      method: 'POST',
      path: '/v1/segments:batch',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        uids: Array.from({ length: BATCH }, (_, k) => (zipf ? zipf[b * BATCH + k]! : uidAt(b * BATCH + k))),
      }),
    }));
    return { reqs, keysPerRequest: BATCH };
  }
  const banner = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/openrtb/banner.json'), 'utf8'));
  const reqs: HttpReq[] = Array.from({ length: 500 }, (_, i) => ({
    method: 'POST',
    path: '/openrtb2/enrich',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ ...banner, id: `req-${i}`, tmax: 1000, user: { ...banner.user, id: uidAt(i) } }),
  }));
  return { reqs, keysPerRequest: 1 };
}

interface Target {
  name: string;
  /** Its processes: the CPU time is theirs together. */
  pids: number[];
  port: number;
  /** CPU µs per request, per round, and the system time's share of it. */
  us: number[];
  sys: number[];
  rps: number[];
}

async function startSegd(name: string, bin: string, dir: string, data: { feed: string; config: string }) {
  const nodeFlags =
    name !== 'segd'
      ? []
      : [
          ...(PROF ? ['--cpu-prof', '--cpu-prof-dir', PROF] : []),
          ...(PERF ? ['--perf-basic-prof', '--interpreted-frames-native-stack'] : []),
        ];
  const server = await startServer(name, [...nodeFlags, bin, 'serve'], {
    ...envWithoutSegd(),
    SEGD_PORT: '0',
    SEGD_HOST: HOST,
    SEGD_DATA_DIR: join(dir, `data-${name}`),
    SEGD_SEED: data.feed,
    SEGD_WORKERS: '1',
    SEGD_CONFIG: data.config,
    SEGD_LOG_LEVEL: 'info',
    SEGD_DMP_DOMAIN: 'dmp.example',
    SEGD_SHUTDOWN_GRACE_MS: '1000',
  });
  await server.waitLog((x) => x.msg === 'ready', 120_000, 'ready');
  if (name === 'segd' && PERF) process.stderr.write(`segd pid ${server.proc.pid}\n`);
  return server;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-cpu-'));
  tempDirs.add(dir);
  if (pinning.pinned) pin(process.pid, pinning.generatorCpu!);
  const data = writeActivationData(dir, USERS, KEY);
  const { reqs, keysPerRequest } = requests();

  const extraPids = new Map<object, number[]>();
  const helloJs = join(ROOT, 'dist/src/loadtest/hello-world.js');
  const servers = [await startServer('hello', [helloJs], {})];
  if (CALLS) servers.push(await startServer('uws-calls', [helloJs], { HELLO_CALLS: '1' }));
  if (FASTIFY) {
    const say = (m: string) => process.stderr.write(`${m}\n`);
    const { fastify, redis } = await startFastifyRedis({
      users: USERS,
      seed: DEFAULT_SYNTHETIC.seed,
      quiet: true,
      say,
    });
    servers.push(fastify);
    extraPids.set(fastify, [redis.pid]);
  }
  for (const [k, base] of BASES.entries())
    servers.push(await startSegd(BASES.length > 1 ? `base${k + 1}` : 'base', join(base, 'bin/segd.js'), dir, data));
  const segd = await startSegd('segd', SEGD_BIN, dir, data);
  servers.push(segd);
  const targets: Target[] = servers.map((s) => {
    const pids = [s.proc.pid!, ...(extraPids.get(s) ?? [])];
    if (pinning.pinned) for (const pid of pids) pin(pid, pinning.serverCpu!);
    return { name: s.name, pids, port: s.port, us: [], sys: [], rps: [] };
  });

  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
    // Each round starts at the next server: in a fixed order the last one ran
    // 5–9% slower on the shared machine (two copies of one build, 11 rounds,
    // paired ratio 1.09 last against second to last).
    for (let k = 0; k < targets.length; k++) {
      const t = targets[(r + k) % targets.length]!;
      let cpu0: [number, number] = [0, 0];
      const { figures } = await driveHttp({
        host: HOST,
        port: t.port,
        requests: reqs,
        generator: 'wrk',
        connections: CONNECTIONS,
        rate: 0,
        warmupS: 1,
        durationS: SECONDS,
        timeoutS: 10,
        maxRequests: Number.MAX_SAFE_INTEGER,
        okBelow: 300,
        ...(pinning.pinned ? { cpu: pinning.generatorCpu! } : {}),
        onMeasureStart: () => void (cpu0 = cpuOf(t.pids)),
      });
      const [user, sys] = cpuOf(t.pids);
      const cpu = user - cpu0[0] + sys - cpu0[1];
      const { timeouts, ...others } = figures.errors;
      const otherErrors = figures.errorCount - timeouts;
      if (otherErrors > 0)
        throw new Error(`${t.name}: ${otherErrors} errors in round ${r + 1}: ${JSON.stringify(others)}`);
      if (timeouts > 0) {
        // wrk's timeouts on a loaded machine: the round is lost for this server, not the run.
        process.stderr.write(`round ${r + 1}: ${t.name} had ${timeouts} timeouts; left out\n`);
        t.us.push(NaN);
        t.sys.push(NaN);
        t.rps.push(NaN);
        continue;
      }
      t.us.push((cpu * 1e6) / figures.requests);
      t.sys.push((sys - cpu0[1]) / cpu);
      t.rps.push(figures.rps);
    }
  }
  if (PROF) await stopChild(segd.proc); // --cpu-prof writes on exit

  // Rounds lost to timeouts are NaN: left out of every median and ratio.
  const median = (xs: number[]) => {
    const kept = xs.filter(Number.isFinite).sort((a, b) => a - b);
    return kept.length === 0 ? NaN : kept[kept.length >> 1]!;
  };
  const min = (xs: number[]) => Math.min(...xs.filter(Number.isFinite));
  const hello = median(targets[0]!.us);
  console.log(
    `\nsegd CPU per request — ${ROUTE}, ${USERS} users, ${ROUNDS} alternating rounds × ${SECONDS} s, median (min) (Node ${process.version}; ${pinning.why})\n`,
  );
  for (const t of targets) {
    const us = median(t.us);
    const keys =
      keysPerRequest > 1 ? `   ${Math.round((keysPerRequest * 1e6) / us).toLocaleString('en-US')} keys/CPU-s` : '';
    console.log(
      `${t.name.padEnd(13)} ${us.toFixed(2).padStart(9)} (${min(t.us).toFixed(2)}) µs CPU/request (${Math.round(100 * median(t.sys))}% sys)   ${Math.round(median(t.rps)).toLocaleString('en-US').padStart(9)} req/s   hello/${t.name} ${(hello / us).toFixed(3)}${keys}`,
    );
  }
  // A round drives every server back to back, so its ratio shares that
  // round's speed and load (the VM's speed moves within a run: the
  // hello-world's own cost by a third between rounds); the median of the
  // rounds' ratios moves less than the ratio of the medians.
  const perRound = (num: Target, den: Target, digits: number) => {
    const ratios = den.us.map((u, r) => num.us[r]! / u);
    return `${median(ratios).toFixed(3)} (${ratios.map((x) => x.toFixed(digits)).join(' ')})`;
  };
  const helloWorld = targets[0]!;
  for (const t of targets.slice(1)) console.log(`hello/${t.name} per round, median: ${perRound(helloWorld, t, 3)}`);
  const last = targets[targets.length - 1]!;
  for (const t of targets.slice(1, -1))
    console.log(`${last.name}/${t.name} CPU per request, median of the rounds' ratios: ${perRound(last, t, 2)}`);
  console.log(
    '\nevery round (µs):',
    JSON.stringify(Object.fromEntries(targets.map((t) => [t.name, t.us.map((u) => +u.toFixed(2))]))),
  );
}

runBench(main);
