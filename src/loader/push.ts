// HTTP push (server-to-server ingest): parsing a pushed batch, and applying it
// once per idempotency key. Parsing runs in the worker that took the request;
// applying runs on the loader thread, through the one writer.
import { unpackMultiple } from 'msgpackr';
import type { Store } from '../store/env.js';
import type { Writer, BatchResult } from './writer.js';
import { parseLineBytes, toChange, RecordError, type Change } from './records.js';

export interface PushReject {
  /** 1-based line (NDJSON) or record number (msgpack). */
  line: number;
  reason: string;
}

export interface ParsedPush {
  changes: Change[];
  rejects: PushReject[];
}

export interface PushResult {
  applied: number;
  stale: number;
  rejected: number;
  /** True when this idempotency key was applied before: nothing was applied now. */
  replay: boolean;
}

export const MAX_IDEMPOTENCY_KEY = 200;
const IDEM_PREFIX = 'idem:';

/** NDJSON: one record per line, blank lines allowed. Every bad line is rejected with its reason. */
export function parseNdjson(body: Buffer, nowSec: number, maxUidBytes: number): ParsedPush {
  const out: ParsedPush = { changes: [], rejects: [] };
  let start = 0;
  let line = 0;
  while (start < body.length) {
    let end = body.indexOf(10, start);
    if (end === -1) end = body.length;
    line++;
    const stop = end > start && body[end - 1] === 13 ? end - 1 : end;
    if (stop > start) {
      const r = parseLineBytes(body.subarray(start, stop), nowSec, maxUidBytes);
      if (typeof r === 'string') out.rejects.push({ line, reason: r });
      else out.changes.push(r);
    }
    start = end + 1;
  }
  return out;
}

/** msgpack: a stream of record maps (or one array of them). A break in the stream rejects the rest, keeping what came before. */
export function parseMsgpack(body: Buffer, nowSec: number, maxUidBytes: number): ParsedPush {
  const out: ParsedPush = { changes: [], rejects: [] };
  let n = 0;
  const take = (rec: unknown) => {
    n++;
    try {
      out.changes.push(toChange(rec, nowSec, maxUidBytes));
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      out.rejects.push({ line: n, reason: err.message });
    }
  };
  let lastEnd = 0;
  try {
    unpackMultiple(body, (value: unknown, _start?: number, end?: number) => {
      if (Array.isArray(value) && n === 0 && end === body.length) value.forEach(take);
      else take(value);
      lastEnd = end ?? lastEnd;
    });
  } catch (err) {
    out.rejects.push({ line: n + 1, reason: `malformed or truncated msgpack at byte ${lastEnd}: ${(err as Error).message}` });
  }
  return out;
}

/**
 * Applies a pushed batch in one transaction. With an idempotency key, the
 * result is stored in that same transaction; a retry with the key returns the
 * stored result and applies nothing. Synchronous on the loader thread, so the
 * check and the write cannot interleave with another writer call.
 */
export function applyPush(store: Store, writer: Writer, changes: Change[], rejected: number, nowSec: number, key?: string): PushResult {
  if (key) {
    const prev = store.meta.get(IDEM_PREFIX + key) as Omit<PushResult, 'replay'> | undefined;
    if (prev) return { applied: prev.applied, stale: prev.stale, rejected: prev.rejected, replay: true };
  }
  const res = writer.apply(
    changes,
    nowSec,
    key ? { key: IDEM_PREFIX + key, value: (r: BatchResult) => ({ applied: r.applied, stale: r.stale, rejected, at: nowSec }) } : undefined,
  );
  return { applied: res.applied, stale: res.stale, rejected, replay: false };
}
