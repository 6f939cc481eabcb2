// One members generation's insights index: per segment, a Roaring bitmap of
// its members over dense user ordinals, and the bitmap of every user with at
// least one stored membership. A user's ordinal is stored at the end of its
// members value (store/members.ts), written by the same put as its segments:
// keeping it costs no LMDB read or write of its own, a restart's rebuild finds
// it in the value it scans anyway, and a transaction that does not commit
// takes it back with the value.
//
// Ordinals are dense: a user whose last membership goes gives its ordinal
// back, and the smallest one given back is handed out next. A transaction's
// segment changes reach the bitmaps at its commit, grouped per segment; what
// must happen earlier (ordinals handed out or back, a user changed twice in
// one transaction) goes to an undo log, so a transaction that does not commit
// leaves the bitmaps as they were.
import roaring from 'roaring';
import type { Database, DatabaseOptions, RootDatabase } from 'lmdb';
import { HEADER_BYTES, NO_ORDINAL, ordinalOf, segmentIds, withOrdinal } from '../store/members.js';

const { RoaringBitmap32 } = roaring;
export type Bitmap = InstanceType<typeof RoaringBitmap32>;
export const newBitmap = (): Bitmap => new RoaringBitmap32();

// Undo log operations (each followed by its operands).
const SEG_ADDED = 1; // segment, ordinal
const SEG_REMOVED = 2; // segment, ordinal
const ORD_TAKEN = 3; // ordinal, 1 when it came from `next`
const ORD_GIVEN = 4; // ordinal

/** One segment's pending adds (or removes): ordinals, in a typed array addMany/removeMany read natively. */
interface Bucket {
  readonly id: number;
  readonly add: boolean;
  ords: Uint32Array;
  n: number;
}
/** A bucket that grew past this is given back after a flush (a snapshot's big transaction). */
const BUCKET_KEEP = 4096;

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

/** Opens a second handle on a generation's members db for a rebuild's scan: values read as the number of their ids. */
export function openScan(env: RootDatabase, members: Database<Buffer, string>): Database<number, string> {
  // lmdb-js keeps the name a db was opened with on the handle (its types do not say so).
  const { name } = members as unknown as { name: string };
  return env.openDB<number, string>({ name, encoder: scanned } as DatabaseOptions & { name: string });
}

export class GenerationIndex {
  /** segment id → its members' ordinals (no entry: no member). */
  readonly segments = new Map<number, Bitmap>();
  /** Ordinals of every user with at least one stored membership. */
  readonly users = newBitmap();
  /** Ordinals given back, below `next`: handed out again first. */
  private readonly free = newBitmap();
  /** The lowest ordinal never handed out. */
  next = 0;
  /** segment id → when its members last changed (ms since the epoch); committed changes only. */
  readonly updatedAt = new Map<number, number>();
  private readonly touched = new Set<number>();
  private undo: number[] = [];
  /** The open transaction's segment changes not yet in the bitmaps, per segment; `dirty`: the buckets holding any. */
  private readonly adds = new Map<number, Bucket>();
  private readonly removes = new Map<number, Bucket>();
  private readonly dirty: Bucket[] = [];
  private readonly pendingOrds = new Set<number>();
  /** A stored user had no ordinal: this index no longer matches its generation (the next start rebuilds it). */
  broken = false;

  /**
   * A user's segments change from `before` to `after` (both ascending ids);
   * `beforeOrd`: the ordinal its value carried. Returns the ordinal its new
   * value carries (NO_ORDINAL when it has no segment left). The bitmaps
   * change at the commit, a whole transaction's changes at once per segment
   * (one native call per segment, not per membership).
   */
  change(beforeOrd: number, before: Uint32Array, nb: number, after: Uint32Array, na: number): number {
    if (nb > 0 && beforeOrd === NO_ORDINAL) {
      // The generation was written behind this index's back: counts may be off until a rebuild.
      this.broken = true;
      nb = 0;
    }
    if (nb === 0 && na === 0) return NO_ORDINAL;
    const ord = nb === 0 ? this.take() : beforeOrd;
    if (sameIds(before, nb, after, na)) return ord;
    // A user changed twice in one transaction: its first change goes to the bitmaps first (order matters).
    if (this.pendingOrds.has(ord)) this.flush(true);
    this.pendingOrds.add(ord);
    let i = 0;
    let j = 0;
    while (i < nb || j < na) {
      const a = i < nb ? before[i]! : Infinity;
      const b = j < na ? after[j]! : Infinity;
      if (a === b) {
        i++;
        j++;
      } else if (a < b) {
        this.pend(this.removes, a, ord, false);
        i++;
      } else {
        this.pend(this.adds, b, ord, true);
        j++;
      }
    }
    if (na > 0) return ord;
    this.give(ord);
    return NO_ORDINAL;
  }

  private pend(buckets: Map<number, Bucket>, id: number, ord: number, add: boolean): void {
    let b = buckets.get(id);
    if (b === undefined) buckets.set(id, (b = { id, add, ords: new Uint32Array(16), n: 0 }));
    if (b.n === 0) this.dirty.push(b);
    else if (b.n === b.ords.length) {
      const grown = new Uint32Array(b.n * 2);
      grown.set(b.ords);
      b.ords = grown;
    }
    b.ords[b.n++] = ord;
  }

  /** Applies the pending segment changes, one native call per segment; `undoable`: mid-transaction, so logged for a rollback. */
  private flush(undoable: boolean): void {
    for (const b of this.dirty) {
      const part = b.ords.subarray(0, b.n);
      let bm = this.segments.get(b.id);
      if (b.add) {
        if (bm === undefined) this.segments.set(b.id, (bm = newBitmap()));
        bm.addMany(part);
      } else bm?.removeMany(part);
      if (undoable) for (const ord of part) this.undo.push(b.add ? SEG_ADDED : SEG_REMOVED, b.id, ord);
      this.touched.add(b.id);
      this.empty(b);
    }
    this.dirty.length = 0;
    this.pendingOrds.clear();
  }

  private empty(b: Bucket): void {
    b.n = 0;
    if (b.ords.length > BUCKET_KEEP) b.ords = new Uint32Array(16);
  }

  private take(): number {
    let ord: number;
    let fromNext = 0;
    if (this.free.size > 0) {
      ord = this.free.minimum();
      this.free.remove(ord);
    } else {
      ord = this.next++;
      fromNext = 1;
    }
    this.users.add(ord);
    this.undo.push(ORD_TAKEN, ord, fromNext);
    return ord;
  }

  private give(ord: number): void {
    this.users.remove(ord);
    this.free.add(ord);
    this.undo.push(ORD_GIVEN, ord, 0);
  }

  /** Whether the open transaction changed this index. */
  get changed(): boolean {
    return this.dirty.length > 0 || this.undo.length > 0 || this.touched.size > 0;
  }

  /** The transaction committed: its changes stay. */
  commit(now: number): void {
    this.flush(false);
    this.undo.length = 0;
    for (const id of this.touched) {
      const bm = this.segments.get(id);
      if (bm !== undefined && bm.size === 0) this.segments.delete(id);
      this.updatedAt.set(id, now);
    }
    this.touched.clear();
  }

  /** The transaction did not commit: its changes are undone, newest first. */
  rollback(): void {
    for (const b of this.dirty) this.empty(b);
    this.dirty.length = 0;
    this.pendingOrds.clear();
    const u = this.undo;
    for (let k = u.length - 3; k >= 0; k -= 3) {
      const op = u[k]!;
      const x = u[k + 1]!;
      const y = u[k + 2]!;
      if (op === SEG_ADDED) this.segments.get(x)?.remove(y);
      else if (op === SEG_REMOVED) {
        let bm = this.segments.get(x);
        if (bm === undefined) this.segments.set(x, (bm = newBitmap()));
        bm.add(y);
      } else if (op === ORD_TAKEN) {
        this.users.remove(x);
        if (y === 1) this.next--;
        else this.free.add(x);
      } else if (op === ORD_GIVEN) {
        this.users.add(x);
        this.free.remove(x);
      }
    }
    u.length = 0;
    for (const id of this.touched) if (this.segments.get(id)?.size === 0) this.segments.delete(id);
    this.touched.clear();
  }

  /** Forgets everything (the generation was emptied). */
  clear(): void {
    this.segments.clear();
    this.users.clear();
    this.free.clear();
    this.updatedAt.clear();
    this.touched.clear();
    this.undo.length = 0;
    for (const b of this.dirty) this.empty(b);
    this.dirty.length = 0;
    this.pendingOrds.clear();
    this.next = 0;
    this.broken = false;
  }

  /**
   * A rebuild's first pass (see InsightsIndex), read-only: up to `max` users
   * of `scan` (openScan) after `start`. A user whose value carries an ordinal
   * below `bound` not taken by a user before it keeps it; the others are
   * counted in `misfits` and given one by `reassignChunk`. Returns the last
   * uid read, undefined when the scan is done.
   */
  rebuildChunk(
    scan: Database<number, string>,
    start: string | undefined,
    max: number,
    bound: number,
    misfits: { n: number },
  ): string | undefined {
    let n = 0;
    let last: string | undefined;
    for (const { key, value: k } of scan.getRange({ start, snapshot: false })) {
      if (key === start) continue;
      last = key;
      if (k > 0) {
        const ord = scanned.ord;
        if (ord < bound && this.users.tryAdd(ord)) {
          const ids = scanned.ids;
          for (let i = 0; i < k; i++) this.pend(this.adds, ids[i]!, ord, true);
        } else misfits.n++;
      }
      if (++n === max) break;
    }
    this.flush(false);
    return n < max ? undefined : last;
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
          for (let i = 0; i < k; i++) this.pend(this.adds, ids[i]!, ord, true);
          moved.push([key, ord]);
        }
      }
      if (++n === max) break;
    }
    // Written after the scan: its cursor does not walk a db being written.
    for (const [uid, ord] of moved) members.putSync(uid, withOrdinal(members.getBinary(uid)!, ord));
    this.flush(false);
    this.undo.length = 0;
    return n < max ? undefined : last;
  }

  /** The rebuild scanned every user: every segment changed `now`. */
  finishRebuild(now: number): void {
    for (const id of this.segments.keys()) this.updatedAt.set(id, now);
    this.touched.clear();
    this.undo.length = 0;
  }

  /** After `users` and `next` were set from a saved or rebuilt index: the gaps below `next` are free. */
  freeGaps(): void {
    this.free.clear();
    if (this.next > 0) {
      this.free.addRange(0, this.next);
      this.free.andNotInPlace(this.users);
    }
  }

  /** Bytes the bitmaps take in memory (Roaring's own count). */
  bytes(): number {
    let n = this.users.getSerializationSizeInBytes('croaring');
    for (const bm of this.segments.values()) n += bm.getSerializationSizeInBytes('croaring');
    return n;
  }
}

function sameIds(a: Uint32Array, na: number, b: Uint32Array, nb: number): boolean {
  if (na !== nb) return false;
  for (let i = 0; i < na; i++) if (a[i] !== b[i]) return false;
  return true;
}
