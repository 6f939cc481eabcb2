// Imports one NDJSON feed file through the writer, in batches, each batch's
// transaction carrying the checkpoint (file, byte offset, line) it reaches.
// After a crash the same call resumes from the checkpoint: nothing lost,
// nothing applied twice. Bad lines are rejected with line number and reason.
import { stat, mkdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Store } from '../store/env.js';
import { nowSeconds } from '../lookup/segments.js';
import { readLines, GzipRatioError } from './lines.js';
import {
  parseLineBytes,
  parseCsvLine,
  isCsvHeader,
  toChange,
  rejectReason,
  type Change,
  type RecordLimits,
} from './records.js';
import { readMsgpackRecords } from './msgpack-records.js';
import type { Writer } from './writer.js';
import { RejectLog, type Reject } from './reject-log.js';

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
  /** How many times its compressed size a gzip file may expand to (default DEFAULT_MAX_GZIP_RATIO). */
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

export type { Reject } from './reject-log.js';

const MAX_REJECT_SNIPPET = 200;

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
  const summary: ImportSummary = {
    file: name,
    bytes: resume?.offset ?? 0,
    size,
    applied: 0,
    stale: 0,
    rejected: 0,
    lines: 0,
    memberships: 0,
    ms: 0,
    resumedFrom: resume?.offset ?? 0,
  };
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

  const reject = (line: number, reason: string, record?: string) => {
    const r: Reject = { line, reason };
    if (record !== undefined) r.record = record;
    rejects.add(r);
    rejectedSinceCommit++;
    summary.rejected++;
  };

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

  let pending = false;
  const res = await readFeed(path, { offset: resume?.offset ?? 0, line: resume?.line ?? 0 }, opts, () => now, {
    change(ch, lineNo, next) {
      lastOffset = next;
      lastLine = lineNo;
      batch.push(ch);
      if (batch.length + rejectedSinceCommit >= opts.batchSize) pending = true;
    },
    reject(lineNo, next, reason, snippet) {
      lastOffset = next;
      lastLine = lineNo;
      reject(lineNo, reason, snippet);
      if (batch.length + rejectedSinceCommit >= opts.batchSize) pending = true;
    },
    skip(lineNo, next) {
      lastOffset = next;
      lastLine = lineNo;
    },
    async chunkDone() {
      if (pending) {
        pending = false;
        await commit(false);
      }
      opts.signal?.throwIfAborted();
    },
  });
  summary.lines = res.lines;
  await commit(true);
  summary.ms = performance.now() - t0;
  return summary;
}

/** What readFeed reports, record by record; `next` is the byte offset just past the record (a checkpoint). */
export interface FeedSink {
  change(ch: Change, lineNo: number, next: number): void;
  reject(lineNo: number, next: number, reason: string, record?: string): void;
  /** A line that holds no record (blank, CSV header). */
  skip(lineNo: number, next: number): void;
  /** The rest of the file cannot be read (corrupt or truncated gzip or msgpack); default: reject(). */
  broken?(lineNo: number, next: number, reason: string): void;
  /** After each read chunk: the place to commit and to stop. */
  chunkDone(): Promise<void>;
}

/**
 * Reads a feed file (NDJSON, CSV or msgpack, gzipped or not; by its name) from
 * a position, validating each record. A gzip that breaks off or is corrupt
 * half-way keeps everything before the break and rejects the rest with the
 * reason (a retry would only fail the same way); so does one that expands
 * more than `maxGzipRatio` times its compressed size (a decompression bomb).
 */
export async function readFeed(
  path: string,
  from: { offset: number; line: number },
  opts: { maxUidBytes: RecordLimits; maxLineBytes: number; maxGzipRatio?: number },
  now: () => number,
  sink: FeedSink,
): Promise<{ bytes: number; lines: number }> {
  const name = basename(path);
  const csv = /\.csv(\.gz)?$/.test(name);
  let lastOffset = from.offset;
  let lastLine = from.line;
  try {
    if (/\.msgpack(\.gz)?$/.test(name)) {
      const r = await readMsgpackRecords(
        path,
        from.offset,
        from.line,
        opts.maxLineBytes,
        {
          record(value, no, next) {
            lastOffset = next;
            lastLine = no;
            let ch: Change;
            try {
              ch = toChange(value, now(), opts.maxUidBytes);
            } catch (err) {
              sink.reject(no, next, rejectReason(err));
              return;
            }
            sink.change(ch, no, next);
          },
          undecodable(no, next, reason) {
            lastOffset = next;
            lastLine = no;
            sink.reject(no, next, reason);
          },
          broken: (no, reason) => (sink.broken ?? sink.reject).call(sink, no, lastOffset, reason),
          chunkDone: () => sink.chunkDone(),
        },
        opts.maxGzipRatio,
      );
      return { bytes: r.bytes, lines: r.records };
    }
    return await readLines(
      path,
      from.offset,
      from.line,
      opts.maxLineBytes,
      {
        line(buf, start, end, lineNo, next) {
          lastOffset = next;
          lastLine = lineNo;
          if (end === start) return sink.skip(lineNo, next); // blank lines are allowed
          const bytes = buf.subarray(start, end);
          if (csv && lineNo === 1 && isCsvHeader(bytes)) return sink.skip(lineNo, next);
          const parsed = csv
            ? parseCsvLine(bytes, now(), opts.maxUidBytes)
            : parseLineBytes(bytes, now(), opts.maxUidBytes);
          if (typeof parsed !== 'string') return sink.change(parsed, lineNo, next);
          const record =
            parsed === 'invalid UTF-8'
              ? undefined
              : buf.toString('utf8', start, Math.min(end, start + MAX_REJECT_SNIPPET));
          sink.reject(lineNo, next, parsed, record);
        },
        tooLong(lineNo, next) {
          lastOffset = next;
          lastLine = lineNo;
          sink.reject(lineNo, next, `line longer than ${opts.maxLineBytes} bytes`);
        },
        chunkDone: () => sink.chunkDone(),
      },
      opts.maxGzipRatio,
    );
  } catch (err) {
    if (err instanceof GzipRatioError) {
      (sink.broken ?? sink.reject).call(
        sink,
        lastLine + 1,
        lastOffset,
        `${err.message}, after line ${lastLine}; the rest of the file is not applied`,
      );
      return { bytes: lastOffset, lines: lastLine };
    }
    if (!String((err as NodeJS.ErrnoException).code).startsWith('Z_')) throw err;
    (sink.broken ?? sink.reject).call(
      sink,
      lastLine + 1,
      lastOffset,
      `corrupt or truncated gzip after line ${lastLine}: ${(err as Error).message}; the rest of the file is not applied`,
    );
    return { bytes: lastOffset, lines: lastLine };
  }
}
