// `npm run bench [-- flags]`: single-lookup throughput and latency of segd
// against a bare uWebSockets.js hello-world measured in the same run, on the
// same machine, with the same generator settings (docs/design.md "Targets" and
// "Measuring on this kind of machine").
//
// One run:
//   1. `segd gen` writes an N-user feed (default 1,000,000) into a temp dir;
//   2. segd starts with SEGD_WORKERS=1 and that feed as SEGD_SEED (import time
//      and rate are printed), then the hello-world starts;
//   3. both servers are pinned to one CPU and this process (the generators)
//      to another with `taskset`, when it exists;
//   4. closed loop (max req/s): autocannon, then wrk if on PATH, alternating
//      hello, segd, hello, segd … with a 2 s warm-up before each measured run;
//   5. half load: open loop at min(½ × segd's max, what the µs client can
//      drive), with autocannon's `overallRate` (whole-ms latencies) and with
//      the harness's open-loop client, which records every latency in µs
//      (hdr-histogram-js), both servers at the same rate;
//   6. prints a table with the docs/design.md targets marked PASS/FAIL and writes
//      every figure to bench-out/bench-lookup-<timestamp>.json.
//
// Both servers get the very same request sequence: paths
// `/v1/segments?uid=…` drawn from the data set — by default 60% known users
// (Zipf-skewed over i < N) and 40% unknown users (i ≥ N, same key shapes).
// The hello-world ignores the path, so generator cost is identical for both.
//
// Every run goes through the harness's HTTP driver (src/loadtest/drive-http.ts),
// so this bench and `segd loadtest` measure with the same generators.
//
// The benchmark reports; it does not fail on a missed target. It exits non-zero
// only when something crashed. Every process it starts is stopped by pid (also
// on error and SIGINT), and its temp dir is removed.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { intFlag, numFlag, parseFlags, type FlagSpec } from '../src/terminal/flags.js';
import { DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { envWithoutSegd, startSeededSegd } from './seeded-segd.js';
import { AUTOCANNON_REQUESTS_PER_CONNECTION, driveHttp } from '../src/loadtest/drive-http.js';
import { sampleKeys } from '../src/loadtest/key-mix.js';
import {
  hasCommand,
  httpGet,
  installCleanupHandlers,
  pin,
  planPinning,
  startServer,
  stopChild,
  tempDirs,
  type Pinning,
  type Server,
} from '../src/loadtest/processes.js';
import { runBench } from './run-bench.js';
import type { Percentiles as Latency } from '../src/loadtest/recorder.js';
import type { HttpReq } from '../src/loadtest/scenarios.js';

const ROOT = resolve(import.meta.dirname, '../..');
const HELLO_JS = join(ROOT, 'dist/src/loadtest/hello-world.js');
const HOST = '127.0.0.1';

// ───────────────────────────── flags ─────────────────────────────

const SPEC: FlagSpec = {
  users: 'users in the generated data set (takes 100k, 1M; default 1M)',
  workers: 'SEGD_WORKERS for segd (default 1)',
  duration: 'seconds per measured run (default 10)',
  warmup: 'seconds of warm-up before each measured run, not counted (default 2)',
  rounds: 'closed-loop rounds, each hello then segd (default 2)',
  connections: 'connections, for every generator (default 50)',
  known: 'share of requests for known users, the rest unknown users (default 0.6)',
  zipf: 'Zipf exponent of the known-user skew (default 1.0)',
  paths: 'distinct precomputed request paths, cycled (default 100000)',
  seed: `generator seed (default ${DEFAULT_SYNTHETIC.seed})`,
  rate: 'half-load rate in req/s (0 = auto: min(½ segd max, client limit); default 0)',
  'no-wrk': 'skip wrk even if it is on PATH',
  'no-pin': 'do not pin with taskset',
};

function parseOpts(argv: string[]) {
  const f = parseFlags('npm run bench --', argv, SPEC, ['no-wrk', 'no-pin']);
  return {
    users: intFlag(f, 'users', { min: 1000, max: 100_000_000, def: 1_000_000 }),
    workers: intFlag(f, 'workers', { min: 1, max: 256, def: 1 }),
    durationS: intFlag(f, 'duration', { min: 1, max: 3600, def: 10 }),
    warmupS: intFlag(f, 'warmup', { min: 0, max: 600, def: 2 }),
    rounds: intFlag(f, 'rounds', { min: 1, max: 100, def: 2 }),
    connections: intFlag(f, 'connections', { min: 1, max: 10_000, def: 50 }),
    known: numFlag(f, 'known', { min: 0, max: 1, def: 0.6 }),
    zipf: numFlag(f, 'zipf', { min: 0, max: 5, def: 1 }),
    paths: intFlag(f, 'paths', { min: 1000, max: 10_000_000, def: 100_000 }),
    seed: intFlag(f, 'seed', { min: 0, max: 0xffff_ffff, def: DEFAULT_SYNTHETIC.seed }),
    rate: intFlag(f, 'rate', { min: 0, max: 10_000_000, def: 0 }),
    wrk: f['no-wrk'] !== true,
    pin: f['no-pin'] !== true,
  };
}
type Opts = ReturnType<typeof parseOpts>;

class UsageError extends Error {}

// ───────────────────────────── progress ─────────────────────────────

const T_START = performance.now();
/** Before pinning: os.availableParallelism() would then say 1. */
const CPU_COUNT = cpus().length;
function phase(msg: string): void {
  process.stderr.write(`[bench ${((performance.now() - T_START) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const kfmt = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : fmtInt(n));

installCleanupHandlers(phase);

// ───────────────────────────── the request mix ─────────────────────────────

/** Lookups for the request mix (src/loadtest/key-mix.ts: Zipf-skewed known users, uniform unknown ones). */
function buildRequests(o: Opts) {
  const mix = sampleKeys({ seed: o.seed, users: o.users, hitRatio: o.known, zipf: o.zipf, count: o.paths });
  const requests: HttpReq[] = mix.uids.map((uid) => ({
    method: 'GET',
    path: `/v1/segments?uid=${encodeURIComponent(uid)}`,
    headers: {},
  }));
  return { requests, knownShare: mix.knownShare, distinctUsers: mix.distinct };
}

// ───────────────────────────── measurements ─────────────────────────────

type ServerName = 'hello' | 'segd';
type Generator = 'autocannon' | 'wrk' | 'node-µs';

interface Measurement {
  phase: 'closed' | 'half';
  server: ServerName;
  generator: Generator;
  round: number;
  rps: number;
  requests: number;
  seconds: number;
  /** All latencies in µs; `resolutionUs` says what they can resolve. */
  latencyUs: Latency;
  resolutionUs: number;
  errors: number;
  non2xx: number;
  targetRate?: number;
  /** node-µs only: latency measured from the actual send (no queueing correction). */
  serviceUs?: Latency;
  /** node-µs only: how late the client sent requests relative to the schedule. */
  sendLagUs?: Latency;
}

/** The harness's generator names for this bench's: the µs client is the harness's open-loop client. */
const DRIVER = { autocannon: 'autocannon', wrk: 'wrk', 'node-µs': 'client' } as const;

/**
 * One run of `generator` against `server` through the harness's HTTP driver
 * (rate 0: closed loop). autocannon rows keep autocannon's own summary, whole
 * milliseconds, as every earlier run of this bench printed them.
 */
async function measure(
  server: Server,
  name: ServerName,
  phaseName: 'closed' | 'half',
  round: number,
  generator: Generator,
  rate: number,
  o: Opts,
  requests: HttpReq[],
  pinning: Pinning,
  window = { warmupS: o.warmupS, durationS: o.durationS },
): Promise<Measurement> {
  const { info, figures: f } = await driveHttp({
    host: HOST,
    port: server.port,
    requests,
    generator: DRIVER[generator],
    connections: o.connections,
    rate,
    ...window,
    timeoutS: 10,
    maxRequests: Number.MAX_SAFE_INTEGER,
    okBelow: 300,
    ...(pinning.pinned ? { cpu: pinning.generatorCpu! } : {}),
  });
  server.check();
  return {
    phase: phaseName,
    server: name,
    generator,
    round,
    rps: f.rps,
    requests: f.requests,
    seconds: f.seconds,
    latencyUs: info.autocannonMs ?? f.latencyUs,
    resolutionUs: info.autocannonMs ? 1000 : 1,
    errors: f.errors.timeouts + f.errors.connection + f.errors.other,
    non2xx: Object.values(f.errors.status).reduce((a, b) => a + b, 0),
    ...(rate > 0 ? { targetRate: rate } : {}),
    ...(info.serviceUs ? { serviceUs: info.serviceUs } : {}),
    ...(info.sendLagUs ? { sendLagUs: info.sendLagUs } : {}),
  };
}

// ───────────────────────────── report ─────────────────────────────

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function fmtLat(us: number, resolutionUs: number): string {
  if (!Number.isFinite(us)) return '–';
  if (resolutionUs >= 1000) return `${Math.round(us / 1000)} ms*`;
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 100_000) return `${(us / 1000).toFixed(2)} ms`;
  return `${(us / 1000).toFixed(0)} ms`;
}

interface Row {
  server: ServerName;
  generator: string;
  rps: number;
  rounds: number[];
  lat: Latency;
  resolutionUs: number;
  ratio?: string;
  note?: string;
}

function summarize(
  ms: Measurement[],
  server: ServerName,
  generator: Generator,
  phaseName: 'closed' | 'half',
  label: string,
): Row | undefined {
  const mine = ms.filter((m) => m.server === server && m.generator === generator && m.phase === phaseName);
  if (!mine.length) return undefined;
  const avg = (f: (l: Latency) => number) => mean(mine.map((m) => f(m.latencyUs)));
  return {
    server,
    generator: label,
    rps: mean(mine.map((m) => m.rps)),
    rounds: mine.map((m) => m.rps),
    lat: {
      p50: avg((l) => l.p50),
      p90: avg((l) => l.p90),
      p99: avg((l) => l.p99),
      p999: avg((l) => l.p999),
      max: Math.max(...mine.map((m) => m.latencyUs.max)),
      mean: avg((l) => l.mean),
    },
    resolutionUs: mine[0]!.resolutionUs,
  };
}

function table(rows: Row[]): string {
  const head = ['server', 'generator', 'req/s', 'per round', 'p50', 'p90', 'p99', 'p99.9', 'max', 'segd/hello'];
  const body = rows.map((r) => [
    r.server,
    r.generator,
    fmtInt(r.rps),
    r.rounds.length > 1 ? r.rounds.map(kfmt).join(' / ') : '',
    fmtLat(r.lat.p50, r.resolutionUs),
    fmtLat(r.lat.p90, r.resolutionUs),
    fmtLat(r.lat.p99, r.resolutionUs),
    fmtLat(r.lat.p999, r.resolutionUs),
    fmtLat(r.lat.max, r.resolutionUs),
    r.ratio ?? '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([2, 4, 5, 6, 7, 8]);
  const line = (cells: string[]) =>
    '  ' +
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '─'.repeat(w))), ...body.map(line)].join('\n');
}

interface TargetCheck {
  target: string;
  measured: string;
  pass: boolean | null;
  note?: string;
}

const mark = (p: boolean | null) => (p === null ? '[ n/a]' : p ? '[PASS]' : '[FAIL]');

// ───────────────────────────── main ─────────────────────────────

async function main(): Promise<void> {
  let o: Opts;
  try {
    o = parseOpts(process.argv.slice(2));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const startedAt = new Date();
  const haveWrk = o.wrk && hasCommand('wrk');
  const pinning = planPinning(o.pin);
  phase(
    `bench-lookup: ${fmtInt(o.users)} users, ${o.workers} segd worker(s), c=${o.connections}, ${o.durationS} s runs after ${o.warmupS} s warm-up, ${o.rounds} round(s); ` +
      `wrk: ${haveWrk ? 'yes' : o.wrk ? 'not on PATH' : 'skipped'}; ${pinning.why}`,
  );

  const tmp = mkdtempSync(join(tmpdir(), 'segd-bench-'));
  tempDirs.add(tmp);

  // (a) the data set, (b) segd importing it into an empty store
  const { segd, imp } = await startSeededSegd({
    dir: tmp,
    users: o.users,
    seed: o.seed,
    workers: o.workers,
    host: HOST,
    say: phase,
  });
  const env = envWithoutSegd();

  // (c) the baseline
  phase('starting the uWebSockets.js hello-world');
  const hello = await startServer('hello-world', [HELLO_JS, '0'], { ...env, HELLO_HOST: HOST });

  // the request mix, shared by every generator and both servers
  const { requests, knownShare, distinctUsers } = buildRequests(o);
  phase(
    `request mix: ${fmtInt(requests.length)} paths, ${(knownShare * 100).toFixed(1)}% known users (Zipf s=${o.zipf}), ${fmtInt(distinctUsers)} distinct users`,
  );

  // sanity: the servers answer, and segd knows the known keys
  const sample = requests.slice(0, 200).map((r) => r.path);
  let knownHits = 0;
  for (const p of sample) {
    const r = await httpGet(segd.port, p);
    if (r.status !== 200) throw new Error(`segd answered ${r.status} to ${p}: ${r.body}`);
    if (!/"segments":\[\]/.test(r.body)) knownHits++;
  }
  const h = await httpGet(hello.port, sample[0]!);
  if (h.status !== 200 || h.body !== 'Hello World!') throw new Error(`hello-world answered ${h.status} ${h.body}`);
  phase(`sanity check: ${knownHits}/${sample.length} sampled keys have segments in segd`);
  if (knownShare > 0 && knownHits === 0)
    throw new Error('segd knows none of the sampled "known" keys: the feed and the key generator disagree');

  // (d) pinning
  if (pinning.pinned) {
    pin(segd.proc.pid!, pinning.serverCpu!);
    pin(hello.proc.pid!, pinning.serverCpu!);
    pin(process.pid, pinning.generatorCpu!);
    phase(pinning.why);
  } else {
    phase(pinning.why);
  }

  const servers: Array<[ServerName, Server]> = [
    ['hello', hello],
    ['segd', segd],
  ];
  const ms: Measurement[] = [];
  const show = (m: Measurement) =>
    phase(
      `  ${m.server.padEnd(5)} ${m.generator.padEnd(10)} ${fmtInt(m.rps).padStart(9)} req/s  p50 ${fmtLat(m.latencyUs.p50, m.resolutionUs)}  p99 ${fmtLat(m.latencyUs.p99, m.resolutionUs)}` +
        `${m.errors || m.non2xx ? `  errors ${m.errors} non-2xx ${m.non2xx}` : ''}`,
    );

  // (e) closed loop, autocannon
  for (let round = 1; round <= o.rounds; round++) {
    for (const [name, srv] of servers) {
      phase(`closed loop, autocannon, round ${round}/${o.rounds}: ${name}`);
      const m = await measure(srv, name, 'closed', round, 'autocannon', 0, o, requests, pinning);
      ms.push(m);
      show(m);
    }
  }

  // (f) closed loop, wrk
  if (haveWrk) {
    for (let round = 1; round <= o.rounds; round++) {
      for (const [name, srv] of servers) {
        phase(`closed loop, wrk, round ${round}/${o.rounds}: ${name}`);
        const m = await measure(srv, name, 'closed', round, 'wrk', 0, o, requests, pinning);
        ms.push(m);
        show(m);
      }
    }
  }

  // (g) half load, open loop
  const segdMaxSource: Generator = haveWrk ? 'wrk' : 'autocannon';
  const segdMax = Math.max(
    ...ms.filter((m) => m.phase === 'closed' && m.server === 'segd' && m.generator === segdMaxSource).map((m) => m.rps),
  );
  phase('calibrating the µs client: closed loop against the hello-world (1 s warm-up + 3 s)');
  const cal = await measure(hello, 'hello', 'closed', 0, 'node-µs', 0, o, requests, pinning, {
    warmupS: 1,
    durationS: 3,
  });
  const clientMax = cal.rps;
  // An open-loop client near its own saturation measures its own queueing:
  // keep it at half of what it can do.
  const clientLimit = Math.floor(clientMax * 0.5);
  const halfMax = Math.floor(segdMax / 2);
  let rate: number;
  let rateWhy: string;
  if (o.rate > 0) {
    rate = o.rate;
    rateWhy = `set by --rate (½ of segd's max by ${segdMaxSource} = ${fmtInt(halfMax)}; µs client limit ${fmtInt(clientLimit)})`;
  } else if (halfMax <= clientLimit) {
    rate = halfMax;
    rateWhy = `½ of segd's max (${fmtInt(segdMax)} req/s by ${segdMaxSource}); the µs client could drive ${fmtInt(clientLimit)}`;
  } else {
    rate = clientLimit;
    rateWhy = `the µs client's limit (½ of its ${fmtInt(clientMax)} req/s closed-loop max) — below ½ of segd's max (${fmtInt(halfMax)} of ${fmtInt(segdMax)} by ${segdMaxSource})`;
  }
  phase(`half load at ${fmtInt(rate)} req/s: ${rateWhy}`);
  // autocannon's rate limit is a per-connection quota per second, and in that
  // mode it drives far less than closed loop: past ½ of its own closed-loop
  // max it falls behind and "corrects" latencies against a schedule it missed.
  const acMax = mean(
    ms.filter((m) => m.phase === 'closed' && m.generator === 'autocannon' && m.server === 'hello').map((m) => m.rps),
  );
  const acRate = Math.min(rate, Math.floor(acMax / 2));
  if (acRate < rate)
    phase(
      `autocannon half load at ${fmtInt(acRate)} req/s: ½ of its own closed-loop max (${fmtInt(acMax)}), below ${fmtInt(rate)}`,
    );
  for (const [name, srv] of servers) {
    phase(`half load, autocannon overallRate=${acRate}: ${name}`);
    const m = await measure(srv, name, 'half', 1, 'autocannon', acRate, o, requests, pinning);
    ms.push(m);
    show(m);
  }
  for (let round = 1; round <= o.rounds; round++) {
    for (const [name, srv] of servers) {
      phase(`half load, µs open-loop client at ${rate} req/s, round ${round}/${o.rounds}: ${name}`);
      const m = await measure(srv, name, 'half', round, 'node-µs', rate, o, requests, pinning);
      ms.push(m);
      show(m);
      phase(
        `    (client send lag p99 ${fmtLat(m.sendLagUs!.p99, 1)}, max ${fmtLat(m.sendLagUs!.max, 1)}; service time p99 ${fmtLat(m.serviceUs!.p99, 1)})`,
      );
    }
  }

  // what segd saw
  let hitShare: number | undefined;
  try {
    const met = await httpGet(segd.port, '/metrics');
    const hit = Number(/segd_lookups_total\{result="hit"\}\s+(\d+(?:\.\d+)?(?:e\+?\d+)?)/.exec(met.body)?.[1]);
    const miss = Number(/segd_lookups_total\{result="miss"\}\s+(\d+(?:\.\d+)?(?:e\+?\d+)?)/.exec(met.body)?.[1]);
    if (hit + miss > 0) hitShare = hit / (hit + miss);
  } catch {
    /* metrics are a nicety here */
  }

  phase('stopping the servers');
  await stopChild(hello.proc);
  await stopChild(segd.proc, 10_000);
  const segdExit = segd.proc.exitCode;

  // (h) report
  const closedRows: Row[] = [];
  const ratios: Record<string, { ratio: number; perRound: number[] }> = {};
  const pair = (gen: Generator, label: string, phaseName: 'closed' | 'half', rowsOut: Row[]) => {
    const hr = summarize(ms, 'hello', gen, phaseName, label);
    const sr = summarize(ms, 'segd', gen, phaseName, label);
    if (!hr || !sr) return;
    const ratio = sr.rps / hr.rps;
    const perRound = sr.rounds.map((s, i) => s / (hr.rounds[i] ?? NaN));
    if (phaseName === 'closed') {
      ratios[gen] = { ratio, perRound };
      sr.ratio = `${ratio.toFixed(2)}×${perRound.length > 1 ? ` (${perRound.map((r) => r.toFixed(2)).join(' / ')})` : ''}`;
      if (gen === 'autocannon') sr.ratio += ' generator-limited';
    }
    rowsOut.push(hr, sr);
  };
  pair('autocannon', `autocannon c${o.connections}`, 'closed', closedRows);
  if (haveWrk) pair('wrk', `wrk t1 c${o.connections}`, 'closed', closedRows);
  const halfRows: Row[] = [];
  pair('autocannon', `autocannon R=${acRate}`, 'half', halfRows);
  pair('node-µs', `µs client R=${rate}`, 'half', halfRows);

  // Latency targets: the µs client's rounds.
  const usRuns = (server: ServerName) =>
    ms.filter((m) => m.server === server && m.generator === 'node-µs' && m.phase === 'half');
  // The best round of each server (lowest p99), the same rule for both: on a
  // shared box a stall of the whole machine can land in any one round; every
  // round is listed next to it.
  const bestUs = (server: ServerName) => usRuns(server).reduce((a, b) => (b.latencyUs.p99 < a.latencyUs.p99 ? b : a));
  const segdUs = { ...bestUs('segd'), lat: bestUs('segd').latencyUs };
  const helloUs = { ...bestUs('hello'), lat: bestUs('hello').latencyUs };
  const perRoundUs = (server: ServerName, f: (l: Latency) => number) => {
    const runs = usRuns(server);
    return runs.length > 1
      ? ` (best of ${runs.length} rounds: ${runs.map((m) => fmtLat(f(m.latencyUs), 1)).join(' / ')})`
      : '';
  };
  const thrGen: Generator = haveWrk ? 'wrk' : 'autocannon';
  const thr = ratios[thrGen]!;
  const worstLag = Math.max(segdUs.sendLagUs!.p99, helloUs.sendLagUs!.p99);
  const atHalf = rate >= halfMax * 0.95;
  const halfNote = atHalf ? undefined : `at ${fmtInt(rate)} req/s, below ½ of max (${fmtInt(halfMax)}): client-limited`;
  const rateShort =
    Math.min(segdUs.rps, helloUs.rps) < rate * 0.97
      ? `achieved only ${fmtInt(segdUs.rps)} (segd) / ${fmtInt(helloUs.rps)} (hello) of ${fmtInt(rate)} req/s`
      : undefined;
  const lagNote =
    worstLag > 100
      ? `the µs client fell behind its schedule (send lag p99 up to ${fmtLat(worstLag, 1)}): the box is busy and these latencies include generator delay`
      : undefined;
  const latNote = [halfNote, rateShort, lagNote].filter(Boolean).join('; ') || undefined;
  const targets: TargetCheck[] = [
    {
      target: 'single lookup ≥ 0.85× hello-world req/s (same generator, same run)',
      measured: `${thr.ratio.toFixed(2)}× by ${thrGen}`,
      pass: thr.ratio >= 0.85,
      ...(thrGen === 'autocannon'
        ? {
            note: 'autocannon saturates first (≈45–52k req/s on 2 cores): this ratio is generator-limited and flatters segd; install wrk',
          }
        : {}),
    },
    {
      target: 'p99 ≤ 1 ms at half of max load (µs client)',
      measured: fmtLat(segdUs.lat.p99, 1) + perRoundUs('segd', (l) => l.p99),
      pass: segdUs.lat.p99 <= 1000,
      ...(latNote ? { note: latNote } : {}),
    },
    {
      target: 'p99.9 ≤ 2 ms at half of max load (µs client)',
      measured: fmtLat(segdUs.lat.p999, 1) + perRoundUs('segd', (l) => l.p999),
      pass: segdUs.lat.p999 <= 2000,
      ...(latNote ? { note: 'as above' } : {}),
    },
    {
      target: "p99 within 0.3 ms of the hello-world's p99 at the same rate",
      measured: `${segdUs.lat.p99 - helloUs.lat.p99 >= 0 ? '+' : '−'}${(Math.abs(segdUs.lat.p99 - helloUs.lat.p99) / 1000).toFixed(3)} ms (hello p99 ${fmtLat(helloUs.lat.p99, 1)}${perRoundUs('hello', (l) => l.p99)})`,
      pass: segdUs.lat.p99 - helloUs.lat.p99 <= 300,
    },
    {
      target: 'snapshot import ≥ 1,000,000 memberships/s',
      measured: `${fmtInt(imp.membershipsPerS)} memberships/s`,
      pass: imp.membershipsPerS >= 1_000_000,
      note: 'seed import with both cores free',
    },
  ];

  const out: string[] = [];
  out.push('');
  out.push(
    `segd bench-lookup — ${startedAt.toISOString()}, node ${process.version}, ${CPU_COUNT} CPUs (${cpus()[0]?.model.trim() ?? '?'})`,
  );
  out.push(
    `data: ${fmtInt(o.users)} users, ${fmtInt(imp.memberships)} memberships; imported in ${(imp.importMs / 1000).toFixed(2)} s = ${fmtInt(imp.usersPerS)} users/s, ${fmtInt(imp.membershipsPerS)} memberships/s (start to ready ${imp.startToReadyS.toFixed(2)} s)`,
  );
  out.push(
    `keys: ${fmtInt(requests.length)} paths cycled, ${(knownShare * 100).toFixed(0)}% known users (Zipf s=${o.zipf}, ${fmtInt(distinctUsers)} distinct users), rest unknown; same sequence for both servers (autocannon: ${Math.min(AUTOCANNON_REQUESTS_PER_CONNECTION, Math.floor(requests.length / o.connections))} of them per connection)` +
      (hitShare !== undefined ? `; segd counted ${(hitShare * 100).toFixed(1)}% hits` : ''),
  );
  out.push(`segd: ${o.workers} worker(s); ${pinning.why}`);
  out.push(`runs: ${o.durationS} s measured after ${o.warmupS} s warm-up, ${o.connections} connections, pipelining 1`);
  out.push('');
  out.push(
    `Closed loop (max throughput), ${o.rounds} round(s) alternating hello, segd; req/s and latencies are means over rounds, max is the worst:`,
  );
  out.push(table(closedRows));
  if (!haveWrk)
    out.push(
      '  (wrk not on PATH: only autocannon, which saturates near 45–52k req/s on 2 cores — the ratio is generator-limited)',
    );
  else
    out.push(
      "  autocannon is a Node program that saturates near 45–52k req/s on 2 cores: its ratio is generator-limited; wrk's is the ceiling.",
    );
  out.push('');
  out.push(
    `Half load, open loop at ${fmtInt(rate)} req/s (${rateWhy})${acRate < rate ? `; autocannon at ${fmtInt(acRate)} (½ of its own max)` : ''}:`,
  );
  out.push(table(halfRows));
  out.push(
    '  * whole milliseconds: autocannon reports nothing finer. Its overallRate is a per-connection quota per second, sent in bursts, so its',
  );
  out.push(
    '    half-load rows are response times under bursts (ignoreCoordinatedOmission). The µs client (src/loadtest/open-loop-client.ts) sends on an',
  );
  out.push(
    '    even schedule and records every latency in µs from the scheduled send time, so waiting for a free connection counts.',
  );
  const lagOf = (server: ServerName) =>
    usRuns(server)
      .map((m) => fmtLat(m.sendLagUs!.p99, 1))
      .join(' / ');
  const svcOf = (server: ServerName) =>
    usRuns(server)
      .map((m) => fmtLat(m.serviceUs!.p99, 1))
      .join(' / ');
  out.push(
    `  µs client health — send lag p99: hello ${lagOf('hello')}, segd ${lagOf('segd')}; p99 from the actual send: hello ${svcOf('hello')}, segd ${svcOf('segd')}`,
  );
  out.push(`  µs client closed-loop max against the hello-world: ${fmtInt(clientMax)} req/s`);
  for (const m of ms.filter((x) => x.phase === 'half' && x.generator === 'autocannon' && x.rps < acRate * 0.97)) {
    out.push(
      `  ! autocannon reached only ${fmtInt(m.rps)} of ${fmtInt(acRate)} req/s against ${m.server}: its rate-limited mode is saturated`,
    );
  }
  const bad = ms.filter((m) => m.errors || m.non2xx);
  for (const m of bad)
    out.push(`  ! ${m.phase} ${m.server} ${m.generator} round ${m.round}: ${m.errors} errors, ${m.non2xx} non-2xx`);
  out.push('');
  out.push('Targets (docs/design.md):');
  for (const t of targets) out.push(`  ${mark(t.pass)} ${t.target}: ${t.measured}${t.note ? `  (${t.note})` : ''}`);
  if (segdExit !== 0) out.push(`  ! segd exited with ${segdExit ?? segd.proc.signalCode} on SIGTERM`);
  out.push('');

  const outDir = join(ROOT, 'bench-out');
  mkdirSync(outDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const jsonFile = join(outDir, `bench-lookup-${stamp}.json`);
  writeFileSync(
    jsonFile,
    JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        node: process.version,
        cpus: CPU_COUNT,
        cpuModel: cpus()[0]?.model.trim(),
        options: o,
        pinning,
        generators: { autocannon: true, wrk: haveWrk },
        import: imp,
        mix: { paths: requests.length, knownShare, distinctUsers, zipf: o.zipf, segdHitShare: hitShare },
        halfLoad: {
          rate,
          why: rateWhy,
          segdMax,
          segdMaxSource,
          clientClosedLoopMax: clientMax,
          clientLimit,
          autocannonRate: acRate,
        },
        ratios,
        targets,
        measurements: ms,
      },
      null,
      2,
    ) + '\n',
  );
  out.push(`figures: ${relative(process.cwd(), jsonFile) || jsonFile}`);
  process.stdout.write(out.join('\n') + '\n');
}

runBench(main, (err) => {
  process.stderr.write(
    `bench-lookup: ${err instanceof UsageError ? err.message : ((err as Error)?.stack ?? String(err))}\n`,
  );
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
