// Imports one feed file (any format: feed-reader.ts) through the writer, in batches, each batch's
// transaction carrying the checkpoint (file, byte offset, line) it reaches.
// After a crash the same call resumes from the checkpoint: nothing lost,
// nothing applied twice. Bad lines are rejected with line number and reason.
import { performance } from 'node:perf_hooks';
import { stat, mkdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Store } from '../store/env.js';
import { nowSeconds } from '../lookup/segments.js';
import type { Change, RecordLimits } from './records.js';
import { fileChunks } from './file-bytes.js';
import { readFeed, feedFormatOf, type FeedBatch } from './feed-reader.js';
import type { Writer } from './writer.js';
import { RejectLog } from './reject-log.js';

export interface FileCheckpoint {
  file: string;
  size: number;
  /** With name and size, tells a resumed file from a new one of the same name. */
  mtimeMs: number;
  offset: number;
  line: number;
  done: boolean;
}

export interface ImportOptions {
  /** meta key of this file's checkpoint. */
  checkpointKey: string;
  batchSize: number;
  maxUidBytes: RecordLimits;
  maxLineBytes: number;
  /** How many times its compressed size a gzip file may expand to (default: file-bytes.ts). */
  maxGzipRatio?: number;
  /** Where bad records go (NDJSON: line, reason, start of the record); none = only counted. */
  rejectsPath?: string;
  onProgress?: (p: ImportProgress) => void;
  /** Checked after each committed batch: stops cleanly, resumable from the checkpoint. */
  signal?: AbortSignal;
}

export interface ImportProgress {
  file: string;
  bytes: number;
  size: number;
  applied: number;
  stale: number;
  rejected: number;
}

export interface ImportSummary extends ImportProgress {
  lines: number;
  memberships: number;
  ms: number;
  resumedFrom: number;
}

/** A file's summary before any of it is read; `from` is where reading starts (a resume offset). */
export function newSummary(file: string, size: number, from = 0): ImportSummary {
  return {
    file,
    bytes: from,
    size,
    applied: 0,
    stale: 0,
    rejected: 0,
    lines: 0,
    memberships: 0,
    ms: 0,
    resumedFrom: from,
  };
}

export async function importFile(
  store: Store,
  writer: Writer,
  path: string,
  opts: ImportOptions,
): Promise<ImportSummary> {
  const t0 = performance.now();
  const { size, mtimeMs } = await stat(path);
  const name = basename(path);
  const prev = store.meta.get(opts.checkpointKey) as FileCheckpoint | undefined;
  const resume = prev && prev.file === name && prev.size === size && prev.mtimeMs === mtimeMs ? prev : undefined;
  const summary = newSummary(name, size, resume?.offset ?? 0);
  if (resume?.done) {
    summary.ms = performance.now() - t0;
    return summary;
  }

  let batch: Change[] = [];
  const rejects = new RejectLog(opts.rejectsPath);
  let rejectedSinceCommit = 0;
  let lastOffset = resume?.offset ?? 0;
  let lastLine = resume?.line ?? 0;
  let now = nowSeconds();
  if (opts.rejectsPath) await mkdir(dirname(opts.rejectsPath), { recursive: true });

  const commit = async (done: boolean) => {
    const cp: FileCheckpoint = { file: name, size, mtimeMs, offset: lastOffset, line: lastLine, done };
    const res = writer.apply(batch, now, { key: opts.checkpointKey, value: cp });
    summary.applied += res.applied;
    summary.stale += res.stale;
    summary.memberships += res.memberships;
    summary.bytes = lastOffset;
    batch = [];
    // Rejects are written after the commit that passed them: a crash in
    // between loses rejects lines, never data (the data is already right).
    rejectedSinceCommit = 0;
    await (done ? rejects.finish() : rejects.flush());
    now = nowSeconds();
    opts.onProgress?.(summary);
  };

  const from = { line: lastLine, offset: lastOffset };
  for await (const b of readFeedFile(path, from, opts, () => now)) {
    for (const r of b.records) batch.push(r.change);
    for (const r of b.rejects) rejects.add(r);
    rejectedSinceCommit += b.rejects.length;
    summary.rejected += b.rejects.length;
    lastOffset = b.offset;
    lastLine = b.line;
    if (batch.length + rejectedSinceCommit >= opts.batchSize) await commit(false);
    opts.signal?.throwIfAborted();
  }
  summary.lines = lastLine - from.line;
  await commit(true);
  summary.ms = performance.now() - t0;
  return summary;
}

/**
 * A feed file's records (NDJSON, CSV or msgpack, gzipped or not; by its name)
 * from a position. A gzip that breaks off or is corrupt half-way keeps
 * everything before the break and rejects the rest with the reason (a retry
 * would only fail the same way); so does one that expands more than
 * `maxGzipRatio` times its compressed size (a decompression bomb).
 */
export function readFeedFile(
  path: string,
  from: { offset: number; line: number },
  opts: { maxUidBytes: RecordLimits; maxLineBytes: number; maxGzipRatio?: number },
  now: () => number,
): AsyncGenerator<FeedBatch> {
  return readFeed(feedFormatOf(basename(path)), fileChunks(path, from.offset, opts.maxGzipRatio), {
    limits: opts.maxUidBytes,
    maxRecordBytes: opts.maxLineBytes,
    now,
    from,
  });
}
