// CPU priority per thread. Linux schedules threads, not processes, and nice
// values and policies are per thread: the loader (main) thread can step aside
// for the lookup workers of the same process. Node has setPriority for nice
// values; SCHED_IDLE has no Node API, so `chrt` (util-linux) sets it on the
// thread's kernel id.
import { setPriority } from 'node:os';
import { readFileSync, readlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export type LoaderPriority = 'normal' | 'nice' | 'idle';

/** Nice value of the loader thread in `nice` mode (0 = as lookups, 19 = least). */
const LOADER_NICE = 10;

/** This thread's kernel id (Linux), or undefined elsewhere. */
export function threadId(): number | undefined {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return undefined;
  }
}

function chrt(policy: '--idle' | '--other', tid: number): string | null {
  const r = spawnSync('chrt', [policy, '-p', '0', String(tid)], { encoding: 'utf8', timeout: 5000 });
  if (r.error) return r.error.message;
  return r.status === 0 ? null : (r.stderr || `chrt exited ${r.status}`).trim();
}

/**
 * Lowers the calling thread (the loader). Threads it creates afterwards
 * inherit the setting, so the workers take theirs back (`restoreThisThread`).
 * Returns why it could not, or null.
 */
export function lowerThisThread(mode: LoaderPriority): string | null {
  if (mode === 'normal') return null;
  if (mode === 'nice') {
    try {
      setPriority(0, LOADER_NICE);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }
  const tid = threadId();
  return tid === undefined ? 'SCHED_IDLE needs Linux' : chrt('--idle', tid);
}

/**
 * Takes normal priority back in a thread started by a lowered one (a worker
 * the supervisor restarted). Allowed for root or CAP_SYS_NICE, or within
 * RLIMIT_NICE; otherwise the thread stays lowered, which costs latency, not
 * correctness. Returns why it could not, or null.
 */
export function restoreThisThread(): string | null {
  const tid = threadId();
  let why: string | null = null;
  if (tid !== undefined) {
    const policy = readSchedPolicy(tid);
    if (policy !== 0) why = chrt('--other', tid);
  }
  try {
    setPriority(0, 0);
  } catch (err) {
    why ??= (err as Error).message;
  }
  return why;
}

/** The thread's scheduling policy from /proc (0 = SCHED_OTHER, 5 = SCHED_IDLE), or 0 when unknown. */
function readSchedPolicy(tid: number): number {
  try {
    // Field 41 of /proc/<tid>/stat; the command name (field 2) may hold spaces, so count from its ')'.
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[41 - 3]) || 0;
  } catch {
    return 0;
  }
}
