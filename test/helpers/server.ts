// Starts the real segd (`node bin/segd.js serve`) as a child process on a free
// port with its own temp data dir, and reads its JSON log to know when it is
// listening and ready. No mocks: real process, real LMDB, real HTTP.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { followJsonLog, type LogLine } from '../../src/loadtest/json-log.js';
import { spawnTracked } from './procs.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = join(ROOT, 'bin/segd.js');

export type { LogLine };

export interface Segd {
  url: string;
  port: number;
  dataDir: string;
  proc: ChildProcess;
  logs: LogLine[];
  stderr: string[];
  /** Resolves with the first log line matching, or rejects after `ms`. */
  waitForLog(pred: (l: LogLine) => boolean, ms?: number): Promise<LogLine>;
  /** SIGTERM (unless it is already shutting down) and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Wait for the initial load to finish (default true). */
  waitReady?: boolean;
  dataDir?: string;
  /** Keep the data dir after stop (for restart tests). */
  keepData?: boolean;
}

export function tempDir(prefix = 'segd-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The environment of a test's `segd serve`: ephemeral loopback port, `dataDir`, no seed, one worker; `env` on top. */
export function segdEnv(dataDir: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    SEGD_PORT: '0',
    SEGD_HOST: '127.0.0.1',
    SEGD_DATA_DIR: dataDir,
    SEGD_SEED: '',
    SEGD_WORKERS: '1',
    SEGD_INBOX_POLL_MS: '100',
    SEGD_LOG_LEVEL: 'info',
    // Tests read their own writes in /metrics: no scrape cache unless a test asks for one.
    SEGD_METRICS_CACHE_MS: '0',
    ...env,
  };
}

export async function startSegd(opts: StartOptions = {}): Promise<Segd> {
  const dataDir = opts.dataDir ?? tempDir();
  const proc = spawnTracked(process.execPath, [BIN, 'serve'], {
    env: segdEnv(dataDir, opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { logs, stderr, waitFor } = followJsonLog(proc, 'segd');
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const waitForLog = (pred: (l: LogLine) => boolean, ms = 30_000) => waitFor(pred, ms);

  const listening = await waitForLog((l) => l.msg === 'listening');
  if (opts.waitReady !== false) await waitForLog((l) => l.msg === 'ready');
  const port = listening.port as number;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    proc,
    logs,
    stderr,
    waitForLog,
    exited,
    async stop() {
      // One SIGTERM only: a second one cuts the shutdown short (exit 4).
      const stopping = logs.some((l) => l.msg === 'shutting down');
      if (proc.exitCode === null && proc.signalCode === null && !stopping) proc.kill('SIGTERM');
      const code = await exited;
      if (!opts.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Runs `segd` with args to completion; returns exit code and output. */
export function runSegd(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // A process group: what the command starts (`loadtest --compare`: redis-server, Fastify) is stopped with it.
    const p = spawnTracked(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      group: true,
    });
    let stdout = '';
    let stderr = '';
    p.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    p.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Writes a feed file into the inbox the way upstream must: temp name, then rename. */
export async function dropFeed(inbox: string, name: string, content: string | Buffer): Promise<void> {
  const { writeFile, rename, mkdir } = await import('node:fs/promises');
  await mkdir(inbox, { recursive: true });
  await writeFile(join(inbox, `${name}.tmp`), content);
  await rename(join(inbox, `${name}.tmp`), join(inbox, name));
}

export const feedLine = (rec: Record<string, unknown>) => JSON.stringify(rec) + '\n';

/** POSTs `records` to /v1/ingest as NDJSON under ingest key `key`; the answer. */
export function ingest(segd: Segd, key: string, records: readonly Record<string, unknown>[]): Promise<Response> {
  return fetch(`${segd.url}/v1/ingest`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/x-ndjson' },
    body: records.map(feedLine).join(''),
  });
}

/** Stops segd and returns what a clean stop must look like, for one toEqual. */
export async function stopReport(segd: Segd, opts: { allowWarnings?: boolean } = {}) {
  const code = await segd.stop();
  return {
    code,
    signal: segd.proc.signalCode,
    stderr: segd.stderr.join(''),
    problems: opts.allowWarnings ? [] : segd.logs.filter((l) => (l.level ?? 0) >= 40),
  };
}
export const CLEAN_STOP = { code: 0, signal: null, stderr: '', problems: [] };

/** The live segments of `uid`, looked up over HTTP. */
export async function segmentsOf(segd: Segd, uid: string): Promise<number[]> {
  const r = await fetch(`${segd.url}/v1/segments?uid=${encodeURIComponent(uid)}`);
  return ((await r.json()) as { segments: number[] }).segments;
}

/** Polls `check` until it holds; throws after `ms`. */
export async function waitFor(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}
