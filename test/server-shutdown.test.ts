// Shutdown is bounded whatever segd waits for: requests in flight are cut off
// in time, past SEGD_SHUTDOWN_TIMEOUT_MS segd names what still hangs, closes
// the store and exits 4, and a second signal exits at once. What hangs here:
// a request whose body never finishes (with a grace period far longer than
// the test), and a seed file that is a FIFO nobody writes.
import { describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { startSegd, stopReport, CLEAN_STOP, tempDir, waitFor, BIN, segdEnv, type Segd } from './helpers/server.js';
import { spawnTracked } from './helpers/procs.js';
import { followJsonLog } from '../src/loadtest/json-log.js';

/** A batch lookup whose body stops halfway: a request in flight until the socket closes. segd runs with SEGD_MAX_INFLIGHT=1. */
async function requestInFlight(segd: Segd): Promise<Socket> {
  const body = JSON.stringify({ uids: ['alice'] });
  const sock = connect(segd.port, '127.0.0.1');
  sock.on('error', () => undefined); // the server goes away under it
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(
    `POST /v1/segments:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
  );
  // Held once it has taken the one lookup slot (SEGD_MAX_INFLIGHT=1): a lookup is then shed.
  await waitFor(
    async () => (await fetch(`${segd.url}/v1/segments?uid=probe`)).headers.get('x-segd-empty') === 'overload',
  );
  return sock;
}

/** True once a thread of `pid` waits in the kernel for a FIFO's other end (Linux). */
function blockedOnFifo(pid: number): boolean {
  return readdirSync(`/proc/${pid}/task`).some((t) => {
    try {
      return readFileSync(`/proc/${pid}/task/${t}/wchan`, 'utf8') === 'wait_for_partner';
    } catch {
      return false; // the thread ended meanwhile
    }
  });
}

describe('bounded shutdown', () => {
  it('SEGD_SHUTDOWN_TIMEOUT_MS bounds the grace: a request in flight is cut off in time and the stop is clean', async () => {
    const segd = await startSegd({
      env: { SEGD_SHUTDOWN_GRACE_MS: '600000', SEGD_SHUTDOWN_TIMEOUT_MS: '1000', SEGD_MAX_INFLIGHT: '1' },
    });
    const sock = await requestInFlight(segd);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    const report = stopReport(segd, { allowWarnings: true });
    await closed;
    expect(await report).toEqual(CLEAN_STOP);
    expect(segd.logs.filter((l) => (l.level ?? 0) >= 40).map((l) => [l.msg, l.inflight])).toEqual([
      ['grace period over; closing with requests in flight', 1],
    ]);
  });

  it('past SEGD_SHUTDOWN_TIMEOUT_MS: logs what it waits for, closes the store, exits 4', async () => {
    // The seed is a FIFO nobody writes: the initial load waits in open(2), out of reach of any abort.
    const dir = tempDir();
    const fifo = join(dir, 'seed.ndjson');
    execFileSync('mkfifo', [fifo]);
    const dataDir = join(dir, 'data');
    const segd = await startSegd({
      dataDir,
      waitReady: false,
      env: { SEGD_SEED: fifo, SEGD_SHUTDOWN_TIMEOUT_MS: '1000' },
    });
    await waitFor(async () => blockedOnFifo(segd.proc.pid!));
    segd.proc.kill('SIGTERM');
    const timedOut = await segd.waitForLog(
      (l) => l.msg === 'shutdown timed out; closing the store without waiting for the rest',
    );
    expect(timedOut.waitingFor).toEqual(['loader: inbox scan or initial load']);
    const last = await segd.waitForLog((l) => l.msg === 'exiting with the shutdown unfinished');
    expect(last.waitingFor).toEqual(['loader: inbox scan or initial load']);
    // Exiting waits for the thread stuck in open(2): let it go.
    await (await open(fifo, 'w')).close();
    expect(await segd.exited).toBe(4);
    // The store was closed and the pidfile removed: the next start finds both clean.
    expect(existsSync(join(dataDir, 'segd.pid'))).toBe(false);
    const again = await startSegd({ dataDir });
    expect(await stopReport(again)).toEqual(CLEAN_STOP);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a second SIGTERM exits at once, naming what the shutdown still waited for', async () => {
    const segd = await startSegd({
      env: { SEGD_SHUTDOWN_GRACE_MS: '600000', SEGD_SHUTDOWN_TIMEOUT_MS: '600000', SEGD_MAX_INFLIGHT: '1' },
    });
    const sock = await requestInFlight(segd);
    segd.proc.kill('SIGTERM');
    await segd.waitForLog((l) => l.msg === 'shutting down');
    segd.proc.kill('SIGTERM');
    expect(await segd.exited).toBe(4);
    sock.destroy();
    const second = segd.logs.find((l) => l.msg === 'second signal: exiting without finishing the shutdown');
    expect(second?.waitingFor).toEqual(['worker 0: drain']);
  });

  it('a SIGTERM while starting is kept: segd finishes starting, then stops cleanly', async () => {
    const dataDir = tempDir();
    const proc = spawnTracked(process.execPath, [BIN, 'serve'], {
      env: segdEnv(dataDir),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
      proc.once('exit', (code, signal) => r({ code, signal })),
    );
    const { logs, stderr, waitFor: waitForLog } = followJsonLog(proc, 'segd');
    // Logged inside start-up, before the workers listen.
    await waitForLog((l) => l.msg === 'no known-users filter yet; building it', 30_000);
    proc.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    rmSync(dataDir, { recursive: true, force: true });
    const msgs = logs.map((l) => l.msg);
    expect(msgs).toContain('signal while starting: stopping once started');
    expect(msgs.indexOf('listening')).toBeLessThan(msgs.indexOf('shutting down'));
    expect(msgs.at(-1)).toBe('stopped');
    expect(stderr.join('')).toBe('');
  });
});
