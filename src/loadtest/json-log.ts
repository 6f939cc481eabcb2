// Follows a child process that logs JSON lines (pino) on stdout: keeps the
// parsed lines and lets callers wait for one. Shared by the benchmarks and
// the test harness, which both run the real segd as a child process.
import type { ChildProcess } from 'node:child_process';

export interface LogLine {
  level?: number;
  msg?: string;
  [k: string]: unknown;
}

export interface JsonLog {
  logs: LogLine[];
  stderr: string[];
  /** The first line matching (already seen or yet to come); rejects on timeout or exit. */
  waitFor(pred: (l: LogLine) => boolean, ms: number, what?: string): Promise<LogLine>;
}

/** `keep` bounds the lines kept (long benchmark runs); tests keep them all. */
export function followJsonLog(proc: ChildProcess, name: string, keep = Infinity): JsonLog {
  const logs: LogLine[] = [];
  const stderr: string[] = [];
  const waiters: Array<{ pred: (l: LogLine) => boolean; done: (l: LogLine) => void }> = [];
  let buf = '';
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        continue;
      }
      logs.push(parsed);
      if (logs.length > keep) logs.splice(0, Math.ceil(keep / 2));
      for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!.pred(parsed)) waiters.splice(i, 1)[0]!.done(parsed);
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr.push(c);
    if (stderr.length > 200) stderr.splice(0, 100);
  });
  const tail = () =>
    `stderr: ${stderr.join('').trim().slice(-2000) || '(none)'}; last log lines: ${JSON.stringify(logs.slice(-5))}`;
  const waitFor = (pred: (l: LogLine) => boolean, ms: number, what = 'log line') => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`${name}: no ${what} after ${ms / 1000} s; ${tail()}`)), ms);
      const onExit = () => {
        clearTimeout(t);
        rej(new Error(`${name} exited (${proc.signalCode ?? `code ${proc.exitCode}`}) before ${what}; ${tail()}`));
      };
      proc.once('exit', onExit);
      waiters.push({
        pred,
        done: (l) => {
          clearTimeout(t);
          proc.off('exit', onExit);
          res(l);
        },
      });
    });
  };
  return { logs, stderr, waitFor };
}
