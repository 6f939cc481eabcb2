// CPU time from Linux's /proc stat files (a process's, or one thread's), the
// one reading every bench uses: fields 14 and 15 (utime, stime) in USER_HZ
// ticks, counted after the command name, which may itself hold spaces and ')'.
import { readFileSync } from 'node:fs';

/** USER_HZ on Linux. */
export const TICKS_PER_S = 100;

/** The fields after `(comm)` of a stat file's text: [0] is field 3 (state). */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** [user, system] CPU seconds of the stat file at `path` (`/proc/PID/stat`, `/proc/PID/task/TID/stat`, `/proc/thread-self/stat`). */
export function cpuOfStat(path: string): [number, number] {
  const f = statFields(readFileSync(path, 'latin1'));
  return [Number(f[11]) / TICKS_PER_S, Number(f[12]) / TICKS_PER_S];
}

/** User + system CPU seconds of the stat file at `path`. */
export function cpuSecondsOfStat(path: string): number {
  const [u, s] = cpuOfStat(path);
  return u + s;
}
