// The inbox directory source (the embedded default). Upstream jobs write a
// file under a temporary name (`.tmp`/`.part` suffix or a leading dot) and
// rename it into place when complete; only complete names are taken, in name
// order. Each file is imported with its own checkpoint, then moved to `done/`;
// bad records go to `rejects/<file>.rejects.ndjson`.
import type { RecordLimits } from './records.js';
import { appendFile, mkdir, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { importFile, type ImportSummary, type ImportProgress, type FileCheckpoint } from './file-import.js';
import type { Writer } from './writer.js';
import { isSnapshotName, SnapshotError, type SnapshotLoader } from './snapshot.js';
import { StoreFullError } from '../store/write-failure.js';

export const FEED_EXTENSIONS = ['.ndjson', '.jsonl', '.csv', '.msgpack', '.ndjson.gz', '.jsonl.gz', '.csv.gz', '.msgpack.gz'];
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
}

export function isCompleteFeedName(name: string): boolean {
  if (name.startsWith('.')) return false;
  if (name.endsWith('.tmp') || name.endsWith('.part')) return false;
  return FEED_EXTENSIONS.some((ext) => name.endsWith(ext));
}

export class Inbox {
  private scanning: Promise<number> | null = null;

  constructor(private readonly store: Store, private readonly writer: Writer, private readonly opts: InboxOptions) {}

  async init(): Promise<void> {
    await mkdir(join(this.opts.dir, 'done'), { recursive: true });
    await mkdir(join(this.opts.dir, 'rejects'), { recursive: true });
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
    const names = entries.filter((e) => e.isFile() && isCompleteFeedName(e.name)).map((e) => e.name).sort();
    // A file interrupted by a crash is finished first, whatever its name.
    const cp = this.store.meta.get(INBOX_CHECKPOINT) as FileCheckpoint | undefined;
    if (cp && names.includes(cp.file)) names.sort((a, b) => (a === cp.file ? -1 : b === cp.file ? 1 : 0));
    let files = 0;
    for (const name of names) {
      if (this.opts.signal?.aborted) break;
      const path = join(dir, name);
      let summary: ImportSummary;
      const rejectsPath = join(dir, 'rejects', `${name}.rejects.ndjson`);
      try {
        const opts = {
          checkpointKey: INBOX_CHECKPOINT,
          batchSize: this.opts.batchSize,
          maxUidBytes: this.opts.maxUidBytes,
          maxLineBytes: this.opts.maxLineBytes,
          rejectsPath,
          signal: this.opts.signal,
          onProgress: (p: ImportProgress) => log.debug({ file: name, offset: p.bytes, size: p.size, applied: p.applied, rejected: p.rejected }, 'inbox batch committed'),
        };
        const snapshots = this.opts.snapshots;
        summary = snapshots && isSnapshotName(name) ? await snapshots.load(path, opts) : await importFile(this.store, this.writer, path, opts);
      } catch (err) {
        if (this.opts.signal?.aborted) {
          log.info({ file: name }, 'inbox import paused for shutdown; resumes from its checkpoint');
          return files;
        }
        if (err instanceof SnapshotError) {
          // Refused as a whole (empty, or older than the data set): retrying cannot help.
          log.error({ file: name, reason: err.message }, 'inbox snapshot refused; moved to done/ with its reason in rejects/');
          await appendFile(rejectsPath, JSON.stringify({ line: 0, reason: err.message }) + '\n');
          await rename(path, await freeName(join(dir, 'done'), name));
          this.store.meta.removeSync(INBOX_CHECKPOINT);
          continue;
        }
        if (err instanceof StoreFullError) {
          // Logged once by the writer's stall hook; the next scan retries from the checkpoint.
          log.debug({ file: name, reason: err.reason }, 'inbox file waits for store space');
          return files;
        }
        // The file stays and the scan stops here: the shared checkpoint still
        // points into it, and the next scan resumes it before anything else.
        log.error({ err, file: name }, 'inbox file failed; will retry');
        return files;
      }
      await rename(path, await freeName(join(dir, 'done'), name));
      this.store.meta.removeSync(INBOX_CHECKPOINT);
      files++;
      log.info(
        {
          file: name, applied: summary.applied, stale: summary.stale, rejected: summary.rejected,
          memberships: summary.memberships, ms: Math.round(summary.ms), resumedFrom: summary.resumedFrom,
        },
        'inbox file imported',
      );
      this.opts.onFile?.(summary);
    }
    return files;
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
