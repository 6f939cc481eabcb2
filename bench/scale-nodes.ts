// What the scale-out benches share: a NATS JetStream cluster and segd nodes
// consuming it (every process tracked and stopped by pid on exit or error),
// each node's JetStream lag from /readyz, freshness probes (publish → visible
// on every node), and CPU use per process from /proc.
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { startNatsCluster, type NatsCluster } from '../src/loadtest/nats-cluster.js';
import { httpGet, startServer, tempDirs, track, type Server } from '../src/loadtest/processes.js';
import { SEGD_BIN, envWithoutSegd } from './seeded-segd.js';
import { TICKS_PER_S, cpuSecondsOfStat, statFields } from './proc-stat.js';

export function benchDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export const startBenchNats = (size: 1 | 3): Promise<NatsCluster> =>
  startNatsCluster({ size, track, storeDir: () => benchDir('segd-bench-nats-') });

export interface NodeOptions {
  name: string;
  urls: string[];
  dataDir: string;
  workers: number;
  env?: NodeJS.ProcessEnv;
  /** The CPU the node runs on from its start (taskset). */
  cpu?: number;
}

/** A segd node consuming the stream with its own durable (its name); resolves once it listens. */
export function startNode(o: NodeOptions): Promise<Server> {
  return startServer(
    o.name,
    [SEGD_BIN, 'serve'],
    {
      ...envWithoutSegd(),
      SEGD_PORT: '0',
      SEGD_HOST: '127.0.0.1',
      SEGD_DATA_DIR: o.dataDir,
      SEGD_WORKERS: String(o.workers),
      SEGD_LOG_LEVEL: 'info',
      SEGD_SHUTDOWN_GRACE_MS: '1000',
      SEGD_NATS_URL: o.urls.join(','),
      SEGD_NATS_DURABLE: o.name,
      ...o.env,
    },
    o.cpu,
  );
}

export interface Readiness {
  status: number;
  state: string;
  /** JetStream backlog (messages), null if not reported. */
  lag: number | null;
}

export async function readiness(node: Server): Promise<Readiness> {
  const r = await httpGet(node.port, '/readyz');
  const body = JSON.parse(r.body) as { status: string; lag?: { nats: number | string } };
  const lag = typeof body.lag?.nats === 'number' ? body.lag.nats : null;
  return { status: r.status, state: body.status, lag };
}

export async function segmentsOf(node: Server, uid: string): Promise<number[]> {
  const r = await httpGet(node.port, `/v1/segments?uid=${encodeURIComponent(uid)}`);
  if (r.status !== 200) throw new Error(`${node.name}: GET /v1/segments → ${r.status} ${r.body.slice(0, 200)}`);
  return (JSON.parse(r.body) as { segments: number[] }).segments;
}

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! : NaN);
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s.length ? s[s.length - 1]! : NaN };
}

const PROBE_SEGMENT = 999_999;

/**
 * A probe record for a fresh user every `everyMs`, published on its own
 * connection; per node, one loop polls the oldest probe it has not seen yet
 * (GET /v1/segments) until that probe's segment is there. A consumer applies
 * the stream in order, so once probe k is visible every earlier one is: the
 * loop moves on to the next at once, and a probe is timed when its poll first
 * sees it — at most one poll round trip late.
 */
export class FreshnessProbe {
  private readonly sentAt: number[] = [];
  private readonly uids: string[] = [];
  /** node → ms from publish to visible, by probe index. */
  readonly visibleMs: Map<string, number[]>;
  private publishing = true;
  private polling = true;
  private readonly loops: Promise<void>[] = [];
  private publisher: Promise<void> | null = null;
  publishErrors = 0;

  constructor(
    private readonly nats: NatsCluster,
    private readonly nodes: Server[],
    private readonly everyMs: number,
    private readonly runId = Date.now().toString(36),
  ) {
    this.visibleMs = new Map(nodes.map((n) => [n.name, []]));
  }

  start(): void {
    this.publisher = (async () => {
      for (let k = 0; this.publishing; k++) {
        const uid = `probe-${this.runId}-${k}`;
        this.uids.push(uid);
        this.sentAt.push(performance.now());
        this.nats.js
          .publish(`segments.probe`, `{"op":"add","uid":"${uid}","segments":[${PROBE_SEGMENT}]}\n`)
          .catch(() => this.publishErrors++);
        await new Promise((r) => setTimeout(r, this.everyMs));
      }
    })();
    for (const node of this.nodes) this.loops.push(this.poll(node));
  }

  private async poll(node: Server): Promise<void> {
    const seen = this.visibleMs.get(node.name)!;
    while (this.polling) {
      const k = seen.length;
      if (k >= this.uids.length) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const segs = await segmentsOf(node, this.uids[k]!).catch(() => [] as number[]);
      if (segs.includes(PROBE_SEGMENT)) seen.push(performance.now() - this.sentAt[k]!);
      else await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Probes published so far. */
  get published(): number {
    return this.uids.length;
  }

  /** Percentiles of the probes from `from` on, per node; probes not seen count at their age now (a lower bound). */
  stats(from = 0): Record<string, Percentiles & { unseen: number }> {
    const now = performance.now();
    const out: Record<string, Percentiles & { unseen: number }> = {};
    for (const [name, seen] of this.visibleMs) {
      const xs = seen.slice(from);
      let unseen = 0;
      for (let k = Math.max(from, seen.length); k < this.uids.length; k++, unseen++) xs.push(now - this.sentAt[k]!);
      out[name] = { ...percentiles(xs), unseen };
    }
    return out;
  }

  stopPublishing(): Promise<void> {
    this.publishing = false;
    return this.publisher ?? Promise.resolve();
  }

  /** Waits up to `ms` for every node to see every probe, then stops polling. */
  async finish(ms: number): Promise<void> {
    await this.stopPublishing();
    const end = performance.now() + ms;
    while (performance.now() < end && [...this.visibleMs.values()].some((s) => s.length < this.uids.length))
      await new Promise((r) => setTimeout(r, 50));
    this.polling = false;
    await Promise.all(this.loops);
  }
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  try {
    return cpuSecondsOfStat(`/proc/${pid}/stat`);
  } catch {
    return NaN; // gone
  }
}

/** A thread's name, CPU (utime + stime, s) and scheduler times (/proc/…/schedstat: on CPU, waiting for one; ns). */
interface ThreadTimes {
  name: string;
  cpuS: number;
  runNs: number;
  queuedNs: number;
}

/** Each thread of a process, keyed by tid (/proc/PID/task). */
function threadTimes(pid: number): Map<string, ThreadTimes> {
  const out = new Map<string, ThreadTimes>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // gone
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = statFields(stat);
      const [runNs, queuedNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      out.set(tid, {
        name,
        cpuS: (Number(f[11]) + Number(f[12])) / TICKS_PER_S,
        runNs: runNs ?? NaN,
        queuedNs: queuedNs ?? NaN,
      });
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** One thread between mark() and read(), in % of the window: on a CPU, runnable but waiting for one, asleep (the rest). */
export interface ThreadShare {
  thread: string;
  cpuPct: number;
  runPct: number;
  queuedPct: number;
  asleepPct: number;
}

/**
 * CPU per thread of one process between mark() and read(), busiest first
 * (threads under 1% left out). Asleep is what a loaded machine cannot
 * explain: time the thread waited on something other than a CPU (the
 * network, a lock, the disk), where on-CPU and queued share one core.
 */
export class ThreadCpu {
  private at = 0;
  private base = new Map<string, ThreadTimes>();

  constructor(private readonly pid: number) {}

  mark(): void {
    this.at = performance.now();
    this.base = threadTimes(this.pid);
  }

  read(): ThreadShare[] {
    const ms = performance.now() - this.at;
    const pct = (x: number) => Math.round(x * 1000) / 10;
    const rows: ThreadShare[] = [];
    for (const [tid, t] of threadTimes(this.pid)) {
      const b = this.base.get(tid) ?? { name: t.name, cpuS: 0, runNs: 0, queuedNs: 0 };
      const run = (t.runNs - b.runNs) / 1e6 / ms;
      const queued = (t.queuedNs - b.queuedNs) / 1e6 / ms;
      const cpu = (t.cpuS - b.cpuS) / (ms / 1000);
      if (cpu < 0.01 && run < 0.01) continue;
      rows.push({
        thread: `${tid} ${t.name}`,
        cpuPct: pct(cpu),
        runPct: pct(run),
        queuedPct: pct(queued),
        asleepPct: pct(Math.max(0, 1 - run - queued)),
      });
    }
    return rows.sort((a, b) => b.runPct - a.runPct);
  }
}

/** Busy and total jiffies of the whole machine (/proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** CPU use per named process between mark() and read(): % of one core, like `ps -o pcpu` over the window. */
export class CpuMeter {
  private at = 0;
  private base = new Map<string, number>();
  private machine = { busy: 0, total: 0 };

  constructor(private readonly pids: Map<string, number>) {}

  mark(): void {
    this.at = performance.now();
    this.base = new Map([...this.pids].map(([name, pid]) => [name, cpuSeconds(pid)]));
    this.machine = machineTicks();
  }

  read(): { perProcess: Record<string, number>; machineBusyPct: number; loadavg: number[] } {
    const s = (performance.now() - this.at) / 1000;
    const perProcess: Record<string, number> = {};
    for (const [name, pid] of this.pids)
      perProcess[name] = Math.round(((cpuSeconds(pid) - this.base.get(name)!) / s) * 1000) / 10;
    const m = machineTicks();
    const machineBusyPct = Math.round(((m.busy - this.machine.busy) / (m.total - this.machine.total)) * 1000) / 10;
    return { perProcess, machineBusyPct, loadavg: loadavg().map((x) => Math.round(x * 100) / 100) };
  }
}

export const fmtMs = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '–');
