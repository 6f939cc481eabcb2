// One pino logger per thread, JSON to stdout. Raw user keys are not logged at
// info level (privacy); callers log counts and reasons.
import { pino, type Logger } from 'pino';
import { threadId } from 'node:worker_threads';
import type { LogLevel } from './config/schema.js';

export type { Logger };

export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, thread: threadId, ...bindings } });
}

/**
 * The same logger writing synchronously, for a thread's last words: the
 * default destination writes asynchronously, and a thread that ends right
 * after logging loses the line (seen about one time in six on a pipe).
 */
export function lastWordsLogger(log: Logger): Logger {
  return pino({ level: log.level, base: log.bindings() }, pino.destination({ dest: 1, sync: true }));
}

/**
 * Waits until what `log` has written reached stdout, at most `ms`: a worker
 * thread is terminated right after it reports, and lines still buffered
 * behind an asynchronous write are lost with it (a drain's "requests in
 * flight" warning was, under load).
 */
export function flushLog(log: Logger, ms = 1000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    try {
      log.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}
