// Every process a test starts (segd, nats-server, chromium, …) is registered
// here, and whatever still runs after a test file — passed, failed or timed
// out — is stopped by pid: SIGTERM, then SIGKILL after a short grace.
// test/helpers/teardown.ts (a vitest setup file) runs `stopAll` after every
// file; the exit hook is the last resort if the test process ends first.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

interface Tracked {
  proc: ChildProcess;
  /** Spawned as a process group leader: the whole group is signalled (chromium's helpers). */
  group: boolean;
}

const live = new Set<Tracked>();

const running = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

function signal(t: Tracked, sig: NodeJS.Signals): void {
  if (t.proc.pid === undefined) return;
  try {
    if (t.group) process.kill(-t.proc.pid, sig);
    else t.proc.kill(sig);
  } catch {
    /* already gone */
  }
}

/** Registers a started process until it exits. */
export function track(proc: ChildProcess, opts: { group?: boolean } = {}): ChildProcess {
  const t: Tracked = { proc, group: opts.group ?? false };
  if (!running(proc)) return proc;
  live.add(t);
  proc.once('exit', () => {
    // A group leader's helpers may outlive it.
    if (t.group) signal(t, 'SIGKILL');
    live.delete(t);
  });
  return proc;
}

/** `spawn`, registered. `group: true` makes it a process group leader, killed with all its children. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions & { group?: boolean } = {}): ChildProcess {
  const { group = false, ...rest } = opts;
  return track(spawn(cmd, args, { ...rest, detached: group }), { group });
}

/** Stops every registered process still running: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopAll(graceMs = 3000): Promise<string[]> {
  const left = [...live].filter((t) => running(t.proc));
  const names = left.map((t) => `${t.proc.spawnfile} (pid ${t.proc.pid})`);
  await Promise.all(
    left.map(
      (t) =>
        new Promise<void>((resolve) => {
          if (!running(t.proc)) return resolve();
          const kill = setTimeout(() => signal(t, 'SIGKILL'), graceMs);
          t.proc.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          signal(t, 'SIGTERM');
        }),
    ),
  );
  return names;
}

/** How many registered processes still run (for tests of this module). */
export const liveCount = () => [...live].filter((t) => running(t.proc)).length;

process.once('exit', () => {
  for (const t of live) signal(t, 'SIGKILL');
});
