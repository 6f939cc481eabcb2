// HTTP push (server-to-server ingest): parsing a pushed batch, and applying it
// once per idempotency key. Parsing runs in the worker that took the request;
// applying runs on the loader thread, through the one writer.
import { StoreFullError, type StallReason } from '../store/write-failure.js';
import { createHash } from 'node:crypto';
import { decodeRecords } from './msgpack-decode.js';
import type { Store } from '../store/env.js';
import type { Writer } from './writer.js';
import { nowSeconds } from '../lookup/segments.js';
import type { BatchResult } from './membership-changes.js';
import { parseLineBytes, toChange, rejectReason, type Change, type RecordLimits } from './records.js';

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
export function parseNdjson(body: Buffer, nowSec: number, maxUidBytes: RecordLimits): ParsedPush {
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
export function parseMsgpack(body: Buffer, nowSec: number, maxUidBytes: RecordLimits): ParsedPush {
  const out: ParsedPush = { changes: [], rejects: [] };
  let n = 0;
  const take = (rec: unknown) => {
    n++;
    try {
      out.changes.push(toChange(rec, nowSec, maxUidBytes));
    } catch (err) {
      out.rejects.push({ line: n, reason: rejectReason(err) });
    }
  };
  const end = decodeRecords(body, {
    record(value, e) {
      if (Array.isArray(value) && n === 0 && e === body.length) value.forEach(take);
      else take(value);
    },
    undecodable(reason) {
      out.rejects.push({ line: ++n, reason });
    },
  });
  if (end.kind === 'incomplete')
    out.rejects.push({ line: n + 1, reason: `truncated msgpack record at byte ${end.at}` });
  else if (end.kind === 'malformed')
    out.rejects.push({ line: n + 1, reason: `malformed msgpack at byte ${end.at}: ${end.reason}` });
  return out;
}

export type PushFormat = 'ndjson' | 'msgpack';

export interface PushRequest {
  /** The raw body (transferred from the worker, parsed here on the loader thread). */
  body: ArrayBuffer;
  format: PushFormat;
  /** Who pushed (a digest of the ingest key): idempotency keys are per caller. */
  caller: string;
  idempotencyKey?: string;
}

export interface PushAnswer extends PushResult {
  /** Reject reasons, at most `maxListed` of them (the count is complete). */
  rejects: PushReject[];
  /** The key was used before for a different body: nothing was applied. */
  conflict: boolean;
  /** The store is full: nothing was applied (retry later with the same key). */
  full?: StallReason;
}

interface StoredPush {
  applied: number;
  stale: number;
  rejected: number;
  at: number;
  digest: string;
}

/** How long an idempotency key is remembered (collectors retry within minutes). */
export const IDEMPOTENCY_SECONDS = 86_400;

/**
 * Parses and applies a pushed batch in one transaction, on the loader thread
 * (parsing a large body would stall a lookup worker). With an idempotency
 * key, the result and a digest of the body are stored in that same
 * transaction; a retry with the key and the same body returns the stored
 * result and applies nothing; the key with another body is a conflict.
 * Synchronous, so the check and the write cannot interleave with another
 * writer call.
 */
function applyPush(
  store: Store,
  writer: Writer,
  req: PushRequest,
  nowSec: number,
  maxUidBytes: RecordLimits,
  maxListed: number,
): PushAnswer {
  const body = Buffer.from(req.body);
  const idem = req.idempotencyKey ? `${IDEM_PREFIX}${req.caller}:${req.idempotencyKey}` : undefined;
  const digest = idem ? createHash('sha256').update(body).digest('base64') : '';
  if (idem) {
    const prev = store.meta.get(idem) as StoredPush | undefined;
    if (prev && prev.at + IDEMPOTENCY_SECONDS > nowSec) {
      if (prev.digest !== digest)
        return { applied: 0, stale: 0, rejected: 0, replay: false, conflict: true, rejects: [] };
      return {
        applied: prev.applied,
        stale: prev.stale,
        rejected: prev.rejected,
        replay: true,
        conflict: false,
        rejects: [],
      };
    }
  }
  const parsed = (req.format === 'ndjson' ? parseNdjson : parseMsgpack)(body, nowSec, maxUidBytes);
  const rejected = parsed.rejects.length;
  const rejects = parsed.rejects.slice(0, maxListed);
  if (parsed.changes.length === 0) return { applied: 0, stale: 0, rejected, replay: false, conflict: false, rejects };
  const res = writer.apply(
    parsed.changes,
    nowSec,
    idem
      ? {
          key: idem,
          value: (r: BatchResult): StoredPush => ({ applied: r.applied, stale: r.stale, rejected, at: nowSec, digest }),
        }
      : undefined,
  );
  return { applied: res.applied, stale: res.stale, rejected, replay: false, conflict: false, rejects };
}

/** Forgets idempotency keys older than IDEMPOTENCY_SECONDS; returns how many. */
function expireIdempotencyKeys(store: Store, writer: Writer, nowSec: number): number {
  const old: string[] = [];
  for (const { key, value } of store.meta.getRange({
    start: IDEM_PREFIX,
    end: `${IDEM_PREFIX}\uffff`,
    snapshot: false,
  })) {
    if ((value as StoredPush).at + IDEMPOTENCY_SECONDS <= nowSec) old.push(key as string);
  }
  if (old.length) writer.commit(() => old.forEach((k) => store.meta.removeSync(k)));
  return old.length;
}

/** The push source on the loader thread: each batch applied in one transaction, durable when apply returns. */
export class PushSource {
  constructor(
    private readonly store: Store,
    private readonly writer: Writer,
    private readonly limits: RecordLimits,
    /** After each batch applied (not a replay or a conflict). */
    private readonly onBatch?: (r: PushAnswer) => void,
  ) {}

  /** Parses and applies one pushed batch; a full store answers `full` (nothing applied). */
  apply(req: PushRequest, maxListed: number): PushAnswer {
    let r: PushAnswer;
    try {
      r = applyPush(this.store, this.writer, req, nowSeconds(), this.limits, maxListed);
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err;
      return { applied: 0, stale: 0, rejected: 0, replay: false, rejects: [], conflict: false, full: err.reason };
    }
    if (!r.replay && !r.conflict) this.onBatch?.(r);
    return r;
  }

  /** Forgets idempotency keys older than IDEMPOTENCY_SECONDS; returns how many. */
  expire(nowSec: number): number {
    return expireIdempotencyKeys(this.store, this.writer, nowSec);
  }
}
