// HTTP push (server-to-server ingest): parsing a pushed batch, and applying it
// once per idempotency key. Both run on the loader thread (a large body would
// stall the lookup worker that took the request); applying goes through the
// one writer.
import { StoreFullError, type StallReason } from '../store/write-failure.js';
import { createHash } from 'node:crypto';
import { readAll } from './feed-reader.js';
import type { Store } from '../store/env.js';
import type { Writer } from './writer.js';
import { nowSeconds } from '../lookup/segments.js';
import type { BatchResult, Checkpoint } from './membership-changes.js';
import type { Change, RecordLimits } from './records.js';
import { GroupCommit } from './group-commit.js';

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

/**
 * A pushed body (HTTP push, a NATS message): NDJSON records, blank lines
 * allowed, or msgpack, a stream of record maps or one array of them. Every bad
 * record is rejected with its line (record number) and reason; a break in a
 * msgpack stream rejects the rest, keeping what came before.
 */
export function parseBody(format: PushFormat, body: Buffer, nowSec: number, limits: RecordLimits): ParsedPush {
  const read = readAll(format, body, { limits, now: () => nowSec, arrayOfRecords: true });
  return { changes: read.changes, rejects: read.rejects.map((r) => ({ line: r.line, reason: r.reason })) };
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
 * Applies parsed pushes in one transaction, on the loader thread, each with
 * its own answer. With an idempotency key, a push's result and a digest of
 * its body are stored in that same transaction; a retry with the key and the
 * same body returns the stored result and applies nothing; the key with
 * another body is a conflict. Synchronous, so the checks and the write cannot
 * interleave with another writer call.
 */
function applyPushes(
  store: Store,
  writer: Writer,
  pushes: ReadonlyArray<{ idem: Idempotency | undefined; parsed: ParsedPush; nowSec: number; maxListed: number }>,
): PushAnswer[] {
  const answers: PushAnswer[] = new Array(pushes.length);
  const parts: Array<{ changes: readonly Change[]; checkpoint?: Checkpoint }> = [];
  const partOf: number[] = [];
  const nowSec = Math.max(...pushes.map((p) => p.nowSec));
  pushes.forEach(({ idem, parsed, nowSec: at, maxListed }, i) => {
    const prev = idem && storedAnswer(store, idem, at);
    const rejected = parsed.rejects.length;
    const rejects = parsed.rejects.slice(0, maxListed);
    if (prev) answers[i] = prev;
    else if (parsed.changes.length === 0)
      answers[i] = { applied: 0, stale: 0, rejected, replay: false, conflict: false, rejects };
    else {
      answers[i] = { applied: 0, stale: 0, rejected, replay: false, conflict: false, rejects };
      partOf.push(i);
      parts.push({
        changes: parsed.changes,
        ...(idem
          ? {
              checkpoint: {
                key: idem.key,
                value: (r: BatchResult): StoredPush => ({
                  applied: r.applied,
                  stale: r.stale,
                  rejected,
                  at,
                  digest: idem.digest,
                }),
              },
            }
          : {}),
      });
    }
  });
  if (parts.length) {
    const results = writer.applyParts(parts, nowSec);
    results.forEach((r, k) => {
      const a = answers[partOf[k]!]!;
      a.applied = r.applied;
      a.stale = r.stale;
    });
  }
  return answers;
}

/** A push's idempotency key (meta key, per caller) and the digest of its body. */
interface Idempotency {
  key: string;
  digest: string;
}

function idempotency(req: PushRequest, body: Buffer): Idempotency | undefined {
  if (!req.idempotencyKey) return undefined;
  return {
    key: `${IDEM_PREFIX}${req.caller}:${req.idempotencyKey}`,
    digest: createHash('sha256').update(body).digest('base64'),
  };
}

/** The answer for a key used within IDEMPOTENCY_SECONDS: a replay (same body) or a conflict; undefined if unused. */
function storedAnswer(store: Store, idem: Idempotency, nowSec: number): PushAnswer | undefined {
  const prev = store.meta.get(idem.key) as StoredPush | undefined;
  if (!prev || prev.at + IDEMPOTENCY_SECONDS <= nowSec) return undefined;
  if (prev.digest !== idem.digest)
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

interface Queued {
  idem: Idempotency | undefined;
  parsed: ParsedPush;
  nowSec: number;
  maxListed: number;
  resolve: (a: PushAnswer) => void;
  reject: (err: unknown) => void;
}

/**
 * The push source on the loader thread, durable when apply resolves. Pushes
 * parsed while a commit was running are applied together in the next one
 * (a group commit): one sync to disk for all of them. The sync was a third
 * of the loader's time with one push per transaction (CPU profile, 37k
 * records/s of 500-record pushes), and with 4 pushes in flight each waited
 * for the others' syncs.
 */
export class PushSource {
  private readonly group = new GroupCommit<Queued>((queued) => this.flush(queued));

  constructor(
    private readonly store: Store,
    private readonly writer: Writer,
    private readonly limits: RecordLimits,
    /** After each batch applied (not a replay or a conflict). */
    private readonly onBatch?: (r: PushAnswer) => void,
  ) {}

  /**
   * Parses and applies one pushed batch; a full store answers `full` (nothing
   * applied). A retry of a key already applied is answered before its body is
   * parsed, and checked again, with the write, once it is.
   */
  async apply(req: PushRequest, maxListed: number): Promise<PushAnswer> {
    const body = Buffer.from(req.body);
    const idem = idempotency(req, body);
    let r: PushAnswer | undefined = idem && storedAnswer(this.store, idem, nowSeconds());
    if (r === undefined) {
      const nowSec = nowSeconds();
      const parsed = parseBody(req.format, body, nowSec, this.limits);
      r = await new Promise<PushAnswer>((resolve, reject) =>
        this.group.add({ idem, parsed, nowSec, maxListed, resolve, reject }),
      );
    }
    if (!r.replay && !r.conflict && !r.full) this.onBatch?.(r);
    return r;
  }

  /** Applies every queued push in one transaction; a key seen twice waits for the next one (returned). */
  private flush(queue: Queued[]): Queued[] {
    const group: Queued[] = [];
    const keys = new Set<string>();
    const later: Queued[] = [];
    for (const q of queue) {
      if (q.idem && keys.has(q.idem.key)) later.push(q);
      else {
        if (q.idem) keys.add(q.idem.key);
        group.push(q);
      }
    }
    try {
      const answers = applyPushes(this.store, this.writer, group);
      group.forEach((q, i) => q.resolve(answers[i]!));
    } catch (err) {
      if (err instanceof StoreFullError) {
        const full: PushAnswer = {
          applied: 0,
          stale: 0,
          rejected: 0,
          replay: false,
          rejects: [],
          conflict: false,
          full: err.reason,
        };
        for (const q of group) q.resolve(full);
      } else for (const q of group) q.reject(err);
    }
    return later;
  }

  /** Forgets idempotency keys older than IDEMPOTENCY_SECONDS; returns how many. */
  expire(nowSec: number): number {
    return expireIdempotencyKeys(this.store, this.writer, nowSec);
  }
}
