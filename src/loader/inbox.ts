// The inbox directory source (the embedded default). Upstream jobs write a
// file under a temporary name (`.tmp`/`.part` suffix or a leading dot) and
// rename it into place when complete; only complete names are taken, in name
// order. Each file is imported with its own checkpoint, then moved to `done/`;
// bad records go to `rejects/<file>.rejects.ndjson`.
//
// A file that keeps failing must not hold up the files after it forever: each
// attempt is recorded in meta before it starts (so an attempt the process did
// not survive — out of memory, killed — counts too), and after
// `maxAttempts` attempts that made no progress (the checkpoint did not move)
// the file is moved to `failed/`, with its reason logged and in `rejects/`.
import type { RecordLimits } from './records.js';
import { appendFile, mkdir, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { importFile, type ImportSummary, type ImportProgress, type FileCheckpoint } from './file-import.js';
import type { Writer } from './writer.js';
import { isSnapshotName, SnapshotError, type SnapshotLoader } from './snapshot.js';
import { StoreFullError } from '../store/write-failure.js';

export const FEED_EXTENSIONS = [
  '.ndjson',
  '.jsonl',
  '.csv',
  '.msgpack',
  '.ndjson.gz',
  '.jsonl.gz',
  '.csv.gz',
  '.msgpack.gz',
];
export const INBOX_CHECKPOINT = 'ckpt:inbox';

export interface InboxOptions {
  dir: string;
  batchSize: number;
  maxUidBytes: RecordLimits;
  maxLineBytes: number;
  log: Logger;
  signal?: AbortSignal;
  onFile?: (s: ImportSummary) => void;
  /** Loads `*.snapshot.*` files (a generation swap); without it they are read as deltas. */
  snapshots?: SnapshotLoader;
  /** How many times its compressed size a gzip file may expand to. */
  maxGzipRatio?: number;
  /** Attempts without progress before a file is moved to `failed/` (default 5). */
  maxAttempts?: number;
  onQuarantine?: (file: string, reason: string) => void;
}

/** meta: the attempts at the inbox file in progress (one file at a time is imported). */
export const INBOX_ATTEMPT = 'inbox:attempt';

interface Attempt {
  file: string;
  size: number;
  mtimeMs: number;
  /** The checkpoint offset the attempts started from: a later attempt starting further on made progress. */
  offset: number;
  /** Attempts made from that offset. */
  n: number;
  /** Why the last one failed; none when the process did not survive it. */
  reason?: string;
}

export function isCompleteFeedName(name: string): boolean {
  if (name.startsWith('.')) return false;
  if (name.endsWith('.tmp') || name.endsWith('.part')) return false;
  return FEED_EXTENSIONS.some((ext) => name.endsWith(ext));
}

export class Inbox {
  private scanning: Promise<number> | null = null;

  constructor(
    private readonly store: Store,
    private readonly writer: Writer,
    private readonly opts: InboxOptions,
  ) {}

  async init(): Promise<void> {
    await mkdir(join(this.opts.dir, 'done'), { recursive: true });
    await mkdir(join(this.opts.dir, 'rejects'), { recursive: true });
    await mkdir(join(this.opts.dir, 'failed'), { recursive: true });
  }

  /** Imports every complete file now in the inbox. Concurrent calls share one scan. */
  scan(): Promise<number> {
    this.scanning ??= this.scanOnce().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  private async scanOnce(): Promise<number> {
    const { dir, log } = this.opts;
    const entries = await readdir(dir, { withFileTypes: true });
    const names = entries
      .filter((e) => e.isFile() && isCompleteFeedName(e.name))
      .map((e) => e.name)
      .sort();
    // A file interrupted by a crash is finished first, whatever its name.
    const cp = this.store.meta.get(INBOX_CHECKPOINT) as FileCheckpoint | undefined;
    if (cp && names.includes(cp.file)) names.sort((a, b) => (a === cp.file ? -1 : b === cp.file ? 1 : 0));
    let files = 0;
    for (const name of names) {
      if (this.opts.signal?.aborted) break;
      const path = join(dir, name);
      let summary: ImportSummary;
      const rejectsPath = join(dir, 'rejects', `${name}.rejects.ndjson`);
      let attempt: { prev: Attempt | undefined; cur: Attempt };
      try {
        attempt = await this.beginAttempt(name, path);
      } catch (err) {
        log.warn({ file: name, err: (err as Error).message }, 'inbox file vanished or unreadable; skipped this scan');
        continue;
      }
      if (attempt.cur.n > (this.opts.maxAttempts ?? 5)) {
        await this.quarantine(
          name,
          attempt.prev?.reason ?? 'the process stopped during each attempt (out of memory or killed)',
          attempt.prev?.n ?? 0,
        );
        continue;
      }
      try {
        const opts = {
          maxGzipRatio: this.opts.maxGzipRatio,
          checkpointKey: INBOX_CHECKPOINT,
          batchSize: this.opts.batchSize,
          maxUidBytes: this.opts.maxUidBytes,
          maxLineBytes: this.opts.maxLineBytes,
          rejectsPath,
          signal: this.opts.signal,
          onProgress: (p: ImportProgress) =>
            log.debug(
              { file: name, offset: p.bytes, size: p.size, applied: p.applied, rejected: p.rejected },
              'inbox batch committed',
            ),
        };
        const snapshots = this.opts.snapshots;
        summary =
          snapshots && isSnapshotName(name)
            ? await snapshots.load(path, opts)
            : await importFile(this.store, this.writer, path, opts);
      } catch (err) {
        if (this.opts.signal?.aborted) {
          this.saveAttempt(attempt.prev); // not the file's fault
          log.info({ file: name }, 'inbox import paused for shutdown; resumes from its checkpoint');
          return files;
        }
        if (err instanceof SnapshotError) {
          // Refused as a whole (empty, or older than the data set): retrying cannot help.
          log.error(
            { file: name, reason: err.message },
            'inbox snapshot refused; moved to done/ with its reason in rejects/',
          );
          await appendFile(rejectsPath, JSON.stringify({ line: 0, reason: err.message }) + '\n');
          await rename(path, await freeName(join(dir, 'done'), name));
          this.store.meta.removeSync(INBOX_CHECKPOINT);
          this.saveAttempt(undefined);
          continue;
        }
        if (err instanceof StoreFullError) {
          this.saveAttempt(attempt.prev); // not the file's fault
          // Logged once by the writer's stall hook; the next scan retries from the checkpoint.
          log.debug({ file: name, reason: err.reason }, 'inbox file waits for store space');
          return files;
        }
        const reason = `${(err as Error).name}: ${(err as Error).message}`.slice(0, 500);
        if (
          attempt.cur.n >= (this.opts.maxAttempts ?? 5) &&
          attempt.cur.offset === this.checkpointOffset(name, attempt.cur)
        ) {
          await this.quarantine(name, reason, attempt.cur.n);
          continue;
        }
        this.saveAttempt({ ...attempt.cur, reason });
        // The file stays and the scan stops here: the shared checkpoint still
        // points into it, and the next scan resumes it before anything else.
        log.error({ err, file: name, attempt: attempt.cur.n }, 'inbox file failed; will retry');
        return files;
      }
      await rename(path, await freeName(join(dir, 'done'), name));
      this.store.meta.removeSync(INBOX_CHECKPOINT);
      this.saveAttempt(undefined);
      files++;
      log.info(
        {
          file: name,
          applied: summary.applied,
          stale: summary.stale,
          rejected: summary.rejected,
          memberships: summary.memberships,
          ms: Math.round(summary.ms),
          resumedFrom: summary.resumedFrom,
        },
        'inbox file imported',
      );
      this.opts.onFile?.(summary);
    }
    return files;
  }

  /** Records the attempt about to start (persisted first, so a crash during it counts). */
  private async beginAttempt(name: string, path: string): Promise<{ prev: Attempt | undefined; cur: Attempt }> {
    const { size, mtimeMs } = await stat(path);
    const offset = this.checkpointOffset(name, { size, mtimeMs });
    const stored = this.store.meta.get(INBOX_ATTEMPT) as Attempt | undefined;
    const prev =
      stored && stored.file === name && stored.size === size && stored.mtimeMs === mtimeMs && stored.offset === offset
        ? stored
        : undefined;
    const cur: Attempt = { file: name, size, mtimeMs, offset, n: (prev?.n ?? 0) + 1 };
    if (prev?.reason !== undefined) cur.reason = prev.reason;
    this.saveAttempt(cur);
    return { prev, cur };
  }

  /** Where the shared checkpoint stands in `name` now (0 when it is elsewhere). */
  private checkpointOffset(name: string, a: { size: number; mtimeMs: number }): number {
    const cp = this.store.meta.get(INBOX_CHECKPOINT) as FileCheckpoint | undefined;
    return cp && cp.file === name && cp.size === a.size && cp.mtimeMs === a.mtimeMs ? cp.offset : 0;
  }

  private saveAttempt(a: Attempt | undefined): void {
    // While the store is full nothing is the file's fault, and a small commit
    // here must not pass for the store having space again.
    if (this.writer.stalled !== null) return;
    try {
      this.writer.commit(() =>
        a ? this.store.meta.putSync(INBOX_ATTEMPT, a) : this.store.meta.removeSync(INBOX_ATTEMPT),
      );
    } catch (err) {
      // A full store: attempts go uncounted meanwhile (the import itself waits for space).
      if (!(err instanceof StoreFullError)) throw err;
    }
  }

  /** Moves a file that keeps failing to `failed/`, so the files after it go on. */
  private async quarantine(name: string, reason: string, attempts: number): Promise<void> {
    const { dir, log } = this.opts;
    const to = await freeName(join(dir, 'failed'), name);
    await appendFile(
      join(dir, 'rejects', `${name}.rejects.ndjson`),
      JSON.stringify({ line: 0, reason: `moved to failed/ after ${attempts} attempts: ${reason}` }) + '\n',
    );
    await rename(join(dir, name), to);
    const cp = this.store.meta.get(INBOX_CHECKPOINT) as FileCheckpoint | undefined;
    this.writer.commit(() => {
      if (cp?.file === name) this.store.meta.removeSync(INBOX_CHECKPOINT);
      this.store.meta.removeSync(INBOX_ATTEMPT);
    });
    log.error(
      { file: name, attempts, reason, to },
      'inbox file quarantined: moved to failed/ after failing repeatedly',
    );
    this.opts.onQuarantine?.(name, reason);
  }
}

/** `done/name`, or `done/name.<n>` when a file of that name was done before. */
async function freeName(dir: string, name: string): Promise<string> {
  for (let n = 0; ; n++) {
    const candidate = join(dir, n === 0 ? name : `${name}.${n}`);
    try {
      await stat(candidate);
    } catch {
      return candidate;
    }
  }
}
