// Imports one NDJSON feed file through the writer, in batches, each batch's
// transaction carrying the checkpoint (file, byte offset, line) it reaches.
// After a crash the same call resumes from the checkpoint: nothing lost,
// nothing applied twice. Bad lines are rejected with line number and reason.
import { stat, appendFile, mkdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Store } from '../store/env.js';
import { nowSeconds } from '../lookup/segments.js';
import { readLines } from './lines.js';
import { parseLineBytes, parseCsvLine, isCsvHeader, toChange, RecordError, type Change, type RecordLimits } from './records.js';
import { readMsgpackRecords } from './msgpack-records.js';
import type { Writer } from './writer.js';

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

export interface Reject {
  line: number;
  reason: string;
  record?: string;
}

const MAX_REJECT_SNIPPET = 200;

export async function importFile(store: Store, writer: Writer, path: string, opts: ImportOptions): Promise<ImportSummary> {
  const t0 = performance.now();
  const { size, mtimeMs } = await stat(path);
  const name = basename(path);
  const prev = store.meta.get(opts.checkpointKey) as FileCheckpoint | undefined;
  const resume = prev && prev.file === name && prev.size === size && prev.mtimeMs === mtimeMs ? prev : undefined;
  const summary: ImportSummary = {
    file: name, bytes: resume?.offset ?? 0, size, applied: 0, stale: 0, rejected: 0,
    lines: 0, memberships: 0, ms: 0, resumedFrom: resume?.offset ?? 0,
  };
  if (resume?.done) {
    summary.ms = performance.now() - t0;
    return summary;
  }

  let batch: Change[] = [];
  let rejects: Reject[] = [];
  let lastOffset = resume?.offset ?? 0;
  let lastLine = resume?.line ?? 0;
  let now = nowSeconds();
  if (opts.rejectsPath) await mkdir(dirname(opts.rejectsPath), { recursive: true });

  const reject = (line: number, reason: string, buf?: Buffer, start?: number, end?: number) => {
    const r: Reject = { line, reason };
    if (buf && start !== undefined && end !== undefined) {
      r.record = buf.toString('utf8', start, Math.min(end, start + MAX_REJECT_SNIPPET));
    }
    rejects.push(r);
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
    if (rejects.length && opts.rejectsPath) {
      await appendFile(opts.rejectsPath, rejects.map((r) => JSON.stringify(r)).join('\n') + '\n');
    }
    rejects = [];
    now = nowSeconds();
    opts.onProgress?.(summary);
  };

  let pending = false;
  const csv = /\.csv(\.gz)?$/.test(name);
  const chunkDone = async () => {
    if (pending) {
      pending = false;
      await commit(false);
    }
    opts.signal?.throwIfAborted();
  };
  let res: { bytes: number; lines: number };
  try {
    if (/\.msgpack(\.gz)?$/.test(name)) {
      const r = await readMsgpackRecords(path, resume?.offset ?? 0, resume?.line ?? 0, {
        record(value, no, next) {
          lastOffset = next;
          lastLine = no;
          try {
            batch.push(toChange(value, now, opts.maxUidBytes));
          } catch (err) {
            if (!(err instanceof RecordError)) throw err;
            reject(no, err.message);
          }
          if (batch.length + rejects.length >= opts.batchSize) pending = true;
        },
        broken: (no, reason) => reject(no, reason),
        chunkDone,
      });
      res = { bytes: r.bytes, lines: r.records };
    } else res = await readLines(path, resume?.offset ?? 0, resume?.line ?? 0, opts.maxLineBytes, {
      line(buf, start, end, lineNo, next) {
        lastOffset = next;
        lastLine = lineNo;
        if (end === start) return; // blank lines are allowed
        const bytes = buf.subarray(start, end);
        if (csv && lineNo === 1 && isCsvHeader(bytes)) return;
        const parsed = csv ? parseCsvLine(bytes, now, opts.maxUidBytes) : parseLineBytes(bytes, now, opts.maxUidBytes);
        if (typeof parsed === 'string') reject(lineNo, parsed, parsed === 'invalid UTF-8' ? undefined : buf, start, end);
        else batch.push(parsed);
        if (batch.length + rejects.length >= opts.batchSize) pending = true;
      },
      tooLong(lineNo, next) {
        lastOffset = next;
        lastLine = lineNo;
        reject(lineNo, `line longer than ${opts.maxLineBytes} bytes`);
      },
      chunkDone,
    });
  } catch (err) {
    // A gzip that breaks off or is corrupt half-way: keep everything before
    // the break, reject the rest with the reason, and finish the file (a
    // retry would only fail the same way).
    if (!String((err as NodeJS.ErrnoException).code).startsWith('Z_')) throw err;
    reject(lastLine + 1, `corrupt or truncated gzip after line ${lastLine}: ${(err as Error).message}; the rest of the file is not applied`);
    res = { bytes: lastOffset, lines: lastLine };
  }
  summary.lines = res.lines;
  await commit(true);
  summary.ms = performance.now() - t0;
  return summary;
}
