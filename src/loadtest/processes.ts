// Child processes and CPUs for the benchmarks and the load-test harness:
// every process started is tracked and stopped by pid (SIGTERM, then SIGKILL),
// also on error and SIGINT; temp dirs are removed; servers that log JSON lines
// are started and awaited on their "listening" line; taskset pins servers and
// generators to different CPUs so they do not steal each other's cycles.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { followJsonLog, type LogLine } from './json-log.js';

const children = new Set<ChildProcess>();
/** Temp dirs removed by cleanup(). */
export const tempDirs = new Set<string>();

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export function exitOf(child: ChildProcess): Promise<void> {
  if (!alive(child)) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** SIGTERM by pid, SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (!alive(child) || child.pid === undefined) return;
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((r) => {
    timer = setTimeout(() => {
      if (alive(child) && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
      r();
    }, graceMs);
  });
  await Promise.race([exitOf(child), killed]);
  clearTimeout(timer);
  await exitOf(child);
}

let cleaningUp: Promise<void> | null = null;
export function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c)));
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    tempDirs.clear();
  })();
  return cleaningUp;
}

let installed = false;
/**
 * Stops every tracked child and removes temp dirs on SIGINT/SIGTERM (then
 * exits 130/143) and, as a last resort, synchronously on process exit.
 */
export function installCleanupHandlers(say: (msg: string) => void): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    for (const c of children) {
      if (alive(c) && c.pid !== undefined) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      say(`${sig}: stopping the processes started here and removing temp files`);
      void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env }));
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolveRun({ stdout, stderr });
      else
        reject(
          new Error(
            `${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stderr.trim() || stdout.trim()}`,
          ),
        );
    });
  });
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export interface Server {
  name: string;
  proc: ChildProcess;
  port: number;
  logs: LogLine[];
  stderr: string[];
  waitLog(pred: (l: LogLine) => boolean, ms: number, what: string): Promise<LogLine>;
  /** Throws if the process is gone (it must live through every phase). */
  check(): void;
}

/**
 * Starts a server that logs JSON lines on stdout, and waits for "listening".
 * `cpu`: the server runs on that CPU from its first instruction (taskset execs
 * node, so the pid is the server's).
 */
export async function startServer(name: string, args: string[], env: NodeJS.ProcessEnv, cpu?: number): Promise<Server> {
  const [cmd, argv] =
    cpu === undefined ? [process.execPath, args] : ['taskset', ['-c', String(cpu), process.execPath, ...args]];
  const proc = track(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env }));
  const { logs, stderr, waitFor } = followJsonLog(proc, name, 1000);
  const waitLog = (pred: (l: LogLine) => boolean, ms: number, what: string) => waitFor(pred, ms, `"${what}"`);
  proc.once('error', (err) => stderr.push(String(err)));
  const listening = await waitLog((l) => l.msg === 'listening', 30_000, 'listening');
  const port = listening.port;
  if (typeof port !== 'number') throw new Error(`${name}: "listening" line has no port: ${JSON.stringify(listening)}`);
  return {
    name,
    proc,
    port,
    logs,
    stderr,
    waitLog,
    check() {
      if (!alive(proc))
        throw new Error(
          `${name} exited (${proc.signalCode ?? `code ${proc.exitCode}`}); stderr: ${stderr.join('').trim().slice(-2000) || '(none)'}`,
        );
    },
  };
}

export function httpGet(port: number, path: string, HOST = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: HOST, port, path, method: 'GET', agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (c: string) => (body += c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('error', rej);
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.end();
  });
}

// ───────────────────────────── CPU pinning ─────────────────────────────

export interface Pinning {
  pinned: boolean;
  serverCpu?: number;
  generatorCpu?: number;
  why: string;
}

/** CPUs this process may run on, from `taskset -cp`. */
export function allowedCpus(): number[] {
  const r = spawnSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' });
  const m = /list:\s*([\d,\s-]+)$/m.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) return [];
  const out: number[] = [];
  for (const part of m[1]!.trim().split(',')) {
    const [a, b] = part.split('-').map((s) => Number(s.trim()));
    if (a === undefined || !Number.isInteger(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

export function planPinning(want: boolean, offWhy = 'unpinned (--no-pin)'): Pinning {
  if (!want) return { pinned: false, why: offWhy };
  if (!hasCommand('taskset'))
    return { pinned: false, why: 'unpinned: `taskset` not found (util-linux); figures are noisier' };
  const cpusAllowed = allowedCpus();
  if (cpusAllowed.length < 2)
    return { pinned: false, why: `unpinned: fewer than 2 CPUs available (${cpusAllowed.join(',') || '?'})` };
  const [serverCpu, generatorCpu] = cpusAllowed as [number, number];
  return {
    pinned: true,
    serverCpu,
    generatorCpu,
    why: `servers on CPU ${serverCpu}, generators (this process, wrk) on CPU ${generatorCpu} (taskset)`,
  };
}

/** Pins every thread of `pid` to `cpu`. */
export function pin(pid: number, cpu: number): void {
  const r = spawnSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset -a -cp ${cpu} ${pid} failed: ${r.stderr}`);
}
