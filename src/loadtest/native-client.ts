// Which program drives an open loop: the native client (native/openloop,
// C: epoll, a timerfd and a short spin keep its sends within µs of the
// schedule) or the Node one (open-loop-client.ts, whose event loop sends up
// to milliseconds late at 20k req/s on 2 cores). Both take the same flags and
// print the same JSON line, so drive-http.ts runs either the same way. The
// native one is the default wherever it has been built (`npm run build:native`).
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import { spawnSync } from 'node:child_process';

export type OpenLoopClient = 'native' | 'node';

export const OPEN_LOOP_CLIENTS: readonly OpenLoopClient[] = ['native', 'node'];

const NODE_CLIENT_JS = resolve(import.meta.dirname, 'open-loop-client.js');

// From src/loadtest (tests) or dist/src/loadtest (the built CLI): the binary sits under the repository root.
const NATIVE_CANDIDATES = [
  resolve(import.meta.dirname, '../../native/build/openloop'),
  resolve(import.meta.dirname, '../../../native/build/openloop'),
];

/** The built native client, or null when it has not been built here. */
export function nativeClientPath(): string | null {
  for (const p of NATIVE_CANDIDATES) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** `--client` absent: the native client when it is built, else the Node one. */
export function defaultClient(): OpenLoopClient {
  return nativeClientPath() ? 'native' : 'node';
}

/**
 * SCHED_FIFO priority of a realtime native client (`--rt`). Any FIFO
 * priority preempts the normal-policy processes sharing its CPU (the feed
 * sender, nats-server, a harness event loop); the value only orders it
 * against other realtime threads, of which the machine has none of ours.
 */
const RT_PRIORITY = 20;

/**
 * The command line (program and leading arguments) that runs `client`, and
 * the arguments that go last. `realtime`: the native client at SCHED_FIFO,
 * sleeping on its timer between sends instead of spinning before each (a
 * FIFO thread that spins would starve the companions on its CPU). On the
 * 2-core VM, beside a push feed sent from the same CPU, it cut the
 * generator's send lag p99 from 4.6 ms to 0.2 ms and the hello-world
 * control's p99 from 0.2–0.6 ms to 0.14–0.19 ms; each answer's wake-up
 * costs ≈ 50 µs more at the median (control p50 26 → 76 µs), the same for
 * segd and its control.
 */
export function clientCommand(client: OpenLoopClient, realtime = false): { head: string[]; tail: string[] } {
  if (client === 'node') {
    if (realtime) throw new Error('--rt runs the native client only (the Node client cannot sleep between sends)');
    return { head: [process.execPath, NODE_CLIENT_JS], tail: [] };
  }
  const bin = nativeClientPath();
  if (!bin) throw new Error('the native open-loop client is not built: run `npm run build:native` (needs gcc)');
  return realtime
    ? { head: ['chrt', '-f', String(RT_PRIORITY), bin], tail: ['--spin-us', '0'] }
    : { head: [bin], tail: [] };
}

/** Why this user cannot run a SCHED_FIFO client (`chrt -f`: root or CAP_SYS_NICE), or null when it can. */
export function realtimeRefused(): string | null {
  const r = spawnSync('chrt', ['-f', String(RT_PRIORITY), 'true'], { encoding: 'utf8', timeout: 5000 });
  if (r.error) return `chrt: ${r.error.message}`;
  return r.status === 0 ? null : (r.stderr || `chrt exited ${r.status}`).trim();
}
