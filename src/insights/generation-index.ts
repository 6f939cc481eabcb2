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
// The bitmaps change late and in bulk: each segment's joins and leaves queue
// in order in a typed array, and reach its bitmap (one native call per run of
// joins or of leaves) only when the index is read (`settle`, between
// transactions) or the queues grow large. With a native call per segment per
// transaction, a feed touching most segments in every transaction paid more
// for the calls than for the data. A transaction that does not commit
// truncates the queues to where it began.
import roaring from 'roaring';
import type { Database, DatabaseOptions, RootDatabase } from 'lmdb';
import { HEADER_BYTES, NO_ORDINAL, ordinalOf, segmentIds, withOrdinal } from '../store/members.js';
import { MemberTable } from './member-table.js';

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

/** One bitmap's queued joins and leaves, in order. */
interface Queue {
  ops: Uint32Array;
  n: number;
  /** ops[0..mark) are committed; the rest belong to the open transaction. */
  mark: number;
  /** Some op is a leave: the bitmap may have become empty. */
  leaves: boolean;
}
const newQueue = (): Queue => ({ ops: new Uint32Array(16), n: 0, mark: 0, leaves: false });
/** A queue that grew past this is given back after it was applied. */
const QUEUE_KEEP = 4096;
/** Queued ops, in all, past which a commit applies them (memory: 4 bytes each). */
const SETTLE_AT = 1 << 21;

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
  /** segment id → when its members last changed (ms since the epoch); committed changes only. */
  readonly updatedAt = new Map<number, number>();
  private undo: number[] = [];
  /** Each segment's queued joins and leaves; `dirty`: the segments with any (ids), `userOps`: `users`'. */
  private readonly queues = new Map<number, Queue>();
  private readonly dirty: number[] = [];
  /** The segments the open transaction queued ops for: what its commit marks (not every queue still unsettled). */
  private readonly txDirty: number[] = [];
  private readonly userOps = newQueue();
  /** Ops queued, in all, and in the open transaction. */
  private queued = 0;
  private txOps = 0;
  /** A stored user had no ordinal: this index no longer matches its generation (the next start rebuilds it). */
  broken = false;

  /**
   * A user's segments change from `before` to `after` (both ascending ids);
   * `beforeOrd`: the ordinal its value carried. Returns the ordinal its new
   * value carries (NO_ORDINAL when it has no segment left).
   */
  change(beforeOrd: number, before: Uint32Array, nb: number, after: Uint32Array, na: number): number {
    if (nb > 0 && beforeOrd === NO_ORDINAL) {
      // The generation was written behind this index's back: counts may be off until a rebuild.
      this.broken = true;
      nb = 0;
    }
    if (nb === 0 && na === 0) return NO_ORDINAL;
    const ord = nb === 0 ? this.take() : beforeOrd;
    let i = 0;
    let j = 0;
    while (i < nb || j < na) {
      const a = i < nb ? before[i]! : Infinity;
      const b = j < na ? after[j]! : Infinity;
      if (a === b) {
        i++;
        j++;
      } else if (a < b) {
        this.queue(a, (ord | LEAVE) >>> 0);
        i++;
      } else {
        this.queue(b, ord);
        j++;
      }
    }
    if (na > 0) return ord;
    this.give(ord);
    return NO_ORDINAL;
  }

  private queue(id: number, op: number): void {
    let q = this.queues.get(id);
    if (q === undefined) this.queues.set(id, (q = newQueue()));
    if (q.n === 0) this.dirty.push(id);
    if (q.n === q.mark) this.txDirty.push(id);
    push(q, op);
    this.queued++;
    this.txOps++;
  }

  private take(): number {
    let ord: number;
    if (this.freeCount > 0) {
      ord = this.free.minimum();
      this.free.remove(ord);
      this.freeCount--;
      this.undo.push(ORD_TAKEN, ord);
    } else {
      if (this.next > MAX_ORDINAL) throw new Error('insights: more than 2^31 users');
      ord = this.next++;
      this.undo.push(ORD_TAKEN_NEXT, ord);
    }
    push(this.userOps, ord);
    this.queued++;
    this.txOps++;
    return ord;
  }

  private give(ord: number): void {
    push(this.userOps, (ord | LEAVE) >>> 0);
    this.queued++;
    this.txOps++;
    this.free.add(ord);
    this.freeCount++;
    this.undo.push(ORD_GIVEN, ord);
  }

  /** Whether the open transaction changed this index. */
  get changed(): boolean {
    return this.txOps > 0 || this.undo.length > 0;
  }

  /** The transaction committed: its changes stay (and reach the bitmaps if much is queued). */
  commit(now: number): void {
    for (const id of this.txDirty) {
      const q = this.queues.get(id)!;
      if (q.n > q.mark) {
        q.mark = q.n;
        this.updatedAt.set(id, now);
      }
    }
    this.txDirty.length = 0;
    this.userOps.mark = this.userOps.n;
    this.undo.length = 0;
    this.txOps = 0;
    if (this.queued >= SETTLE_AT) this.settle();
  }

  /** The transaction did not commit: its changes are undone, newest first. */
  rollback(): void {
    let w = 0;
    for (const id of this.dirty) {
      const q = this.queues.get(id)!;
      q.n = q.mark;
      if (q.n > 0) this.dirty[w++] = id;
    }
    this.dirty.length = w;
    this.txDirty.length = 0;
    this.userOps.n = this.userOps.mark;
    this.queued -= this.txOps;
    this.txOps = 0;
    const u = this.undo;
    for (let k = u.length - 2; k >= 0; k -= 2) {
      const op = u[k]!;
      const x = u[k + 1]!;
      if (op === ORD_TAKEN_NEXT) this.next--;
      else if (op === ORD_TAKEN) {
        this.free.add(x);
        this.freeCount++;
      } else {
        this.free.remove(x);
        this.freeCount--;
      }
    }
    u.length = 0;
  }

  /** Applies the committed queues to the bitmaps: call before reading them. */
  settle(): void {
    if (this.queued === this.txOps) return;
    let w = 0;
    for (const id of this.dirty) {
      const q = this.queues.get(id)!;
      let bm = this.segments.get(id);
      if (q.mark > 0) {
        if (bm === undefined) this.segments.set(id, (bm = newBitmap()));
        const leaves = q.leaves;
        apply(bm, q);
        if (leaves && bm.size === 0) this.segments.delete(id);
      }
      if (q.n > 0) this.dirty[w++] = id;
    }
    this.dirty.length = w;
    apply(this.users, this.userOps);
    this.queued = this.txOps;
  }

  /** Forgets everything (the generation was emptied). */
  clear(): void {
    this.segments.clear();
    this.users.clear();
    this.free.clear();
    this.freeCount = 0;
    this.updatedAt.clear();
    this.undo.length = 0;
    this.queues.clear();
    this.dirty.length = 0;
    this.txDirty.length = 0;
    this.userOps.n = this.userOps.mark = 0;
    this.queued = this.txOps = 0;
    this.next = 0;
    this.broken = false;
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
  if (q.n === q.ops.length) {
    const grown = new Uint32Array(q.n * 2);
    grown.set(q.ops);
    q.ops = grown;
  }
  if (op >= LEAVE) q.leaves = true;
  q.ops[q.n++] = op;
}

/**
 * Applies a queue's committed ops to `bm` in order, a run of joins or of
 * leaves per native call, and keeps the open transaction's.
 */
function apply(bm: Bitmap, q: Queue): void {
  const { ops, mark } = q;
  let i = 0;
  while (i < mark) {
    const leave = ops[i]! >= LEAVE;
    let j = i + 1;
    while (j < mark && ops[j]! >= LEAVE === leave) j++;
    if (leave) {
      for (let k = i; k < j; k++) ops[k] = ops[k]! & MAX_ORDINAL;
      bm.removeMany(ops.subarray(i, j));
    } else bm.addMany(ops.subarray(i, j));
    i = j;
  }
  if (q.n > mark) ops.copyWithin(0, mark, q.n);
  q.n -= mark;
  q.mark = 0;
  q.leaves = false;
  for (let k = 0; k < q.n; k++) if (ops[k]! >= LEAVE) q.leaves = true;
  if (q.n === 0 && ops.length > QUEUE_KEEP) q.ops = new Uint32Array(16);
}
