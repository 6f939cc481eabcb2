// One load-test run: sample the keys, then for each scenario probe the target,
// scrape /metrics, warm up (not counted), measure, scrape again; with
// --compare, run the same scenario with the same settings against the
// hello-world and Fastify + Redis right after; then evaluate the gate.
import { performance } from 'node:perf_hooks';
import type { Figures, Percentiles, SlowAnswers } from './recorder.js';
import { sampleKeys, type KeyMix } from './key-mix.js';
import { SCENARIOS, type HttpReq, type ScenarioInput, type ScenarioName } from './scenarios.js';
import { driveHttp, type DriveInfo, type DriveResult } from './drive-http.js';
import { driveWs, openWs, WsUnavailable } from './drive-ws.js';
import { backgroundFor, type Background, type BackgroundOptions, type BackgroundReport } from './background.js';
import { diff, gauges, scrape, serverView, TimelineFollower, type ServerView } from './metrics-scrape.js';
import { attribute, type Attribution, type ServerEvent } from './attribution.js';
import { evaluate, fmtUs, type Gate, type GateResult } from './gate.js';
import { startBaselines, type Baselines } from './baselines.js';
import { cleanup, pin, planPinning, type Pinning, type Server } from './processes.js';
import { Progress } from '../terminal/progress.js';
import type { OpenLoopClient } from './native-client.js';
import { generatorBoundWhy, startControl } from './control.js';
import { cpuTimes, stealPct } from './host-cpu.js';
import { planReplay, type ReplayStats } from './replay.js';
import { poolRounds, type Pooled, type RoundRun } from './rounds.js';
import { canaryLine, canaryRow, compareAnswers, type CanaryRow, type CanaryVerdict, type RouteDiff } from './canary.js';

export interface RunOptions extends BackgroundOptions {
  target: string;
  scenarios: ScenarioName[];
  durationS: number;
  warmupS: number;
  /** Requests per second (open loop); 0 = closed loop. */
  rate: number;
  /** `--rate half`: find each scenario's closed-loop max, then measure at half of it (open loop). */
  halfOfMax: boolean;
  connections: number;
  generator: 'autocannon' | 'wrk';
  /** Which program drives open loops (see native-client.ts). */
  client: OpenLoopClient;
  /** The native client at SCHED_FIFO (`--rt`), for the target, its control and the sync stream alike. */
  rt: boolean;
  pipeline: number;
  timeoutS: number;
  maxRequests: number;
  users: number;
  seed: number;
  hitRatio: number;
  zipf: number;
  keys: number;
  batchSize: number;
  partner: string;
  partnerKey: string;
  /** The target's SEGD_COOKIE_NAME (`pixel`). */
  cookieName: string;
  /** Attribution: an event explains a slow answer it overlaps when widened by this much on each side, ms. */
  attributionWindowMs: number;
  gates: Gate[];
  compare: boolean;
  /**
   * Candidate vs baseline: the baseline's URL ('' = none), rounds per target, answers sampled and
   * whether differences are expected. Without a baseline, rounds > 1 measures each open-loop
   * scenario as that many short runs between controls, pooled (rounds.ts).
   */
  baseline: string;
  rounds: number;
  /** --replay: capture files, the speed-up, and each partner's bearer key. */
  replay: string[];
  speed: number;
  replayKeys: Record<string, string>;
  answerSample: number;
  expectDiff: boolean;
  pin: boolean;
  serverPid: number;
  quiet: boolean;
}

export type TargetName = 'segd' | 'baseline' | 'hello-world' | 'fastify+redis';

export const PHASE_LABEL = { max: 'max', half: '@½max' } as const;

/** "lookup", or "lookup max" / "lookup @½max" with --rate half. */
export const scenarioLabel = (r: { scenario: string; phase?: 'max' | 'half' }) =>
  r.phase ? `${r.scenario} ${PHASE_LABEL[r.phase]}` : r.scenario;

export interface ScenarioResult {
  scenario: ScenarioName;
  /** With --rate half: the closed-loop max run, or the open-loop run at half of segd's max. */
  phase?: 'max' | 'half';
  what: string;
  target: TargetName;
  /** With --baseline or --rounds: which round (1-based) of the alternation. */
  round?: number;
  status: 'ran' | 'skipped' | 'failed';
  reason?: string;
  drive?: DriveInfo;
  figures?: Figures;
  /** Lookups per second (batch: requests × keys per request). */
  keysPerS?: number;
  server?: { diff: Record<string, number>; view: ServerView; error?: string; gaugesAfter?: Record<string, number> };
  /** What ran beside the lookups (the tail scenarios: a feed, a swap, a sweep, …). */
  background?: BackgroundReport;
  /** Reasons to distrust or qualify the figures (the generator fell behind, a rate not reached). */
  warnings?: string[];
  /** With --admin-key: the server's timeline events during the measured window (and windowMs around it). */
  events?: ServerEvent[];
  /** With --admin-key: which event kinds the answers slower than p99 overlapped. */
  attribution?: Attribution;
  /** The hello-world run that validates the generator for this scenario's open-loop run (control.ts). */
  control?: true;
  /** Open loop: whether the control says these tail figures measure the generator, and why. */
  generatorBound?: boolean;
  generatorBoundWhy?: string[];
  /** % of each CPU's time the hypervisor kept over the drive (host-cpu.ts); Linux only. */
  stealPct?: Record<string, number>;
}

export interface Comparison {
  scenario: ScenarioName;
  /** segd's req/s over the baseline's, and p99 of each. */
  vsHello?: number;
  vsFastify?: number;
}

export interface DataCheck {
  /** Known users (i < users) looked up on the target before the run, and how many it holds. */
  known: number;
  found: number;
  /** With --compare: the same keys through Fastify + Redis, and how many answers were equal to segd's. */
  baselineEqual?: number;
  ok: boolean;
  note: string;
}

export interface Results {
  tool: 'segd loadtest';
  version: 1;
  startedAt: string;
  finishedAt: string;
  settings: Omit<RunOptions, 'gates' | 'partnerKey' | 'ingestKey' | 'adminKey'> & {
    gates: string[];
    node: string;
    mode: string;
  };
  keyMix: Omit<KeyMix, 'uids' | 'index'> & { draws: number };
  pinning: Pinning;
  dataCheck?: DataCheck;
  results: ScenarioResult[];
  comparisons: Comparison[];
  gates: GateResult[];
  verdict: 'pass' | 'fail' | 'no gates';
  /** Some segd tail figure is generator-bound (its control failed the rule in control.ts): it does not count. */
  generatorBound: boolean;
  /** With --baseline: the two side by side, the answers compared, and the verdict ops paste. */
  canary?: Canary;
  /** With --replay: what was replayed (route mix, keys, inter-arrival gaps). */
  replay?: ReplayStats;
  /** With --rounds (no baseline): each open-loop scenario pooled over the rounds its controls vouch for. */
  pooled?: PooledScenario[];
}

export interface PooledScenario extends Pooled {
  scenario: ScenarioName;
}

export interface Canary {
  baseline: string;
  rounds: number;
  rows: CanaryRow[];
  answers: RouteDiff[];
  expectDiff: boolean;
  verdict: CanaryVerdict;
  line: string;
}

/** The metrics route label segd uses for each scenario's requests. */
const ROUTE: Record<ScenarioName, string> = {
  lookup: 'segments',
  kv: 'segments',
  mixed: 'segments',
  replay: 'segments',
  nats: 'segments',
  swap: 'segments',
  sweep: 'segments',
  'filter-save': 'segments',
  syncs: 'segments',
  outbound: 'segments',
  batch: 'batch',
  openrtb: 'openrtb',
  sync: 'sync',
  pixel: 'insights',
  ws: 'ws',
};

function say(o: RunOptions, msg: string): void {
  if (!o.quiet) process.stderr.write(`[loadtest] ${msg}\n`);
}

interface ProbeAnswer {
  status: number;
  /** segd's error code when the answer is one of its errors. */
  code?: string;
  message?: string;
}

/** One request of the scenario, to see whether the endpoint exists (and what it says) before loading it. */
async function probe(origin: string, r: HttpReq): Promise<ProbeAnswer> {
  const res = await fetch(origin + r.path, {
    method: r.method,
    headers: r.headers,
    ...(r.body !== undefined ? { body: r.body } : {}),
    signal: AbortSignal.timeout(10_000),
    redirect: 'manual',
  });
  const text = await res.text();
  if (res.status < 400) return { status: res.status };
  try {
    const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    return { status: res.status, ...(e?.code ? { code: e.code } : {}), ...(e?.message ? { message: e.message } : {}) };
  } catch {
    return { status: res.status };
  }
}

/** A 404 for the route itself (segd's NOT_FOUND, or not a segd answer at all), not e.g. an unknown partner. */
const routeMissing = (a: ProbeAnswer) => a.status === 404 && (a.code === undefined || a.code === 'NOT_FOUND');

/** A generator late by more than this measures itself as much as the server. */
const SEND_LAG_LIMIT_US = 1000;

function qualify(o: RunOptions, r: ScenarioResult): string[] {
  const w: string[] = [];
  const lag = r.drive?.sendLagUs;
  if (lag && lag.p99 > SEND_LAG_LIMIT_US) {
    w.push(
      `requests went out late (send lag p99 ${fmtUs(lag.p99)}): the generator could not keep its schedule, or every connection was busy with a slow server; latencies count from the schedule, so they include that wait (try --pin, more --connections, a lower --rate)`,
    );
  }
  if (o.rate > 0 && r.figures && r.figures.rps < o.rate * 0.97)
    w.push(`reached ${Math.round(r.figures.rps)} of the ${o.rate} req/s asked for`);
  if (r.background?.warning) w.push(r.background.warning);
  return w;
}

async function measure(
  o: RunOptions,
  name: ScenarioName,
  target: TargetName,
  origin: string,
  input: ScenarioInput,
  requests: HttpReq[],
  schedule?: Uint32Array,
): Promise<ScenarioResult> {
  const sc = SCENARIOS[name];
  const base: ScenarioResult = { scenario: name, what: sc.what, target, status: 'ran' };
  const url = new URL(origin);
  let probeNote: string | undefined;
  const host = url.hostname;
  const port = Number(url.port || 80);

  // Endpoints still being built elsewhere: a 404 means "not deployed here", not a failure.
  try {
    if (name === 'ws') {
      const ws = await openWs(`ws://${url.host}/v1/ws`, o.partnerKey);
      ws.terminate();
    } else {
      const first = requests[0]!;
      const a = await probe(origin, first);
      if (routeMissing(a) && sc.skipOn404)
        return {
          ...base,
          status: 'skipped',
          reason: `${first.method} ${first.path.split('?')[0]} answers 404 on ${origin}: the endpoint is not deployed there (yet); scenario skipped`,
        };
      // Run anyway (the errors are counted by status), but say up front why requests fail.
      if (a.status >= 400)
        probeNote = `a first ${first.method} ${first.path.split('?')[0]} answered ${a.status}${a.code ? ` ${a.code}` : ''}${a.message ? `: ${a.message}` : ''}`;
    }
  } catch (err) {
    if (err instanceof WsUnavailable && err.status === 404)
      return {
        ...base,
        status: 'skipped',
        reason: `the WebSocket upgrade at /v1/ws answers 404 on ${origin}: not deployed there (yet); scenario skipped`,
      };
    return { ...base, status: 'failed', reason: `${name} against ${origin}: ${(err as Error).message}` };
  }

  // Scraped as the warm-up ends, so the server's counts cover the measured window (and this one scrape).
  const scraped: { before?: ReturnType<typeof scrape> } = {};
  // The hello-world control gets the lookups only: it measures the generator, not segd under ingest.
  // The candidate and the baseline are both segd: both get the companion, the scrapes and the same load.
  const isSegd = target === 'segd' || target === 'baseline';
  const beside: Background | null = isSegd ? backgroundFor(name, o, origin, (m) => say(o, m)) : null;
  if (beside) {
    try {
      await beside.prepare();
    } catch (err) {
      await beside.stop().catch(() => null);
      return { ...base, status: 'failed', reason: `${name}: could not prepare: ${(err as Error).message}` };
    }
  }
  // What runs beside starts once that scrape is answered, so both counts cover the same window.
  const follower = target === 'segd' && o.adminKey ? new TimelineFollower(origin, o.adminKey, Date.now() - 1000) : null;
  const onMeasureStart = isSegd
    ? async () => {
        follower?.start();
        scraped.before = scrape(origin);
        await scraped.before;
        beside?.start();
      }
    : undefined;
  const total = o.warmupS + o.durationS;
  const progress = new Progress(`${name} → ${target}`.padEnd(24), total, 's', { quiet: o.quiet, rate: false });
  const t0 = performance.now();
  const tick = setInterval(
    () => progress.update(Math.min(total, Math.round((performance.now() - t0) / 100) / 10)),
    250,
  );
  // What every driver takes alike; each adds its own.
  const drive = {
    connections: o.connections,
    rate: o.rate,
    warmupS: o.warmupS,
    durationS: o.durationS,
    timeoutS: o.timeoutS,
    maxRequests: o.maxRequests,
    okBelow: sc.okBelow,
    onMeasureStart,
  };
  let driven: DriveResult;
  const cpuBefore = cpuTimes();
  try {
    driven =
      name === 'ws'
        ? await driveWs({
            ...drive,
            url: `ws://${url.host}/v1/ws`,
            partnerKey: o.partnerKey,
            uids: input.keys.uids,
            pipeline: o.pipeline,
          })
        : await driveHttp({
            ...drive,
            host,
            port,
            requests,
            generator: o.rate > 0 || schedule ? 'client' : o.generator,
            client: o.client,
            realtime: o.rt,
            ...(schedule ? { schedule } : {}),
          });
  } catch (err) {
    // A generator that died (or a target that went away mid-run) fails this scenario, not the whole run.
    await beside?.stop().catch(() => null);
    await follower?.stop();
    return {
      ...base,
      status: 'failed',
      reason: `${name} against ${origin} broke off: ${(err as Error).message.slice(0, 500)}`,
    };
  } finally {
    clearInterval(tick);
    progress.update(total);
    progress.done();
  }
  const steal = stealPct(cpuBefore, cpuTimes());
  const besideReport = beside ? await beside.stop() : null;
  const { slow, counts, ...figures } = driven.figures;
  const out: ScenarioResult = {
    ...base,
    drive: driven.info,
    figures,
    keysPerS: figures.rps * sc.keysPerRequest(input),
    ...(steal ? { stealPct: steal } : {}),
  };
  if (besideReport) out.background = besideReport;
  if (counts) fineCounts.set(out, counts);
  const warnings = qualify(o, out);
  if (beside && !besideReport)
    warnings.push(
      `what runs beside the lookups never started: the server answered the /metrics scrape that opens the window only after the run (overloaded?)`,
    );
  if (probeNote) warnings.unshift(probeNote);
  if (follower) {
    const t = await attributeRun(o, follower, figures, slow);
    if (t.events) out.events = t.events;
    if (t.attribution) out.attribution = t.attribution;
    warnings.push(...t.warnings);
  }
  if (warnings.length) out.warnings = warnings;
  if (scraped.before) {
    const b = await scraped.before;
    const after = await scrape(origin);
    const d = diff(b.samples, after.samples);
    const error = b.error ?? after.error;
    out.server = {
      diff: d,
      view: serverView(d, ROUTE[name]),
      gaugesAfter: gauges(after.samples),
      ...(error ? { error } : {}),
    };
  }
  return out;
}

/** Each run's fine histogram (native client), kept out of results.json and pooled by rounds. */
const fineCounts = new WeakMap<ScenarioResult, Array<[number, number]>>();

const roundRun = (r: ScenarioResult | undefined): RoundRun | undefined => {
  if (!r || r.status !== 'ran') return undefined;
  const counts = fineCounts.get(r);
  return counts ? { m: r, counts } : { m: r };
};

/** The control rule (control.ts) applied to an open-loop segd run against its control; said when it fails. */
function judge(o: RunOptions, run: ScenarioResult, ctl: ScenarioResult | undefined): void {
  const why = generatorBoundWhy(run, ctl);
  run.generatorBound = why.length > 0;
  if (!why.length) return;
  run.generatorBoundWhy = why;
  say(o, `${scenarioLabel(run)}: GENERATOR-BOUND, these tail figures do not count: ${why.join('; ')}`);
}

/** Worker events reach the server's ring up to this long after they happen (server/worker.ts). */
const WORKER_EVENTS_LAG_MS = 1200;

/** The run's server events and the attribution of its slow answers to them. */
async function attributeRun(
  o: RunOptions,
  follower: TimelineFollower,
  figures: Figures,
  slow: SlowAnswers | undefined,
): Promise<{ events?: ServerEvent[]; attribution?: Attribution; warnings: string[] }> {
  await new Promise((r) => setTimeout(r, WORKER_EVENTS_LAG_MS));
  const all = await follower.stop();
  const warnings: string[] = [];
  if (follower.error) warnings.push(`server timeline: ${follower.error}`);
  if (follower.lost)
    warnings.push(
      'the server timeline overwrote events before they were fetched (raise SEGD_TIMELINE_EVENTS): the attribution misses some',
    );
  if (figures.startMs === undefined || !slow) return { events: all, warnings };
  const fromMs = figures.startMs;
  const toMs = fromMs + figures.seconds * 1000;
  const w = o.attributionWindowMs;
  const events = all.filter((e) => e.t + e.ms >= fromMs - w && e.t <= toMs + w);
  const attribution = attribute(slow, events, { thresholdUs: figures.latencyUs.p99, windowMs: w, fromMs, toMs });
  if (attribution.truncated) warnings.push('attribution: the generator kept only the first 2M slow answers');
  return { events, attribution, warnings };
}

const DATA_CHECK_KEYS = 50;

async function segmentsOf(origin: string, uid: string): Promise<number[] | null> {
  const r = await fetch(`${origin}/v1/segments?uid=${encodeURIComponent(uid)}`, {
    signal: AbortSignal.timeout(10_000),
  });
  if (r.status !== 200) return null;
  return ((await r.json()) as { segments?: number[] }).segments ?? null;
}

/**
 * Does the target hold the data set the flags describe? Known users come back
 * with segments when --users/--seed match what was loaded; if they do not, the
 * hit ratio (and every figure) would be about another workload.
 */
async function checkData(
  origin: string,
  keys: KeyMix,
  users: number,
  fastify: string | null,
): Promise<DataCheck | undefined> {
  const known = [...new Set(keys.uids.filter((_, k) => keys.index[k]! < users))].slice(0, DATA_CHECK_KEYS);
  if (!known.length) return undefined;
  let found = 0;
  let equal = 0;
  for (const uid of known) {
    const segs = await segmentsOf(origin, uid);
    if (segs === null)
      return { known: known.length, found: 0, ok: false, note: `GET /v1/segments does not answer 200 on ${origin}` };
    if (segs.length) found++;
    if (fastify) {
      const other = await segmentsOf(fastify, uid);
      if (other && other.join(',') === segs.join(',')) equal++;
    }
  }
  // Memberships with TTLs can lapse, so a handful of misses is normal; most known users must be there.
  const ok = found >= known.length * 0.8;
  const note = ok
    ? `${found}/${known.length} sampled known users hold segments on the target${fastify ? `; Fastify + Redis answered ${equal}/${known.length} of them identically` : ''}`
    : `only ${found}/${known.length} sampled known users hold segments on the target: it does not seem to hold the data set --users ${users} --seed given here, so hit ratios and figures describe another workload`;
  return { known: known.length, found, ...(fastify ? { baselineEqual: equal } : {}), ok, note };
}

export async function runLoadTest(o: RunOptions): Promise<Results> {
  const startedAt = new Date();
  const origin = new URL(o.target).origin;
  const baselineOrigin = o.baseline ? new URL(o.baseline).origin : '';
  // Unreachable is a usage problem (exit 2), not a failed gate: say so before sampling anything.
  for (const url of [origin, baselineOrigin].filter(Boolean)) {
    try {
      await (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) })).arrayBuffer();
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message;
      throw new Error(`cannot reach ${url}: ${cause ?? (err as Error).message}`, { cause: err });
    }
  }
  const replay = o.scenarios.includes('replay') ? planReplay(o.replay, o.replayKeys, o.speed) : null;
  if (replay) {
    const s = replay.stats;
    const mix = Object.entries(s.byRoute)
      .map(([r, n]) => `${r} ${((n / s.requests) * 100).toFixed(1)}%`)
      .join(', ');
    const noKey = Object.entries(s.skipped.noKey);
    say(
      o,
      `replay: ${s.requests.toLocaleString('en-US')} requests from ${s.files} file(s) spanning ${s.spanS.toFixed(1)} s, sent over ${s.replayS.toFixed(1)} s (--speed ${s.speed}): ${mix}; ${s.distinctKeys.toLocaleString('en-US')} distinct keys` +
        (noKey.length ? `; left out for want of a key: ${noKey.map(([p, n]) => `${p} ${n}`).join(', ')}` : ''),
    );
  }
  const needKeys = Math.max(o.keys, o.scenarios.includes('batch') ? o.batchSize * 200 : 0);
  say(
    o,
    `sampling ${needKeys.toLocaleString('en-US')} keys from the data set (users ${o.users.toLocaleString('en-US')}, seed ${o.seed}, ${Math.round(o.hitRatio * 100)}% known, Zipf s=${o.zipf})`,
  );
  const keys = sampleKeys({ seed: o.seed, users: o.users, hitRatio: o.hitRatio, zipf: o.zipf, count: needKeys });
  const input: ScenarioInput = {
    keys,
    batchSize: o.batchSize,
    partner: o.partner,
    partnerKey: o.partnerKey,
    cookieName: o.cookieName,
    seed: o.seed,
  };

  let baselines: Baselines | null = null;
  let control: Server | null = null;
  const pinning = planPinning(o.pin, 'unpinned (--pin puts this generator and the servers on different CPUs)');
  try {
    if (o.compare)
      baselines = await startBaselines({ users: o.users, seed: o.seed, quiet: o.quiet, say: (m) => say(o, m) });
    // Tail-latency (open-loop) HTTP runs each get their control; --compare's hello-world serves when it runs.
    const openLoop = o.rate > 0 || o.halfOfMax || o.replay.length > 0;
    if (openLoop && !baselines && o.scenarios.some((n) => n !== 'ws')) control = await startControl();
    const controlUrl = baselines
      ? `http://127.0.0.1:${baselines.hello.port}`
      : control
        ? `http://127.0.0.1:${control.port}`
        : null;
    if (pinning.pinned) {
      pin(process.pid, pinning.generatorCpu!);
      for (const pid of baselines?.pids ?? []) pin(pid, pinning.serverCpu!);
      if (control) pin(control.proc.pid!, pinning.serverCpu!);
      if (o.serverPid) pin(o.serverPid, pinning.serverCpu!);
      pinning.why += o.serverPid
        ? `; target pid ${o.serverPid} pinned with the servers`
        : '; target not pinned (pass --server-pid to pin a local segd)';
    }
    say(o, pinning.why);
    const dataCheck = await checkData(
      origin,
      keys,
      o.users,
      baselines ? `http://127.0.0.1:${baselines.fastify.port}` : null,
    ).catch((err: unknown) => ({
      known: 0,
      found: 0,
      ok: false,
      note: `could not check the data set: ${(err as Error).message}`,
    }));
    if (dataCheck) say(o, `data set check: ${dataCheck.note}`);
    // Before any load: the feed scenarios' writes would tell the two apart.
    let answers: RouteDiff[] = [];
    if (baselineOrigin) {
      const sample = [...new Set(keys.uids)].slice(0, o.answerSample);
      say(o, `answers: asking ${sample.length} keys of both targets through 3 routes`);
      answers = await compareAnswers({
        candidate: origin,
        baseline: baselineOrigin,
        keys: sample,
        partnerKey: o.partnerKey,
        ignore: [o.ingestSegment, o.ingestSegment + 1],
      });
      for (const a of answers)
        say(o, a.error ? `answers ${a.route}: ${a.error}` : `answers ${a.route}: ${a.differing}/${a.compared} differ`);
    }

    const results: ScenarioResult[] = [];
    const comparisons: Comparison[] = [];
    const pooled: PooledScenario[] = [];
    for (const name of o.scenarios) {
      // A replay brings its own requests and their times; its window is the capture's span (at --speed) at most.
      const replayed = name === 'replay' ? replay! : null;
      const requests = replayed ? replayed.requests : SCENARIOS[name].requests(input);
      const schedule = replayed?.schedule;
      const so = replayed
        ? // The window is half-open: 10 ms past the last request's due time keeps it inside.
          { ...o, durationS: Math.max(1, Math.min(o.durationS, replayed.stats.replayS - o.warmupS + 0.01)) }
        : o;
      const paced = so.rate > 0 || !!schedule;
      say(o, `${name}: ${SCENARIOS[name].what}`);
      const targets: Array<[TargetName, string]> = [['segd', origin]];
      /** The hello-world at the same settings: a segd run's control, kept in the results beside it. */
      const measureControl = async (run: RunOptions, round?: number) => {
        if (!controlUrl) throw new Error('no hello-world control is running');
        const c = await measure(run, name, 'hello-world', controlUrl, input, requests, schedule);
        c.control = true;
        if (round !== undefined) c.round = round;
        results.push(c);
        return c;
      };
      if (baselineOrigin) {
        // A B A B …: machine noise falls on both; each run of the candidate gets its control.
        for (let round = 1; round <= o.rounds; round++) {
          for (const [target, url] of [
            ['segd', origin],
            ['baseline', baselineOrigin],
          ] as Array<[TargetName, string]>) {
            const r = await measure(so, name, target, url, input, requests, schedule);
            r.round = round;
            results.push(r);
            if (r.status === 'skipped') say(o, r.reason!);
            if (target === 'segd' && r.status === 'ran' && paced && name !== 'ws' && controlUrl)
              judge(o, r, await measureControl(so, round));
          }
        }
        continue;
      }
      if (o.rounds > 1 && paced && name !== 'ws' && controlUrl && !baselines) {
        // C S C S … C: every segd round lies between two controls; the rounds both vouch for are pooled.
        const runs: RoundRun[] = [];
        const controls = [roundRun(await measureControl(so, 0))];
        for (let round = 1; round <= o.rounds; round++) {
          const r = await measure(so, name, 'segd', origin, input, requests, schedule);
          r.round = round;
          results.push(r);
          if (r.status !== 'ran') {
            if (r.reason) say(o, r.reason);
            break;
          }
          const c = await measureControl(so, round);
          judge(o, r, c);
          runs.push(roundRun(r)!);
          controls.push(roundRun(c));
        }
        if (runs.length) {
          const p = { scenario: name, ...poolRounds(runs, controls) };
          pooled.push(p);
          say(o, pooledLine(p));
        }
        continue;
      }
      if (baselines && SCENARIOS[name].comparable) {
        // The hello-world answers GETs only (its answer ignores the path).
        if (requests[0]!.method === 'GET') targets.push(['hello-world', `http://127.0.0.1:${baselines.hello.port}`]);
        targets.push(['fastify+redis', `http://127.0.0.1:${baselines.fastify.port}`]);
      }
      // The segd runs waiting for their control: the one measured right after, or --compare's hello-world.
      const controlled: Array<{ run: ScenarioResult; control: ScenarioResult | undefined }> = [];
      // --rate half: each target's closed-loop max first; then every target at half of segd's max, the same rate for all.
      const maxRps = new Map<TargetName, number>();
      let halfRate = 0;
      for (const phase of o.halfOfMax ? (['max', 'half'] as const) : ([undefined] as const)) {
        if (phase === 'half' && !halfRate) break;
        for (const [target, url] of targets) {
          if (
            target !== 'segd' &&
            results.some((r) => r.scenario === name && r.target === 'segd' && r.status !== 'ran')
          )
            break;
          const run = phase === 'half' ? { ...so, rate: halfRate } : so;
          const r = await measure(run, name, target, url, input, requests, schedule);
          if (phase) r.phase = phase;
          results.push(r);
          if (r.status === 'skipped') say(o, r.reason!);
          if (target === 'segd' && r.status === 'ran' && (run.rate > 0 || schedule) && name !== 'ws' && controlUrl) {
            const c = targets.some(([t]) => t === 'hello-world') ? undefined : await measureControl(run);
            if (c && phase) c.phase = phase;
            controlled.push({ run: r, control: c });
          }
          if (phase !== 'half' && r.figures) maxRps.set(target, r.figures.rps);
          if (phase === 'max' && target === 'segd' && r.figures) {
            halfRate = Math.max(1, Math.floor(r.figures.rps / 2));
            say(
              o,
              `${name}: segd's closed-loop max ${Math.round(r.figures.rps)} req/s; half load at ${halfRate} req/s`,
            );
          }
        }
      }
      for (const { run, control: c } of controlled) {
        const ctl =
          c ?? results.find((x) => x.scenario === name && x.target === 'hello-world' && x.phase === run.phase);
        judge(o, run, ctl);
      }
      const segdMax = maxRps.get('segd');
      if (targets.length > 1 && segdMax) {
        const c: Comparison = { scenario: name };
        const hello = maxRps.get('hello-world');
        const fastify = maxRps.get('fastify+redis');
        if (hello) c.vsHello = segdMax / hello;
        if (fastify) c.vsFastify = segdMax / fastify;
        comparisons.push(c);
      }
    }

    const gates: GateResult[] = [];
    const rows: CanaryRow[] = [];
    if (baselineOrigin) {
      // Gated once per scenario, on the medians over the rounds.
      for (const name of o.scenarios) {
        const runs = results.filter((r) => r.scenario === name && r.target === 'segd');
        if (runs.every((r) => r.status === 'skipped')) continue;
        const row = canaryRow(name, results);
        if (!row) {
          for (const g of o.gates) gates.push({ scenario: name, gate: g.text, measured: 'did not run', pass: false });
          continue;
        }
        rows.push(row);
        const subject = (side: typeof row.candidate) => ({ scenario: name, ...side });
        gates.push(...evaluate(o.gates, subject(row.candidate), subject(row.baseline)));
      }
    }
    for (const p of pooled) {
      const runs = results.filter((r) => r.scenario === p.scenario && r.target === 'segd' && r.figures);
      const counted = p.valid.length ? runs.filter((r) => p.valid.includes(r.round!)) : runs;
      const errorCount = counted.reduce((n, r) => n + r.figures!.errorCount, 0);
      const requests = counted.reduce((n, r) => n + r.figures!.requests, 0);
      const latencyUs = p.run ?? median(counted.map((r) => r.figures!.latencyUs));
      gates.push(
        ...evaluate(o.gates, {
          scenario: `${p.scenario} (${p.valid.length ? `${p.valid.length} rounds pooled` : 'no round counts'})`,
          latencyUs,
          errorCount,
          errorRate: errorCount / Math.max(1, requests),
          rps: counted.reduce((n, r) => n + r.figures!.rps, 0) / Math.max(1, counted.length),
        }),
      );
    }
    for (const r of baselineOrigin ? [] : results) {
      if (r.target !== 'segd' || r.status === 'skipped') continue;
      if (r.round && pooled.some((p) => p.scenario === r.scenario)) continue;
      // --rate half: throughput is judged at the max, everything else at half load.
      const mine =
        r.phase === 'max'
          ? o.gates.filter((g) => g.metric === 'rps')
          : r.phase === 'half'
            ? o.gates.filter((g) => g.metric !== 'rps')
            : o.gates;
      const label = scenarioLabel(r);
      if (r.status === 'failed' || !r.figures) {
        for (const g of mine) gates.push({ scenario: label, gate: g.text, measured: 'did not run', pass: false });
        continue;
      }
      gates.push(
        ...evaluate(mine, {
          scenario: label,
          latencyUs: r.figures.latencyUs,
          errorCount: r.figures.errorCount,
          errorRate: r.figures.errorRate,
          rps: r.figures.rps,
        }),
      );
    }
    const { gates: _g, partnerKey: _p, ingestKey: _i, adminKey: _a, ...settings } = o;
    let canary: Canary | undefined;
    if (baselineOrigin) {
      const why: string[] = [];
      const broken = results.filter((r) => (r.target === 'segd' || r.target === 'baseline') && r.status === 'failed');
      for (const r of broken) why.push(`${r.scenario} → ${r.target} round ${r.round}: ${r.reason}`);
      for (const a of answers) if (a.error) why.push(`answers ${a.route} not compared: ${a.error}`);
      const failedGates = gates.filter((g) => !g.pass);
      for (const g of failedGates) why.push(`gate ${g.scenario} ${g.gate} failed (${g.measured})`);
      const differ = answers.some((a) => a.differing > 0);
      if (differ && !o.expectDiff) why.push('answers differ on the same data (--expect-diff allows it)');
      const verdict: CanaryVerdict = broken.length
        ? 'could not run'
        : failedGates.length || (differ && !o.expectDiff)
          ? 'regression'
          : 'pass';
      canary = {
        baseline: baselineOrigin,
        rounds: o.rounds,
        rows,
        answers,
        expectDiff: o.expectDiff,
        verdict,
        line: canaryLine(verdict, rows, answers, why, { candidate: origin, baseline: baselineOrigin }),
      };
    }
    return {
      tool: 'segd loadtest',
      version: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      settings: {
        ...settings,
        gates: o.gates.map((g) => g.text),
        node: process.version,
        mode: o.halfOfMax
          ? `closed-loop max (${o.generator}, ${o.connections} connections), then open loop at half of segd's max`
          : o.rate > 0
            ? `open loop, ${o.rate} req/s`
            : `closed loop, ${o.connections} connections (${o.generator})`,
      },
      keyMix: {
        knownShare: keys.knownShare,
        distinct: keys.distinct,
        topKeyShare: keys.topKeyShare,
        draws: keys.uids.length,
      },
      pinning,
      ...(dataCheck ? { dataCheck } : {}),
      results,
      comparisons,
      gates,
      verdict:
        canary && canary.verdict !== 'pass'
          ? 'fail'
          : gates.length === 0
            ? 'no gates'
            : gates.every((g) => g.pass)
              ? 'pass'
              : 'fail',
      // A pooled scenario with a round that counts has figures that count, whatever its other rounds say.
      generatorBound: results.some((r) => r.generatorBound && !countedByPool(r, pooled)),
      ...(canary ? { canary } : {}),
      ...(replay ? { replay: replay.stats } : {}),
      ...(pooled.length ? { pooled } : {}),
    };
  } finally {
    await cleanup();
  }
}

/** The line a pooled scenario prints and the summary repeats. */
export function pooledLine(p: PooledScenario): string {
  const head = `${p.scenario}: ${p.valid.length} of ${p.rounds} rounds count (controls before and after within the rule, requests on time)`;
  if (!p.run) return `${head}; no figure counts`;
  const c = p.control;
  return `${head}; pooled over them: p50 ${fmtUs(p.run.p50)}, p99 ${fmtUs(p.run.p99)}, p99.9 ${fmtUs(p.run.p999)}, max ${fmtUs(p.run.max)} (${p.run.requests.toLocaleString('en-US')} answers)${c ? `; their controls: p99 ${fmtUs(c.p99)}, p99.9 ${fmtUs(c.p999)}` : ''}`;
}

/** With no round that counts, the gate reads the median round's percentiles (and the run is generator-bound). */
function median(list: Percentiles[]): Percentiles {
  const pick = (k: keyof Percentiles) => {
    const v = list.map((p) => p[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)] ?? 0;
  };
  return {
    p50: pick('p50'),
    p90: pick('p90'),
    p99: pick('p99'),
    p999: pick('p999'),
    max: pick('max'),
    mean: pick('mean'),
  };
}

/** A round of a pooled scenario with at least one round that counts: its scenario's figures are the pooled ones. */
export const countedByPool = (r: ScenarioResult, pooled: readonly PooledScenario[] | undefined) =>
  !!r.round && !!pooled?.some((p) => p.scenario === r.scenario && p.valid.length > 0);
