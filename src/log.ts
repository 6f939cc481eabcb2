// One pino logger per thread, JSON to stdout. Raw user keys are not logged at
// info level (privacy); callers log counts and reasons.
import { pino, type Logger } from 'pino';
import { threadId } from 'node:worker_threads';
import type { LogLevel } from './config/schema.js';

export type { Logger };

export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, thread: threadId, ...bindings } });
}
