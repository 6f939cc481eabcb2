// One members generation's insights index: per segment, a Roaring bitmap of
// its members over dense user ordinals, the bitmap of every user with at least
// one stored membership, and the ordinals themselves (uid → u32, in LMDB, so
// they change in the same transactions as the memberships).
//
// Ordinals are dense: a user whose last membership goes gives its ordinal
// back, and the smallest one given back is handed out next. A transaction's
// segment changes reach the bitmaps at its commit, grouped per segment; what
// must happen earlier (ordinals handed out or back, a user changed twice in
// one transaction) goes to an undo log, so a transaction that does not commit
// leaves the bitmaps as they were (LMDB rolls the ordinals back itself).
import roaring from 'roaring';
import type { Database } from 'lmdb';
import { HEADER_BYTES, PAIR_BYTES } from '../store/members.js';

const { RoaringBitmap32 } = roaring;
export type Bitmap = InstanceType<typeof RoaringBitmap32>;
export const newBitmap = (): Bitmap => new RoaringBitmap32();

// Undo log operations (each followed by its operands).
const SEG_ADDED = 1; // segment, ordinal
const SEG_REMOVED = 2; // segment, ordinal
const ORD_TAKEN = 3; // ordinal, 1 when it came from `next`
const ORD_GIVEN = 4; // ordinal

/** A uid's ordinal as stored: 4 bytes, little-endian. */
const ordinalBytes = Buffer.alloc(4);

/** Segment ids of a members value (ascending; see store/members.ts), written into `out`; returns how many. */
export function idsOf(buf: Uint8Array | undefined, out: Uint32Array): number {
  if (buf === undefined || buf.length < HEADER_BYTES || (buf.length - HEADER_BYTES) % PAIR_BYTES !== 0) return 0;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let n = 0;
  for (let off = HEADER_BYTES; off < buf.length && n < out.length; off += PAIR_BYTES)
    out[n++] = dv.getUint32(off, true);
  return n;
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
  /** The open transaction's segment changes not yet in the bitmaps: segment, ordinal, SEG_ADDED or SEG_REMOVED. */
  private readonly pending: number[] = [];
  private readonly pendingOrds = new Set<number>();
  private scratch = new Uint32Array(4096);
  /** A stored user had no ordinal: this index no longer matches its generation (the next start rebuilds it). */
  broken = false;

  constructor(
    /** uid → ordinal, this generation's. */
    readonly ordinals: Database<Buffer, string>,
  ) {}

  /**
   * A user's segments changed from `before` to `after` (both ascending ids).
   * `append`: the uid is new to this generation and sorts after every stored
   * one (a snapshot's merge), so its ordinal is appended too. The bitmaps
   * change at the commit, a whole transaction's changes at once per segment
   * (one native call per segment, not per membership).
   */
  change(uid: string, before: Uint32Array, nb: number, after: Uint32Array, na: number, append: boolean): boolean {
    if (sameIds(before, nb, after, na)) return false;
    let ord: number;
    if (nb === 0) ord = this.take(uid, append);
    else {
      const stored = this.ordinals.getBinaryFast(uid);
      if (stored !== undefined) ord = stored.readUInt32LE(0);
      else {
        // The generation was written behind this index's back: counts may be off until a rebuild.
        this.broken = true;
        ord = this.take(uid, false);
      }
    }
    // A user changed twice in one transaction: its first change goes to the bitmaps first (order matters).
    if (this.pendingOrds.has(ord)) this.flush(true);
    this.pendingOrds.add(ord);
    const ops = this.pending;
    let i = 0;
    let j = 0;
    while (i < nb || j < na) {
      const a = i < nb ? before[i]! : Infinity;
      const b = j < na ? after[j]! : Infinity;
      if (a === b) {
        i++;
        j++;
      } else if (a < b) {
        ops.push(a, ord, SEG_REMOVED);
        i++;
      } else {
        ops.push(b, ord, SEG_ADDED);
        j++;
      }
    }
    if (na === 0) this.give(uid, ord);
    return true;
  }

  /** Applies the pending segment changes, grouped by segment; `undoable`: mid-transaction, so logged for a rollback. */
  private flush(undoable: boolean): void {
    const ops = this.pending;
    const n = ops.length / 3;
    if (n === 0) return;
    // Counting sort by (segment, add or remove) into one typed array: addMany/removeMany read it natively.
    const start = new Map<number, number>();
    for (let k = 0; k < ops.length; k += 3) {
      const key = ops[k]! * 4 + ops[k + 2]!;
      start.set(key, (start.get(key) ?? 0) + 1);
    }
    let at = 0;
    for (const [key, c] of start) {
      start.set(key, at);
      at += c;
    }
    const ends = new Map(start);
    const ords = this.scratch.length >= n ? this.scratch : (this.scratch = new Uint32Array(n * 2));
    for (let k = 0; k < ops.length; k += 3) {
      const key = ops[k]! * 4 + ops[k + 2]!;
      const w = ends.get(key)!;
      ords[w] = ops[k + 1]!;
      ends.set(key, w + 1);
      if (undoable) this.undo.push(ops[k + 2]!, ops[k]!, ops[k + 1]!);
    }
    for (const [key, from] of start) {
      const id = Math.floor(key / 4);
      const part = ords.subarray(from, ends.get(key)!);
      let bm = this.segments.get(id);
      if (key % 4 === SEG_ADDED) {
        if (bm === undefined) this.segments.set(id, (bm = newBitmap()));
        bm.addMany(part);
      } else bm?.removeMany(part);
      this.touched.add(id);
    }
    ops.length = 0;
    this.pendingOrds.clear();
  }

  private take(uid: string, append: boolean): number {
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
    ordinalBytes.writeUInt32LE(ord, 0);
    if (append) this.ordinals.putSync(uid, ordinalBytes, { append: true });
    else this.ordinals.putSync(uid, ordinalBytes);
    this.undo.push(ORD_TAKEN, ord, fromNext);
    return ord;
  }

  private give(uid: string, ord: number): void {
    this.users.remove(ord);
    this.free.add(ord);
    this.ordinals.removeSync(uid);
    this.undo.push(ORD_GIVEN, ord, 0);
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
    this.pending.length = 0;
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

  /** Forgets everything (the generation was emptied; its ordinals db is cleared by the caller). */
  clear(): void {
    this.segments.clear();
    this.users.clear();
    this.free.clear();
    this.updatedAt.clear();
    this.touched.clear();
    this.undo.length = 0;
    this.pending.length = 0;
    this.pendingOrds.clear();
    this.next = 0;
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
