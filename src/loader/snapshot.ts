// Snapshot files: the whole data set, replacing what the store holds, with
// readers seeing the old set or the new one, never a mix.
//
// A generation swap. `members` has two generations (store/env.ts); lookups
// read the active one. A snapshot is
//   1. read and validated into memory, then sorted by key;
//   2. merged with the active generation (key order, both sides) and written
//      into the empty inactive one with MDB_APPEND, in large transactions
//      that yield between them, so pushes and the stream keep committing to
//      the active generation meanwhile (each such change is logged, with the
//      user's value before the first of them);
//   3. made active in one transaction: the logged users re-merged from their
//      value before the load and their changes replayed, segment counts
//      replaced, meta `generation`, `snapshotTs` and the file's checkpoint
//      (done) written together; then the shared generation cell flips.
//   4. The old generation is emptied once no reader can still be using it
//      (a batch lookup pins one generation for its one synchronous turn).
// A crash before 3 leaves the old generation active and untouched: the
// restart empties the inactive one and loads the snapshot again from the
// start. A crash after 3 finds the file's checkpoint done.
//
// Merge rules (snapshot ts T = the newest record ts in the file, at most the
// load time; records without a ts are stamped with the load time):
//   - user in both: the newer wins whole; on a tie the snapshot. A deletion
//     (tombstone) newer than the snapshot's record keeps the user deleted.
//     (Changes committed during the load are replayed on the result exactly;
//     the stored value of a user changed after T before the load began
//     already holds those changes on its older base and is kept as it is.)
//   - user only in the snapshot: the snapshot's set (a `delete` record
//     becomes a tombstone).
//   - user only in the store: kept when changed at or after T (a delta newer
//     than the snapshot), dropped otherwise.
//   - afterwards any change older than T is stale (Writer.floorTs): the
//     snapshot already reflects it, so a late delta cannot resurrect a user
//     the snapshot left out. A snapshot older than the current T is refused.
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { stat, writeFile, mkdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import type { Database } from 'lmdb';
import { GENERATION_KEY, type Store } from '../store/env.js';
import {
  decodeMembers,
  encodeMembers,
  isValidMembersValue,
  HEADER_BYTES,
  PAIR_BYTES,
  ORDINAL_BYTES,
  clearOrdinal,
  type Membership,
} from '../store/members.js';
import { MemberWatch } from '../store/member-watch.js';
import { nowSeconds } from '../lookup/segments.js';
import type { Writer } from './writer.js';
import type { ChangeLog } from './transactions.js';
import { SNAPSHOT_TS_KEY } from './membership-changes.js';
import { nextMembers } from './member-set.js';
import {
  newSummary,
  readFeedFile,
  type FileCheckpoint,
  type ImportOptions,
  type ImportSummary,
} from './file-import.js';
import { RejectLog } from './reject-log.js';
import type { Change } from './records.js';
import { SnapshotRecords, SortedRecords, FAST_PAIRS } from './snapshot-records.js';
import { StoreFullError, freeBytes } from '../store/write-failure.js';
import { timeline } from '../metrics/timeline.js';

export const SNAPSHOT_NAME = /\.snapshot\.(ndjson|jsonl|csv|msgpack)(\.gz)?$/;

export function isSnapshotName(name: string): boolean {
  return SNAPSHOT_NAME.test(name);
}

/** Bytes read between the heap check, the rejects flush and a progress report. */
const REPORT_BYTES = 1 << 20;
/** Users per merge transaction: large (append is cheap), small enough that a push waits < ~100 ms. */
const MERGE_CHUNK = 100_000;
/**
 * How long the old generation is kept after a flip. A reader holds a
 * generation for one synchronous turn (a batch of at most maxBatchKeys gets);
 * a second is far beyond that.
 */
export const RETIRE_AFTER_MS = 1000;

export class SnapshotError extends Error {}

/**
 * A snapshot's records are held until the merge (about 120 bytes a user, the
 * uid strings on the heap), and sorting and merging them need more. Past
 * RECORDS_SHARE of the heap limit (the records' own estimate, so garbage a
 * collection has not reclaimed yet cannot refuse a snapshot that fits), or
 * with the heap itself past HEAP_USED_SHARE (out of memory is near whatever
 * holds it), the snapshot is refused whole instead of taking the process down
 * (and, resumed from its checkpoint, again on every restart).
 */
const RECORDS_SHARE = 0.4;
const HEAP_USED_SHARE = 0.8;

function checkHeap(name: string, recordBytes: number): void {
  const h = getHeapStatistics();
  if (recordBytes > h.heap_size_limit * RECORDS_SHARE || h.used_heap_size > h.heap_size_limit * HEAP_USED_SHARE) {
    const mib = (n: number) => Math.round(n / 2 ** 20);
    throw new SnapshotError(
      `${name}: too large to hold in memory (its records ≈ ${mib(recordBytes)} MiB, heap at ${mib(h.used_heap_size)} of ${mib(h.heap_size_limit)} MiB); ` +
        'split it into deltas, or raise the heap limit (NODE_OPTIONS=--max-old-space-size=…); the data set is left as it was',
    );
  }
}

/** Changes committed to the active generation while a snapshot loads. */
class LoadLog implements ChangeLog {
  /** Each user's stored value before its first logged change (decoded now: the buffer is LMDB's, valid only during the call). */
  readonly before = new Map<string, Side | undefined>();
  readonly changes: Change[] = [];
  /** Users written otherwise (not by a Change) during the load: copied from the active generation at the flip. */
  readonly touched = new Set<string>();
  private mark = 0;
  private readonly added: string[] = [];
  private readonly addedTouched: string[] = [];

  begin(): void {
    this.mark = this.changes.length;
    this.added.length = 0;
    this.addedTouched.length = 0;
  }

  touch(uid: string): void {
    if (!this.touched.has(uid)) {
      this.touched.add(uid);
      this.addedTouched.push(uid);
    }
  }

  record(ch: Change, before: Buffer | undefined): void {
    if (!this.before.has(ch.uid)) {
      this.before.set(ch.uid, side(before));
      this.added.push(ch.uid);
    }
    this.changes.push(ch);
  }

  abort(): void {
    this.changes.length = this.mark;
    for (const uid of this.added) this.before.delete(uid);
    for (const uid of this.addedTouched) this.touched.delete(uid);
    this.added.length = 0;
    this.addedTouched.length = 0;
  }
}

/** The merge rule: what the new generation holds for a user (undefined: nothing). */
function decide(a: Side | undefined, s: Side | undefined, snapshotTs: number): Side | undefined {
  if (s !== undefined) return a !== undefined && a.updatedAt > s.updatedAt ? a : s;
  return a !== undefined && a.updatedAt >= snapshotTs ? a : undefined;
}

interface Side {
  updatedAt: number;
  members: Membership[];
}

/** Order of keys in the members db: UTF-8 bytes (ordered-binary writes uids, which hold no control characters, as plain UTF-8). */
type Compare = (a: string, b: string) => number;
const utf16Order: Compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const utf8Order: Compare = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
/** UTF-16 order equals UTF-8 byte order unless a string holds a surrogate or a char ≥ U+E000. */
const NEEDS_UTF8_ORDER = /[\uD800-\uFFFF]/;

export interface SnapshotOptions {
  /**
   * Further users a snapshot must not bring back whatever it says, beside
   * the writer's suppressed ones (opted out, deleted by a privacy request,
   * always excluded): their records are skipped and what the store holds
   * for them is kept.
   */
  excluded?: (uid: string, nowSec: number) => boolean;
}

export class SnapshotLoader {
  private loading = false;
  private retireTimer: NodeJS.Timeout | null = null;
  private flippedAt = 0;

  constructor(
    private readonly store: Store,
    private readonly writer: Writer,
    private readonly opts: SnapshotOptions = {},
  ) {}

  /** At start-up (nothing reads the inactive generation yet): leftovers of an interrupted snapshot go. */
  clearInactive(): void {
    const inactive = this.store.generations[this.store.generation() ^ 1]!;
    if ((inactive.getStats() as { entryCount: number }).entryCount > 0) inactive.clearSync();
  }

  stop(): void {
    if (this.retireTimer) clearTimeout(this.retireTimer);
    this.retireTimer = null;
  }

  async load(path: string, opts: ImportOptions): Promise<ImportSummary> {
    if (this.loading) throw new Error('a snapshot is already loading'); // not a SnapshotError: the file is fine
    this.loading = true;
    try {
      return await this.loadOnce(path, opts);
    } finally {
      this.loading = false;
      this.writer.dirty = null;
    }
  }

  private async loadOnce(path: string, opts: ImportOptions): Promise<ImportSummary> {
    const t0 = performance.now();
    const { size, mtimeMs } = await stat(path);
    const name = basename(path);
    const summary = newSummary(name, size);
    if (this.isDone(opts.checkpointKey, name, size, mtimeMs)) {
      summary.bytes = size;
      return summary;
    }
    const { target, cp, log } = await this.begin(opts.checkpointKey, name, size, mtimeMs);
    const snap = await this.readRecords(path, name, opts, summary);
    const counts = await this.merge(this.store.generations[target]!, snap, size, opts, summary);
    this.flip(target, snap, counts, log, opts.checkpointKey, cp);
    summary.bytes = size;
    summary.ms = performance.now() - t0;
    return summary;
  }

  /** This very file (same name, size and mtime) was loaded before. */
  private isDone(checkpointKey: string, name: string, size: number, mtimeMs: number): boolean {
    const prev = this.store.meta.get(checkpointKey) as FileCheckpoint | undefined;
    return prev !== undefined && prev.file === name && prev.size === size && prev.mtimeMs === mtimeMs && prev.done;
  }

  /**
   * 0. Readies the inactive generation (`target`) for the load: emptied once
   * the readers of the last flip are gone, the file's checkpoint written (not
   * done), and the writer logging changes to the active generation from now on.
   */
  private async begin(
    checkpointKey: string,
    name: string,
    size: number,
    mtimeMs: number,
  ): Promise<{ target: number; cp: FileCheckpoint; log: LoadLog }> {
    const { store, writer } = this;
    // While the store is full, a snapshot (re-read whole on every retry) waits until there is
    // at least its file's size free; smaller work (a push) is what probes for space meanwhile.
    if (writer.stalled !== null && freeBytes(store.path) < size) {
      throw new StoreFullError(
        writer.stalled,
        new Error(`${freeBytes(store.path)} bytes free, snapshot file is ${size}`),
      );
    }
    // Readers of the generation retired by the last flip must be gone before it is emptied.
    const wait = this.flippedAt + RETIRE_AFTER_MS - Date.now();
    if (wait > 0) await sleep(wait);
    this.stop();
    const target = store.generation() ^ 1;
    // Whatever the inactive generation holds (an interrupted load, the retired set) goes; the snapshot starts over.
    store.generations[target]!.clearSync();
    const cp: FileCheckpoint = { file: name, size, mtimeMs, offset: 0, line: 0, done: false };
    // So a crash now is resumed (restarted) before any other inbox file.
    writer.commit(() => store.meta.putSync(checkpointKey, cp));
    const log = new LoadLog();
    writer.dirty = log;
    return { target, cp, log };
  }

  /** 1. Reads and validates the whole file into memory, in uid order; throws SnapshotError when it is refused whole. */
  private async readRecords(
    path: string,
    name: string,
    opts: ImportOptions,
    summary: ImportSummary,
  ): Promise<ReadSnapshot> {
    const { writer } = this;
    // Rejects are written as found: a restart truncates and rewrites them.
    if (opts.rejectsPath) {
      await mkdir(dirname(opts.rejectsPath), { recursive: true });
      await writeFile(opts.rejectsPath, '');
    }
    const rejects = new RejectLog(opts.rejectsPath);
    const recs = new SnapshotRecords();
    let wide = false;
    let maxTs = 0;
    let now = nowSeconds();
    let broken: string | null = null;
    const read = { bytes: 0, lines: 0 };
    let reportedAt = 0;
    for await (const b of readFeedFile(path, { offset: 0, line: 0 }, opts, () => now)) {
      for (const r of b.records) {
        let ch = r.change;
        if (ch.op === 'match') {
          // Not a membership set: folded as one it would empty the user's.
          rejects.add({
            line: r.line,
            reason: 'a snapshot holds memberships; send "match" records in a delta file or POST /v1/ingest',
          });
          summary.rejected++;
          continue;
        }
        // A device uid merged into another profile: its memberships are the profile's (as in MembershipChanges.apply).
        if (writer.graph.merges !== 0) {
          const to = writer.graph.profileOf(ch.uid);
          if (to !== ch.uid) ch = { ...ch, uid: to };
        }
        recs.push(ch);
        if (ch.ts > maxTs) maxTs = ch.ts;
        if (!wide && NEEDS_UTF8_ORDER.test(ch.uid)) wide = true;
      }
      for (const r of b.rejects) rejects.add(r);
      summary.rejected += b.rejects.length;
      if (b.broken !== undefined) broken = b.broken;
      read.bytes = b.offset;
      read.lines = b.line;
      opts.signal?.throwIfAborted();
      if (b.offset - reportedAt < REPORT_BYTES) continue;
      reportedAt = b.offset;
      checkHeap(name, recs.heapBytes);
      await rejects.flush();
      now = nowSeconds();
      summary.bytes = Math.round(b.offset / 2); // reading is the first half of the work
      opts.onProgress?.(summary);
    }
    await rejects.finish();
    summary.lines = read.lines;
    // Capped at now: a record a few hours ahead (clock skew upstream, allowed up to a day)
    // must not make every change of the next hours stale.
    maxTs = Math.min(maxTs, nowSeconds());
    this.refuseWhole(name, broken, recs.length, maxTs);
    const cmp = wide ? utf8Order : utf16Order;
    return { sorted: new SortedRecords(recs, cmp), cmp, maxTs, now, read };
  }

  /** Throws SnapshotError when the snapshot read is refused whole; the data set is then left as it was. */
  private refuseWhole(name: string, broken: string | null, records: number, maxTs: number): void {
    if (broken !== null) {
      // A snapshot missing its tail would drop every user after the break.
      throw new SnapshotError(
        `${name}: cannot be read to the end (${broken}); a partial snapshot is refused whole (the data set is left as it was)`,
      );
    }
    if (records === 0) {
      // An empty or wholly bad upload must not wipe the data set.
      throw new SnapshotError(
        `${name}: no valid record; a snapshot with no users is refused (the data set is left as it was)`,
      );
    }
    if (maxTs < this.writer.floorTs) {
      throw new SnapshotError(
        `${name}: its newest record (ts ${maxTs}) is older than the snapshot already loaded (ts ${this.writer.floorTs})`,
      );
    }
  }

  /**
   * 2. Merges the snapshot with the active generation into the inactive one
   * (`next`), in key order, appending, in transactions of MERGE_CHUNK users
   * that yield between them. Returns the segment counts of what it wrote.
   */
  private async merge(
    next: Database<Buffer, string>,
    snap: ReadSnapshot,
    size: number,
    opts: ImportOptions,
    summary: ImportSummary,
  ): Promise<Map<number, number>> {
    const { store, writer } = this;
    const { sorted, cmp, maxTs, now } = snap;
    // With room for the ordinal an insights index keeps in each value
    // (store/members.ts withOrdinal), which then writes it in place instead
    // of copying every value to append it.
    const room = MemberWatch.keepsOrdinals(store);
    const scratch = Buffer.allocUnsafe(HEADER_BYTES + PAIR_BYTES * FAST_PAIRS + ORDINAL_BYTES);
    const counts = new Map<number, number>();
    let i = 0;
    while (i < sorted.length) {
      const end = sorted.groupEnd(Math.min(i + MERGE_CHUNK, sorted.length));
      const from = i === 0 ? undefined : sorted.uid(i);
      const to = end >= sorted.length ? undefined : sorted.uid(end);
      writer.commit(() => {
        let j = i;
        const put = (uid: string, v: Side) => {
          next.putSync(uid, encodeMembers(v.updatedAt, v.members), { append: true });
          bump(counts, v.members, +1);
          summary.memberships += v.members.length;
        };
        // A user only the snapshot has (every user, into an empty store): the
        // usual one-record add is encoded straight into a reused buffer.
        const putSnapshotOnly = (at: number): number => {
          const uid = sorted.uid(at);
          const g = at + 1 < end && sorted.uid(at + 1) === uid ? sorted.groupEnd(at + 1) : at + 1;
          if (this.excluded(uid, now)) {
            summary.stale++;
            return g;
          }
          summary.applied++;
          const len = g === at + 1 ? sorted.encodeFresh(at, now, scratch) : -1;
          if (len < 0) {
            const v = fold(sorted.changes(at, g), now);
            if (v.members.length > 0) writer.markKnown(uid);
            put(uid, v);
            return g;
          }
          const withRoom = room && len > HEADER_BYTES ? clearOrdinal(scratch, len) : len;
          next.putSync(uid, scratch.subarray(0, withRoom), { append: true });
          if (len > HEADER_BYTES) writer.markKnown(uid);
          for (let off = HEADER_BYTES; off < len; off += PAIR_BYTES) {
            const id = scratch.readUInt32LE(off);
            counts.set(id, (counts.get(id) ?? 0) + 1);
          }
          summary.memberships += (len - HEADER_BYTES) / PAIR_BYTES;
          return g;
        };
        for (const { key, value } of store.members.getRange({ start: from, end: to })) {
          const uid = key as string;
          // Snapshot users before this stored one.
          while (j < end && cmp(sorted.uid(j), uid) < 0) j = putSnapshotOnly(j);
          const a = side(value as Buffer);
          if (j < end && sorted.uid(j) === uid) {
            const g = sorted.groupEnd(j + 1);
            const s = fold(sorted.changes(j, g), now);
            const v = this.excluded(uid, now) ? a : decide(a, s, maxTs)!;
            j = g;
            if (v === s) summary.applied++;
            else summary.stale++;
            if (v === undefined) continue;
            if (v.members.length > 0 && (a === undefined || a.members.length === 0)) writer.markKnown(uid);
            put(uid, v);
          } else {
            const v = decide(a, undefined, maxTs);
            if (v !== undefined) put(uid, v);
          }
        }
        while (j < end) j = putSnapshotOnly(j);
      });
      i = end;
      summary.bytes = Math.round(size / 2 + (size / 2) * (i / sorted.length));
      opts.onProgress?.(summary);
      if (opts.signal?.aborted) throw opts.signal.reason;
      // Pushes and the stream commit between chunks (to the active generation; their changes are logged).
      await yieldToLoop();
    }
    return counts;
  }

  /**
   * 3. Makes `target` the active generation in one transaction: users changed
   * during the load merged again and their changes replayed, segment counts
   * replaced, generation, snapshot ts and the file's checkpoint written.
   */
  private flip(
    target: number,
    snap: ReadSnapshot,
    counts: Map<number, number>,
    log: LoadLog,
    checkpointKey: string,
    cp: FileCheckpoint,
  ): void {
    const { store, writer } = this;
    const { sorted, maxTs, now, read } = snap;
    const next = store.generations[target]!;
    const t1 = performance.now();
    writer.dirty = null;
    writer.commit(() => {
      const cur = store.members;
      /** Replaces what the merge wrote for `uid` (undefined: nothing), keeping the counts right. */
      const overwrite = (uid: string, v: Side | undefined) => {
        const written = side(next.getBinaryFast(uid) as Buffer | undefined);
        if (written) bump(counts, written.members, -1);
        if (v === undefined) {
          if (written) next.removeSync(uid);
          return;
        }
        next.putSync(uid, encodeMembers(v.updatedAt, v.members));
        bump(counts, v.members, +1);
      };
      // Users changed during the load: merged again from their value before it…
      for (const [uid, b] of log.before) {
        const at = sorted.find(uid);
        overwrite(
          uid,
          this.excluded(uid, now)
            ? b
            : decide(b, at === null ? undefined : fold(sorted.changes(at[0], at[1]), now), maxTs),
        );
      }
      // …then their changes replayed in commit order, by the writer's rules.
      for (const ch of log.changes) {
        if (ch.ts < maxTs) continue; // reflected in the snapshot
        const cur = side(next.getBinaryFast(ch.uid) as Buffer | undefined);
        if (cur && ch.ts < cur.updatedAt) continue;
        const ms = nextMembers(cur?.members, ch, now);
        if (cur) bump(counts, cur.members, -1);
        bump(counts, ms, +1);
        next.putSync(ch.uid, encodeMembers(Math.max(ch.ts, cur?.updatedAt ?? 0), ms));
      }
      // Users other writes changed during the load (an ID-graph merge, a privacy deletion: newer
      // than the snapshot by definition, and not expressible as a Change): the active value wins.
      for (const uid of log.touched) overwrite(uid, side(cur.getBinaryFast(uid) as Buffer | undefined));
      for (const uid of [...log.before.keys(), ...log.touched]) {
        const v = side(next.getBinaryFast(uid) as Buffer | undefined);
        if (v && v.members.length > 0) writer.markKnown(uid);
      }
      for (const id of store.counts.getKeys({ snapshot: false })) store.counts.removeSync(id as number);
      for (const [id, c] of counts) if (c > 0) store.counts.putSync(id, c);
      store.meta.putSync(GENERATION_KEY, target);
      store.meta.putSync(SNAPSHOT_TS_KEY, maxTs);
      store.meta.putSync(checkpointKey, {
        ...cp,
        offset: read.bytes,
        line: read.lines,
        done: true,
      } satisfies FileCheckpoint);
      store.meta.putSync('writes', ((store.meta.get('writes') as number | undefined) ?? 0) + 1);
      store.meta.putSync('lastCommitAt', Date.now());
    });
    store.setGeneration(target);
    this.flippedAt = Date.now();
    writer.swapped(maxTs, (performance.now() - t1) / 1000);
    timeline.mark('snapshot-flip', t1, { generation: target });
    this.retireTimer = setTimeout(() => this.retire(target ^ 1), RETIRE_AFTER_MS);
    this.retireTimer.unref();
  }

  /** Checked per user as the merge reaches it: a privacy action committed meanwhile counts too. */
  private excluded(uid: string, at: number): boolean {
    const { writer } = this;
    const extra = this.opts.excluded;
    return (writer.suppressed.size !== 0 && writer.isSuppressed(uid, at)) || (extra !== undefined && extra(uid, at));
  }

  /** Empties a retired generation, unless a newer snapshot has claimed it meanwhile. */
  private retire(g: number): void {
    this.retireTimer = null;
    if (this.loading || this.store.generation() === g) return;
    this.store.generations[g]!.clearSync();
  }
}

/** Adds `d` to the count of each segment in `ms`. */
function bump(counts: Map<number, number>, ms: readonly Membership[], d: number): void {
  for (const m of ms) counts.set(m.id, (counts.get(m.id) ?? 0) + d);
}

/** A snapshot read whole: its records in uid order, its ts T, the time it was read at. */
interface ReadSnapshot {
  sorted: SortedRecords;
  /** The members db's key order for these uids. */
  cmp: Compare;
  maxTs: number;
  now: number;
  read: { bytes: number; lines: number };
}

/** One user's records of the snapshot (ts order), applied onto nothing: the set the snapshot says it has. */
function fold(group: readonly Change[], now: number): Side {
  let members: Membership[] | undefined;
  for (const ch of group) members = nextMembers(members, ch, now);
  return { updatedAt: group[group.length - 1]!.ts, members: members ?? [] };
}

function side(buf: Buffer | undefined): Side | undefined {
  if (buf === undefined || !isValidMembersValue(buf)) return undefined;
  return decodeMembers(buf);
}
