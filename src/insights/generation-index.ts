// One members generation's insights index: per segment, a Roaring bitmap of
// its members over dense user ordinals, and the bitmap of every user with at
// least one stored membership. A user's ordinal is stored at the end of its
// members value (store/members.ts), written by the same put as its segments:
// keeping it costs no LMDB read or write of its own, a restart's rebuild finds
// it in the value it scans anyway, and a transaction that does not commit
// takes it back with the value.
//
// Ordinals are dense: a user whose last membership goes gives its ordinal
// back, and the smallest one given back is handed out next.
//
// The bitmaps change late and in bulk: every join and leave is appended, in
// order, to one log of (segment id, op) pairs, and reaches the bitmaps only
// when the index is read (`settle`, between transactions) or the log grows
// large. A change then costs two stores into an array the writer fills in
// order; the per-segment work — finding the segment, grouping its ops — runs
// once per settle in tight loops over typed arrays (a counting sort by
// segment), and each segment's bitmap takes a native call per run of joins
// or of leaves. A transaction that does not commit truncates the log to where
// it began. A generation written only by appends since it was emptied (a
// snapshot's load) hands its ordinals out in order, without the per-user
// bookkeeping a change needs otherwise (`appending`).
import roaring from 'roaring';
import type { Database, DatabaseOptions, RootDatabase } from 'lmdb';
import { HEADER_BYTES, NO_ORDINAL, ordinalOf, segmentIds, withOrdinal } from '../store/members.js';
import { MemberTable } from './member-table.js';
import { SegmentSlots } from './segment-slots.js';

const { RoaringBitmap32 } = roaring;
export type Bitmap = InstanceType<typeof RoaringBitmap32>;
export const newBitmap = (): Bitmap => new RoaringBitmap32();

// Undo log operations (each followed by its operand).
const ORD_TAKEN = 1; // ordinal from `free`
const ORD_TAKEN_NEXT = 2; // ordinal from `next`
const ORD_GIVEN = 3; // ordinal

/** Marks a queued leave (a queued join is the bare ordinal): ordinals stay below 2^31. */
const LEAVE = 0x8000_0000;
const MAX_ORDINAL = LEAVE - 1;

/** The users bitmap's queued joins and leaves, in order. */
interface Queue {
  ops: Uint32Array;
  n: number;
  /** ops[0..mark) are committed; the rest belong to the open transaction. */
  mark: number;
}
const newQueue = (): Queue => ({ ops: new Uint32Array(16), n: 0, mark: 0 });
/** Queued ops, in all, past which a commit applies them (memory: 12 bytes each, log and grouping). */
const SETTLE_AT = 1 << 20;

/**
 * A members value read by a rebuild's scan: lmdb-js hands its decoder the
 * value's bytes in place (no copy per user, `decoderCopies`); the decoder
 * leaves the ids in `ids` and the ordinal in `ord`, and returns how many ids.
 */
const scanned = {
  ids: new Uint32Array(64),
  ord: NO_ORDINAL,
  encode(v: Buffer): Buffer {
    return v;
  },
  decode(bytes: Uint8Array, size: number): number {
    const want = (size - HEADER_BYTES) >> 3;
    if (want > scanned.ids.length) scanned.ids = new Uint32Array(Math.max(want, scanned.ids.length * 2));
    scanned.ord = ordinalOf(bytes, size);
    return segmentIds(bytes, scanned.ids, size);
  },
};

/**
 * Opens a second handle on a generation's members db for a rebuild's scan:
 * values read as the number of their ids. `keys: false`: a scan that never
 * needs a key (nor starts at one) skips decoding each to a string, a third
 * of what a scan cost by CPU time.
 */
export function openScan(env: RootDatabase, members: Database<Buffer, string>, keys = true): Database<number, string> {
  // lmdb-js keeps the name a db was opened with, and its key writer, on the handle (its types do not say so).
  const { name, writeKey } = members as unknown as { name: string; writeKey: unknown };
  const keyEncoder = keys ? undefined : { writeKey, readKey: () => '' };
  return env.openDB<number, string>({ name, encoder: scanned, keyEncoder } as DatabaseOptions & { name: string });
}

export class GenerationIndex {
  /** segment id → its members' ordinals (no entry: no member); read after `settle`. */
  readonly segments = new Map<number, Bitmap>();
  /** Ordinals of every user with at least one stored membership; read after `settle`. */
  readonly users = newBitmap();
  /** Ordinals given back, below `next`: handed out again first. */
  private readonly free = newBitmap();
  /** `free.size`, counted here: a native call per user handed an ordinal costs more than the counting. */
  private freeCount = 0;
  /** The lowest ordinal never handed out. */
  next = 0;
  /** segment id → when its members last changed (ms since the epoch); committed changes only, read after `settle`. */
  readonly updatedAt = new Map<number, number>();
  /**
   * The open transaction's ordinal moves, (operation, ordinal) pairs in
   * order: a typed array kept from one transaction to the next, so a change
   * allocates nothing. A JS array emptied per commit gives its backing store
   * back and grows it again, garbage for every scavenge to walk: feed ingest
   * with the index on measured 0.909 of the rate off by CPU this way against
   * 0.891 (bench-like A/B in one process, 5 rounds, load 5-6).
   */
  private undo = newQueue();
  /**
   * The segments' queued ops, (segment id, op) pairs in order: log[0..logMark)
   * committed, log[logMark..logN) the open transaction's.
   */
  private log = new Uint32Array(2048);
  private logN = 0;
  private logMark = 0;
  /** Per commit that queued segment ops since the last settle: where they end in `log`, and its time. */
  private readonly commitEnds: number[] = [];
  private readonly commitTimes: number[] = [];
  /** `users`' queued ops. */
  private readonly userOps = newQueue();
  /** settle's work arrays: per slot (segment-slots.ts) its ops' count and last commit time, and the ops grouped by slot. */
  private readonly slots = new SegmentSlots();
  private count = new Int32Array(0);
  private at = new Float64Array(0);
  private grouped = new Uint32Array(0);
  /** A stored user had no ordinal: this index no longer matches its generation (the next start rebuilds it). */
  broken = false;
  /**
   * Every write since the generation was empty has been an append (a
   * snapshot's load, MDB_APPEND in key order): ordinals are handed out in
   * order, every one below `next` is a user's, and a rollback only takes
   * `next` back to `nextMark`. No undo log, no free list, no queued user op:
   * `users` gains the committed range at a settle. The index's own CPU for
   * a 200k-user snapshot load (1.1M memberships) is 65–70 ms this way
   * against 149–173 ms through `take` (medians of 10 loads, load average 6–8).
   */
  private appending = false;
  /** While appending: `next` when the open transaction began. */
  private nextMark = 0;
  /** While appending: the ordinals below this are in `users`. */
  private usersTo = 0;

  /** `settleAt`: queued ops past which a commit applies them (smaller in tests, to reach that path). */
  constructor(private readonly settleAt = SETTLE_AT) {}

  /**
   * A user's segments change from `before` to `after` (both ascending ids);
   * `beforeOrd`: the ordinal its value carried. Returns the ordinal its new
   * value carries (NO_ORDINAL when it has no segment left). `append`: a new
   * user appended (MDB_APPEND: nothing before it, nb = 0).
   */
  change(beforeOrd: number, before: Uint32Array, nb: number, after: Uint32Array, na: number, append = false): number {
    if (append) {
      if (!this.appending && this.next === 0 && this.logN === 0 && this.userOps.n === 0) {
        this.appending = true;
        this.nextMark = this.usersTo = 0;
      }
      if (this.appending) return na === 0 ? NO_ORDINAL : this.appendUser(after, na);
    } else if (this.appending) this.stopAppending();
    if (nb > 0 && beforeOrd === NO_ORDINAL) {
      // The generation was written behind this index's back: counts may be off until a rebuild.
      this.broken = true;
      nb = 0;
    }
    if (nb === 0 && na === 0) return NO_ORDINAL;
    const ord = nb === 0 ? this.take() : beforeOrd;
    // Room for every op this change can queue up front: one bounds check per change, none per op.
    const log = this.room(2 * (nb + na));
    const leave = (ord | LEAVE) >>> 0;
    let n = this.logN;
    let i = 0;
    let j = 0;
    while (i < nb && j < na) {
      const a = before[i]!;
      const b = after[j]!;
      if (a === b) {
        i++;
        j++;
      } else if (a < b) {
        log[n++] = a;
        log[n++] = leave;
        i++;
      } else {
        log[n++] = b;
        log[n++] = ord;
        j++;
      }
    }
    for (; i < nb; i++) {
      log[n++] = before[i]!;
      log[n++] = leave;
    }
    for (; j < na; j++) {
      log[n++] = after[j]!;
      log[n++] = ord;
    }
    this.logN = n;
    if (na > 0) return ord;
    this.give(ord);
    return NO_ORDINAL;
  }

  /** While appending: the next ordinal, and a join of each segment queued. */
  private appendUser(after: Uint32Array, na: number): number {
    if (this.next > MAX_ORDINAL) throw new Error('insights: more than 2^31 users');
    const ord = this.next++;
    const log = this.room(2 * na);
    let n = this.logN;
    for (let j = 0; j < na; j++) {
      log[n++] = after[j]!;
      log[n++] = ord;
    }
    this.logN = n;
    return ord;
  }

  /**
   * A write other than an append: the committed ordinals join `users` now,
   * the open transaction's are logged as the usual path logs them (undone on
   * rollback, queued for `users`). No ordinal below `next` is free.
   */
  private stopAppending(): void {
    this.settleUsers();
    for (let ord = this.nextMark; ord < this.next; ord++) {
      undo(this.undo, ORD_TAKEN_NEXT, ord);
      push(this.userOps, ord);
    }
    this.appending = false;
  }

  /** While appending: the committed ordinals not yet in `users` join it (one range). */
  private settleUsers(): void {
    if (this.nextMark > this.usersTo) {
      this.users.addRange(this.usersTo, this.nextMark);
      this.usersTo = this.nextMark;
    }
  }

  /** The log, with room for `k` more entries after `logN`. */
  private room(k: number): Uint32Array {
    if (this.logN + k > this.log.length) this.log = grown(this.log, this.logN + k);
    return this.log;
  }

  private queue(id: number, op: number): void {
    const log = this.room(2);
    log[this.logN++] = id;
    log[this.logN++] = op;
  }

  private take(): number {
    let ord: number;
    if (this.freeCount > 0) {
      ord = this.free.minimum();
      this.free.remove(ord);
      this.freeCount--;
      undo(this.undo, ORD_TAKEN, ord);
    } else {
      if (this.next > MAX_ORDINAL) throw new Error('insights: more than 2^31 users');
      ord = this.next++;
      undo(this.undo, ORD_TAKEN_NEXT, ord);
    }
    push(this.userOps, ord);
    return ord;
  }

  private give(ord: number): void {
    push(this.userOps, (ord | LEAVE) >>> 0);
    this.free.add(ord);
    this.freeCount++;
    undo(this.undo, ORD_GIVEN, ord);
  }

  /** Whether the open transaction changed this index. */
  get changed(): boolean {
    return (
      this.logN > this.logMark ||
      this.userOps.n > this.userOps.mark ||
      this.undo.n > 0 ||
      (this.appending && this.next !== this.nextMark)
    );
  }

  /** The transaction committed: its changes stay (and reach the bitmaps if much is queued). */
  commit(now: number): void {
    if (this.logN > this.logMark) {
      this.commitEnds.push(this.logN);
      this.commitTimes.push(now);
      this.logMark = this.logN;
    }
    this.userOps.mark = this.userOps.n;
    this.undo.n = 0;
    if (this.appending) this.nextMark = this.next;
    // An appending transaction is large (a snapshot's merge chunk) and its ops go to the bitmaps as it commits, so the log is sized to one.
    if (this.appending || (this.logMark >> 1) + this.userOps.mark >= this.settleAt) this.settle();
  }

  /** The transaction did not commit: its changes are undone, newest first. */
  rollback(): void {
    this.logN = this.logMark;
    this.userOps.n = this.userOps.mark;
    if (this.appending) this.next = this.nextMark;
    const u = this.undo;
    for (let k = u.n - 2; k >= 0; k -= 2) {
      const op = u.ops[k]!;
      const x = u.ops[k + 1]!;
      if (op === ORD_TAKEN_NEXT) this.next--;
      else if (op === ORD_TAKEN) {
        this.free.add(x);
        this.freeCount++;
      } else {
        this.free.remove(x);
        this.freeCount--;
      }
    }
    u.n = 0;
  }

  /** Applies the committed ops to the bitmaps: call before reading them. */
  settle(): void {
    if (this.logMark > 0) this.settleSegments();
    if (this.appending) this.settleUsers();
    const q = this.userOps;
    if (q.mark > 0) {
      applyRuns(this.users, q.ops, 0, q.mark);
      if (q.n > q.mark) q.ops.copyWithin(0, q.mark, q.n);
      q.n -= q.mark;
      q.mark = 0;
    }
  }

  /**
   * The committed part of the log, grouped by segment in order (a counting
   * sort by slot), each segment's ops applied to its bitmap; the open
   * transaction's ops move to the log's start.
   */
  private settleSegments(): void {
    const { log, slots, commitEnds, commitTimes } = this;
    const end = this.logMark;
    let { count, at } = this;
    count.fill(0);
    // Each op's slot in place of its id; ops per slot; the time of the last commit with an op of it.
    let k = 0;
    for (let c = 0; c < commitEnds.length; c++) {
      const to = commitEnds[c]!;
      const t = commitTimes[c]!;
      for (; k < to; k += 2) {
        const s = slots.of(log[k]!);
        if (s >= count.length) {
          count = grown(count, s + 1);
          at = grown(at, s + 1);
        }
        count[s]!++;
        at[s] = t;
        log[k] = s;
      }
    }
    this.count = count;
    this.at = at;
    const nSlots = slots.size;
    // count[s] becomes where slot s's ops start; after the scatter, where they end.
    for (let s = 0, p = 0; s < nSlots; s++) {
      const c = count[s]!;
      count[s] = p;
      p += c;
    }
    if (this.grouped.length < end >> 1) this.grouped = new Uint32Array(Math.max(end >> 1, this.grouped.length * 2));
    const grouped = this.grouped;
    for (let i = 0; i < end; i += 2) grouped[count[log[i]!]!++] = log[i + 1]!;
    const { ids } = slots;
    for (let s = 0, from = 0; s < nSlots; s++) {
      const to = count[s]!;
      if (to > from) {
        const id = ids[s]!;
        let bm = this.segments.get(id);
        if (bm === undefined) this.segments.set(id, (bm = newBitmap()));
        if (applyRuns(bm, grouped, from, to) && bm.size === 0) this.segments.delete(id);
        this.updatedAt.set(id, at[s]!);
      }
      from = to;
    }
    if (this.logN > end) log.copyWithin(0, end, this.logN);
    this.logN -= end;
    this.logMark = 0;
    commitEnds.length = 0;
    commitTimes.length = 0;
  }

  /** Forgets everything (the generation was emptied). */
  clear(): void {
    this.segments.clear();
    this.users.clear();
    this.free.clear();
    this.freeCount = 0;
    this.updatedAt.clear();
    this.undo.n = 0;
    this.logN = this.logMark = 0;
    this.commitEnds.length = 0;
    this.commitTimes.length = 0;
    this.userOps.n = this.userOps.mark = 0;
    this.slots.clear();
    this.next = 0;
    this.broken = false;
    this.appending = false;
  }

  /**
   * A rebuild's first pass (see InsightsIndex), read-only: every user of
   * `scan` (openScan, keys or not). A user whose value carries an ordinal
   * below `bound` not taken by a user before it keeps it; the others are
   * counted in `misfits` and given one by `reassignChunk`. The bitmaps are
   * built in bulk once the scan is done (member-table.ts); `sizes`: how many
   * members each segment is expected to have (a hint).
   */
  rebuildScan(
    scan: Database<number, string>,
    bound: number,
    misfits: { n: number },
    sizes: Iterable<readonly [number, number]>,
  ): void {
    const table = new MemberTable(sizes);
    for (const { value: k } of scan.getRange({ snapshot: false })) {
      if (k > 0 && !(scanned.ord < bound && table.add(scanned.ord, scanned.ids, k))) misfits.n++;
    }
    table.build(this.users, this.segments, newBitmap);
  }

  /** After the first pass: ordinals up to the highest kept are taken or free. */
  finishFirstPass(): void {
    this.next = this.users.size === 0 ? 0 : this.users.maximum() + 1;
    this.freeGaps();
  }

  /**
   * A rebuild's second pass, inside a write transaction on `members`: the
   * users of the first pass's misfits (an ordinal missing, out of bounds or
   * taken by a user before it, `seen` tracking which) get a free one, written
   * into their values after the chunk's reads. Returns as rebuildChunk.
   */
  reassignChunk(
    scan: Database<number, string>,
    members: Database<Buffer, string>,
    start: string | undefined,
    max: number,
    bound: number,
    seen: Bitmap,
  ): string | undefined {
    let n = 0;
    let last: string | undefined;
    const moved: Array<[string, number]> = [];
    for (const { key, value: k } of scan.getRange({ start, snapshot: false })) {
      if (key === start) continue;
      last = key;
      if (k > 0) {
        const kept = scanned.ord;
        if (!(kept < bound && seen.tryAdd(kept))) {
          const ord = this.take();
          const ids = scanned.ids;
          for (let i = 0; i < k; i++) this.queue(ids[i]!, ord);
          moved.push([key, ord]);
        }
      }
      if (++n === max) break;
    }
    // Written after the scan: its cursor does not walk a db being written.
    for (const [uid, ord] of moved) members.putSync(uid, withOrdinal(members.getBinary(uid)!, ord));
    this.commit(0);
    this.settle();
    return n < max ? undefined : last;
  }

  /** The rebuild scanned every user: every segment changed `now`. */
  finishRebuild(now: number): void {
    for (const id of this.segments.keys()) this.updatedAt.set(id, now);
  }

  /** After `users` and `next` were set from a saved or rebuilt index: the gaps below `next` are free. */
  freeGaps(): void {
    this.free.clear();
    if (this.next > 0) {
      this.free.addRange(0, this.next);
      this.free.andNotInPlace(this.users);
    }
    this.freeCount = this.free.size;
  }

  /** Bytes the bitmaps take in memory (Roaring's own count). */
  bytes(): number {
    this.settle();
    let n = this.users.getSerializationSizeInBytes('croaring');
    for (const bm of this.segments.values()) n += bm.getSerializationSizeInBytes('croaring');
    return n;
  }
}

/** Appends `op` to a queue, growing it as needed. */
function push(q: Queue, op: number): void {
  if (q.n === q.ops.length) q.ops = grown(q.ops, q.n + 1);
  q.ops[q.n++] = op;
}

/** Appends an ordinal move (`op`, `ord`) to the undo log. */
function undo(q: Queue, op: number, ord: number): void {
  if (q.n + 2 > q.ops.length) q.ops = grown(q.ops, q.n + 2);
  q.ops[q.n++] = op;
  q.ops[q.n++] = ord;
}

/** `a` copied into an array of at least `min` elements (twice as many, or more). */
function grown<T extends Uint32Array | Int32Array | Float64Array>(a: T, min: number): T {
  const out = new (a.constructor as new (n: number) => T)(Math.max(min, a.length * 2));
  out.set(a);
  return out;
}

/**
 * Applies ops[from..to) to `bm` in order, a run of joins or of leaves per
 * native call (leaves are unmarked in place). Returns whether any was a leave.
 */
function applyRuns(bm: Bitmap, ops: Uint32Array, from: number, to: number): boolean {
  let leaves = false;
  let i = from;
  while (i < to) {
    const leave = ops[i]! >= LEAVE;
    let j = i + 1;
    while (j < to && ops[j]! >= LEAVE === leave) j++;
    if (leave) {
      leaves = true;
      for (let k = i; k < j; k++) ops[k] = ops[k]! & MAX_ORDINAL;
      bm.removeMany(ops.subarray(i, j));
    } else bm.addMany(ops.subarray(i, j));
    i = j;
  }
  return leaves;
}
