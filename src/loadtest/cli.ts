// `segd loadtest …` / `npm run loadtest -- …`: flags → a run → report files,
// a terminal summary, and the exit status ops scripts gate a rollout on:
// 0 every gate passed (or none was given), 1 a gate failed or a scenario could
// not run, 2 bad flags or the target could not be reached at all. With
// --baseline the canary verdict decides: 0 pass, 1 regression, 2 could not run.
import { pathToFileURL } from 'node:url';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readKeysFile } from './replay.js';
import { parseFlags, intFlag, numFlag, usage, type FlagSpec, type Flags } from '../terminal/flags.js';
import { DEFAULT_SYNTHETIC } from '../gen/synthetic.js';
import { parseGates, readGateFile, type Gate } from './gate.js';
import { runLoadTest, type RunOptions } from './runner.js';
import { ALL_SCENARIOS, SCENARIO_NAMES, TAIL_SCENARIOS, type ScenarioName } from './scenarios.js';
import { writeReport } from './report.js';
import { summaryText } from './summary.js';
import { hasCommand, installCleanupHandlers } from './processes.js';
import {
  defaultClient,
  nativeClientPath,
  OPEN_LOOP_CLIENTS,
  realtimeRefused,
  type OpenLoopClient,
} from './native-client.js';

const SPEC: FlagSpec = {
  target: 'segd base URL, e.g. http://127.0.0.1:8080 (required)',
  scenario: `one or more of ${SCENARIO_NAMES.join(', ')}, comma-separated; "all" (every request kind) or "tail" (lookups alone and beside each companion) (required)`,
  duration: 'measured seconds per scenario, 1..3600 (required)',
  out: 'directory for report.html and results.json (required)',
  rate: 'open loop at this many requests/s (20k ok); "half": closed-loop max first, then open loop at half of it; 0 or absent = closed loop',
  connections: 'connections (ws: sockets), default 32',
  generator:
    'closed-loop generator: autocannon (default; per-second timeline) or wrk (C, for throughput ceilings; HTTP scenarios)',
  client:
    'open-loop client: native (C, µs pacing; the default when `npm run build:native` has built it) or node; every open-loop run is validated by a hello-world control at the same rate',
  warmup: 'seconds of warm-up before each measured run, not counted (default 2)',
  gate: "rollout gate, e.g. 'p99<=1ms,p99.9<=2ms,errors<=0.01%,rps>=20000'",
  'gate-file': 'JSON file: ["p99<=1ms", …] or {"gates": […]} (added to --gate)',
  compare: 'also measure a uWebSockets.js hello-world and Fastify + Redis (same data) with the same settings',
  users: 'users in the data set the target holds (`segd gen --users`; 10M ok), default 1M',
  seed: `generator seed of that data set (\`segd gen --seed\`), default ${DEFAULT_SYNTHETIC.seed}`,
  'hit-ratio': 'share of requests for known users, 0..1 (default 0.6)',
  zipf: 'Zipf exponent of known users’ popularity (default 1.0; 0 = uniform)',
  keys: 'keys drawn per run, cycled (default 100000)',
  batch: 'keys per batch request (default 100)',
  pipeline: 'ws: frames in flight per socket in closed loop (default 8)',
  partner: 'partner id for sync (default "loadtest")',
  'partner-key': 'partner bearer key for openrtb and ws (or env LOADTEST_PARTNER_KEY)',
  'ingest-key': 'ingest bearer key for mixed and sweep (or env LOADTEST_INGEST_KEY)',
  'admin-key':
    "admin bearer key (or env LOADTEST_ADMIN_KEY): fetch segd's event timeline, mark it on the charts and attribute answers slower than p99 to its events",
  'attribution-window': 'ms an event is widened by on each side when matched to slow answers (default 2)',
  'ingest-rate': 'mixed, nats: feed records/s (default 2000)',
  'ingest-batch': 'mixed, nats: records per batch (push request or NATS message; default 500)',
  'ingest-inflight': 'mixed, nats: batches awaiting their ack at a time (default 4)',
  'ingest-segment':
    'mixed, nats: segment the feed adds (default 999, outside the generator’s ids); sweep uses the next one',
  'ingest-ttl': 'mixed, nats: TTL of those memberships in seconds, so they expire by themselves (default 600)',
  'probe-ms': 'mixed, nats: a freshness probe (ack → visible to a lookup) every this many ms (default 250; 0 = none)',
  'nats-url': 'nats: the NATS server(s) of the stream the target consumes (nats://127.0.0.1:4222)',
  'nats-subject': 'nats: the subject to publish on, inside the target’s SEGD_NATS_SUBJECT (default segments.loadtest)',
  inbox: 'swap: the target’s inbox directory (the load test must run on its machine)',
  'sweep-memberships': 'sweep: memberships set to expire before the sweep (default 200000)',
  'cookie-name': 'pixel: the target’s SEGD_COOKIE_NAME (default segd)',
  'sync-rate': 'syncs: cookie syncs per second beside the lookups (default 2000)',
  baseline: 'the running version to compare --target (the candidate) with: same scenarios, alternating rounds',
  rounds:
    'with --baseline: rounds per target, A B A B … (default 2); otherwise each open-loop scenario runs N times, each between two hello-world controls, and the rounds whose controls pass are pooled (default 1)',
  'answer-sample': 'with --baseline: keys asked of both through each lookup route before the load (default 1000)',
  'expect-diff': 'with --baseline: answers that differ are listed, not a regression',
  replay:
    'capture files (or directories of them) from SEGD_CAPTURE_SAMPLE to replay with their timing, comma-separated (scenario "replay")',
  speed: 'with --replay: how much faster than captured (default 1; 2 = twice the rate)',
  'replay-keys': 'with --replay: a JSON file {"partner id": "bearer key", …} for the captured partners’ requests',
  timeout: 'seconds before a request counts as timed out (default 10)',
  'max-requests': 'stop a measured run after this many answers (default 100M)',
  pin: 'pin this generator and the compare servers to different CPUs (taskset)',
  rt: 'run the native client at SCHED_FIFO, sleeping between sends, so what shares its CPU (a feed sender, nats-server) cannot delay its schedule (root or CAP_SYS_NICE)',
  'server-pid': 'with --pin: also pin this local segd pid to the servers’ CPU',
  quiet: 'no progress output (the summary is still printed)',
};

function generatorFlag(v: unknown): 'autocannon' | 'wrk' {
  if (v === undefined || v === 'autocannon') return 'autocannon';
  if (v === 'wrk') return 'wrk';
  throw new Error(`--generator must be autocannon or wrk; got ${JSON.stringify(v)}`);
}

function clientFlag(v: unknown): OpenLoopClient {
  if (v === undefined) return defaultClient();
  if (!OPEN_LOOP_CLIENTS.includes(v as OpenLoopClient))
    throw new Error(`--client must be ${OPEN_LOOP_CLIENTS.join(' or ')}; got ${JSON.stringify(v)}`);
  if (v === 'native' && !nativeClientPath())
    throw new Error('--client native: the native client is not built (`npm run build:native`, needs gcc)');
  return v as OpenLoopClient;
}

/** --replay: files as given, and every capture file in a directory given. */
function captureFiles(list: string): string[] {
  const out: string[] = [];
  for (const p of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new Error(`--replay: ${p} does not exist`);
    }
    if (st.isDirectory())
      out.push(
        ...readdirSync(p)
          .filter((n) => n.startsWith('capture-') && n.endsWith('.ndjson'))
          .sort()
          .map((n) => join(p, n)),
      );
    else out.push(p);
  }
  if (!out.length) throw new Error(`--replay ${list}: no capture files`);
  return out;
}

/** An http:// server's origin (the generators speak plain HTTP/1.1). */
function httpUrl(flag: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${flag} must be a URL such as http://127.0.0.1:8080; got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:')
    throw new Error(
      `${flag} must be http:// (the generators speak plain HTTP/1.1; load-test behind the TLS terminator); got ${url.protocol}`,
    );
  return url.origin;
}

function options(f: Flags): RunOptions {
  const req = (name: string): string => {
    const v = f[name];
    if (typeof v !== 'string' || v === '') throw new Error(`--${name} is required\n${usage('loadtest', SPEC)}`);
    return v;
  };
  const target = httpUrl('--target', req('target'));
  const replayFiles = typeof f.replay === 'string' ? captureFiles(f.replay) : [];
  const rawScenarios = replayFiles.length && f.scenario === undefined ? 'replay' : req('scenario');
  const scenarios = (
    rawScenarios === 'all'
      ? ALL_SCENARIOS
      : rawScenarios === 'tail'
        ? TAIL_SCENARIOS
        : rawScenarios.split(',').map((s) => s.trim())
  ) as ScenarioName[];
  for (const s of scenarios)
    if (!SCENARIO_NAMES.includes(s))
      throw new Error(`--scenario: unknown scenario ${JSON.stringify(s)}; known: ${SCENARIO_NAMES.join(', ')}`);
  const gates: Gate[] = [];
  if (typeof f.gate === 'string') gates.push(...parseGates(f.gate));
  if (typeof f['gate-file'] === 'string') gates.push(...readGateFile(f['gate-file']));
  const key = (flag: string, env: string) =>
    typeof f[flag] === 'string' ? (f[flag] as string) : (process.env[env] ?? '');
  const o: RunOptions = {
    target,
    scenarios: [...new Set(scenarios)],
    durationS: numFlag(f, 'duration', { min: 1, max: 3600 }),
    warmupS: numFlag(f, 'warmup', { min: 0, max: 600, def: 2 }),
    rate: f.rate === 'half' ? 0 : intFlag(f, 'rate', { min: 0, max: 10_000_000, def: 0 }),
    halfOfMax: f.rate === 'half',
    connections: intFlag(f, 'connections', { min: 1, max: 10_000, def: 32 }),
    generator: generatorFlag(f.generator),
    client: clientFlag(f.client),
    pipeline: intFlag(f, 'pipeline', { min: 1, max: 1000, def: 8 }),
    timeoutS: numFlag(f, 'timeout', { min: 0.1, max: 600, def: 10 }),
    maxRequests: intFlag(f, 'max-requests', { min: 1, max: 1_000_000_000, def: 100_000_000 }),
    users: intFlag(f, 'users', { min: 1, max: 1_000_000_000, def: 1_000_000 }),
    seed: intFlag(f, 'seed', { min: 0, max: 0xffff_ffff, def: DEFAULT_SYNTHETIC.seed }),
    hitRatio: numFlag(f, 'hit-ratio', { min: 0, max: 1, def: 0.6 }),
    zipf: numFlag(f, 'zipf', { min: 0, max: 5, def: 1 }),
    keys: intFlag(f, 'keys', { min: 100, max: 10_000_000, def: 100_000 }),
    batchSize: intFlag(f, 'batch', { min: 1, max: 100_000, def: 100 }),
    partner: typeof f.partner === 'string' ? f.partner : 'loadtest',
    partnerKey: key('partner-key', 'LOADTEST_PARTNER_KEY'),
    ingestKey: key('ingest-key', 'LOADTEST_INGEST_KEY'),
    adminKey: key('admin-key', 'LOADTEST_ADMIN_KEY'),
    attributionWindowMs: numFlag(f, 'attribution-window', { min: 0, max: 10_000, def: 2 }),
    ingestRate: intFlag(f, 'ingest-rate', { min: 0, max: 10_000_000, def: 2000 }),
    ingestBatch: intFlag(f, 'ingest-batch', { min: 1, max: 1_000_000, def: 500 }),
    ingestSegment: intFlag(f, 'ingest-segment', { min: 0, max: 0xffff_ffff, def: 999 }),
    ingestTtlS: intFlag(f, 'ingest-ttl', { min: 1, max: 90 * 86_400, def: 600 }),
    ingestInflight: intFlag(f, 'ingest-inflight', { min: 1, max: 1000, def: 4 }),
    probeMs: intFlag(f, 'probe-ms', { min: 0, max: 60_000, def: 250 }),
    natsUrl: typeof f['nats-url'] === 'string' ? f['nats-url'] : '',
    natsSubject: typeof f['nats-subject'] === 'string' ? f['nats-subject'] : 'segments.loadtest',
    inbox: typeof f.inbox === 'string' ? f.inbox : '',
    sweepMemberships: intFlag(f, 'sweep-memberships', { min: 1, max: 100_000_000, def: 200_000 }),
    cookieName: typeof f['cookie-name'] === 'string' ? f['cookie-name'] : 'segd',
    syncRate: intFlag(f, 'sync-rate', { min: 0, max: 1_000_000, def: 2000 }),
    baseline: typeof f.baseline === 'string' ? httpUrl('--baseline', f.baseline) : '',
    rounds: intFlag(f, 'rounds', { min: 1, max: 100, def: typeof f.baseline === 'string' ? 2 : 1 }),
    answerSample: intFlag(f, 'answer-sample', { min: 0, max: 100_000, def: 1000 }),
    expectDiff: f['expect-diff'] === true,
    replay: replayFiles,
    speed: numFlag(f, 'speed', { min: 0.01, max: 1000, def: 1 }),
    replayKeys: typeof f['replay-keys'] === 'string' ? readKeysFile(f['replay-keys']) : {},
    gates,
    compare: f.compare === true,
    pin: f.pin === true,
    rt: f.rt === true,
    serverPid: intFlag(f, 'server-pid', { min: 0, max: 2 ** 22, def: 0 }),
    quiet: f.quiet === true,
  };
  const needs = (scenario: ScenarioName, ok: boolean, what: string) => {
    if (o.scenarios.includes(scenario) && !ok) throw new Error(`--scenario ${scenario} needs ${what}`);
  };
  needs(
    'mixed',
    o.ingestRate === 0 || !!o.ingestKey,
    '--ingest-key (or LOADTEST_INGEST_KEY): the feed authenticates like a collector',
  );
  needs('sweep', !!o.ingestKey, '--ingest-key (or LOADTEST_INGEST_KEY): it pushes the memberships that expire');
  needs('sweep', !!o.adminKey, '--admin-key (or LOADTEST_ADMIN_KEY): it asks for the sweep');
  needs('filter-save', !!o.adminKey, '--admin-key (or LOADTEST_ADMIN_KEY): it asks for the saves');
  needs('outbound', !!o.adminKey, '--admin-key (or LOADTEST_ADMIN_KEY): it registers the destination');
  needs(
    'outbound',
    o.ingestRate > 0 && !!o.ingestKey,
    '--ingest-key (or LOADTEST_INGEST_KEY) and --ingest-rate > 0: its feed makes the changes',
  );
  needs('nats', o.ingestRate === 0 || !!o.natsUrl, '--nats-url: the NATS server(s) of the stream the target consumes');
  needs('swap', !!o.inbox, '--inbox DIR: the target’s inbox directory, on this machine');
  const relative = o.gates.filter((g) => g.relative);
  if (relative.length && !o.baseline)
    throw new Error(`relative gates (${relative.map((g) => g.text).join(', ')}) need --baseline URL to compare with`);
  if (o.baseline && o.baseline === o.target) throw new Error('--baseline must be another server than --target');
  if (o.baseline && o.compare) throw new Error('--baseline and --compare are separate runs: give one');
  if (o.baseline && o.halfOfMax) throw new Error('--baseline takes a fixed --rate (or closed loop), not --rate half');
  needs('replay', o.replay.length > 0, '--replay FILE[,FILE…]: the capture files to replay');
  needs(
    'replay',
    !!nativeClientPath(),
    'the native open-loop client (`npm run build:native`): it keeps the captured timing',
  );
  needs('swap', !o.baseline, 'a single target: the baseline’s inbox is not known (run it without --baseline)');
  if (o.generator === 'wrk' && !hasCommand('wrk'))
    throw new Error(
      '--generator wrk: wrk is not on PATH (Debian package wrk; `bash .ci/setup-system.sh --bench` installs it)',
    );
  if (o.generator === 'wrk' && o.scenarios.includes('ws'))
    throw new Error('--generator wrk speaks HTTP only: run the ws scenario without it');
  if (o.serverPid && !o.pin) throw new Error('--server-pid only means something with --pin');
  if (o.rt) {
    if (o.client !== 'native') throw new Error('--rt runs the native client: add --client native (or build it)');
    const why = realtimeRefused();
    if (why) throw new Error(`--rt: cannot run at SCHED_FIFO here (${why}); it needs root or CAP_SYS_NICE`);
  }
  return o;
}

export async function loadtestMain(argv: string[]): Promise<number> {
  const f = parseFlags('loadtest', argv, SPEC, ['compare', 'pin', 'rt', 'expect-diff']);
  const o = options(f);
  const out = f.out;
  if (typeof out !== 'string' || !out) throw new Error(`--out DIR is required\n${usage('loadtest', SPEC)}`);
  installCleanupHandlers((m) => process.stderr.write(`[loadtest] ${m}\n`));
  const res = await runLoadTest(o);
  const files = writeReport(out, res);
  process.stdout.write(summaryText(res, files));
  // The canary's verdict is its exit status: 0 pass, 1 regression, 2 could not run.
  if (res.canary) {
    process.stdout.write(`${res.canary.line}\n`);
    return res.canary.verdict === 'pass' ? 0 : res.canary.verdict === 'regression' ? 1 : 2;
  }
  const failed = res.results.some((r) => r.target === 'segd' && r.status === 'failed');
  return res.verdict === 'fail' || failed ? 1 : 0;
}

// `npm run loadtest -- …` runs this file directly.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  loadtestMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`segd loadtest: ${(err as Error).message}\n`);
      process.exit(2);
    },
  );
}
