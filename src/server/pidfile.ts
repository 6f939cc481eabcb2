// `<dataDir>/segd.pid`: written by `segd serve`, so offline tools (`segd
// import`) can refuse to write behind a running server's back (its bloom
// filter would miss the users they add). A pidfile whose process is gone is
// stale and ignored.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PIDFILE = 'segd.pid';

export function writePidfile(dataDir: string): void {
  writeFileSync(join(dataDir, PIDFILE), `${process.pid}\n`, { mode: 0o600 });
}

export function removePidfile(dataDir: string): void {
  rmSync(join(dataDir, PIDFILE), { force: true });
}

/** The pid of a live segd serving this data dir, or null. */
export function runningServer(dataDir: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dataDir, PIDFILE), 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}
