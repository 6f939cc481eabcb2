// The insights index of a store: one GenerationIndex per members generation,
// kept exact by watching the one place every membership write passes — the
// generation databases themselves. Whatever writes them (a feed batch, a
// merge, a deletion, the TTL sweep, a snapshot's merge and flip, emptying a
// retired generation), the index sees the user's value before and after, in
// the same LMDB transaction, and a transaction that fails is undone in the
// bitmaps as LMDB undoes it on disk.
//
// Every transaction that changed the index also bumps meta `insights.seq`; a
// saved index (persist.ts) is used at start only when it was saved at the
// sequence the store holds, otherwise the active generation is scanned and
// the index rebuilt (ordinals reassigned densely).
import type { Database } from 'lmdb';
import { writeSequence, type Store } from '../store/env.js';
import { GenerationIndex, idsOf, openScan, type Bitmap } from './generation-index.js';

export const INSIGHTS_SEQ_KEY = 'insights.seq';
/** Users per rebuild transaction (and per bitmap flush). */
const REBUILD_CHUNK = 500_000;

export interface IndexState {
  generation: number;
  seq: number;
  /** The store's write sequence (meta `writes`) when saved: a writer without the index (`segd import`) moves it. */
  writes: number;
  next: number;
  users: Bitmap;
  segments: Map<number, Bitmap>;
  updatedAt: Map<number, number>;
}

export class InsightsIndex {
  readonly generations: readonly [GenerationIndex, GenerationIndex];
  /** The store's `insights.seq` as this index last committed it. */
  seq: number;
  /** Changed since the last save (or load). */
  dirty = false;
  private depth = 0;
  private touched = false;
  private before = new Uint32Array(64);
  private after = new Uint32Array(64);
  /** The ids of the last user the writer read inside the open transaction (see tap). */
  private cached = new Uint32Array(64);
  private cachedN = 0;
  private cachedGen = -1;
  private cachedUid: string | undefined;
  /** `before` or `cached`: where the ids before the write being tapped are. */
  private beforeIds = this.before;

  /**
   * Opens the ordinals and taps the store's generation databases. `saved`:
   * an index read from disk (persist.ts), used when it matches the store;
   * otherwise the generations are scanned (`rebuilt` says which happened).
   */
  constructor(
    private readonly store: Store,
    saved?: IndexState | null,
  ) {
    const open = (g: number) =>
      store.env.openDB<Buffer, string>({ name: `insights.ordinals.${g}`, encoding: 'binary' });
    this.generations = [new GenerationIndex(open(0)), new GenerationIndex(open(1))];
    this.seq = (store.meta.get(INSIGHTS_SEQ_KEY) as number | undefined) ?? 0;
    const active = store.generation();
    if (
      saved &&
      saved.seq === this.seq &&
      saved.writes === writeSequence(store) &&
      saved.generation === active &&
      this.seq > 0
    ) {
      const gi = this.generations[active]!;
      for (const [id, bm] of saved.segments) gi.segments.set(id, bm);
      for (const [id, at] of saved.updatedAt) gi.updatedAt.set(id, at);
      gi.users.copyFrom(saved.users);
      gi.next = saved.next;
      gi.freeGaps();
      this.rebuilt = false;
    } else this.rebuildGeneration(active);
    // The inactive generation is normally empty at start (an interrupted snapshot is cleared before loading).
    if (entries(store.generations[active ^ 1]!) > 0 || entries(this.generations[active ^ 1]!.ordinals) > 0)
      this.rebuildGeneration(active ^ 1);
    this.tap();
  }

  /** False when the saved index was used. */
  rebuilt = true;

  /** The active generation's index: what queries read. */
  get active(): GenerationIndex {
    return this.generations[this.store.generation()]!;
  }

  /** What a save writes: the active generation, as of the last commit (call between transactions). */
  state(): IndexState {
    const g = this.store.generation();
    const gi = this.generations[g]!;
    return {
      generation: g,
      seq: this.seq,
      writes: writeSequence(this.store),
      next: gi.next,
      users: gi.users,
      segments: gi.segments,
      updatedAt: gi.updatedAt,
    };
  }

  /** Scans generation `g` and rebuilds its index, reassigning ordinals in key order. */
  private rebuildGeneration(g: number): void {
    const { store } = this;
    const gi = this.generations[g]!;
    gi.clear();
    gi.ordinals.clearSync();
    const scan = openScan(store.env, store.generations[g]!);
    let start: string | undefined;
    let done = false;
    while (!done) {
      store.env.transactionSync(() => {
        start = gi.rebuildChunk(scan, start, REBUILD_CHUNK);
        done = start === undefined;
        this.seq++;
        store.meta.putSync(INSIGHTS_SEQ_KEY, this.seq);
      });
    }
    gi.finishRebuild(Date.now());
    this.dirty = true;
  }

  /**
   * Watches every write to the generation databases and every transaction:
   * the index changes with the values, commits with them, and is undone when
   * a transaction does not commit.
   */
  private tap(): void {
    const { store } = this;
    store.generations.forEach((db, g) => {
      const gi = this.generations[g]!;
      const getBinaryFast = db.getBinaryFast.bind(db);
      const putSync = db.putSync.bind(db) as (k: string, v: Buffer, o?: unknown) => void;
      const removeSync = db.removeSync.bind(db) as (k: string, ...r: unknown[]) => boolean;
      const clearSync = db.clearSync.bind(db);
      /** The user's ids before a write: what the writer's own read just found, or read now. */
      const before = (uid: string): number => {
        if (this.cachedGen === g && this.cachedUid === uid) {
          this.beforeIds = this.cached;
          return this.cachedN;
        }
        this.beforeIds = this.before;
        return this.read(getBinaryFast(uid) as Buffer | undefined, 'before');
      };
      // Inside a write transaction the writer reads a user just before writing it: its ids are kept, saving a second read.
      db.getBinaryFast = ((uid: string, ...rest: unknown[]) => {
        const b = (getBinaryFast as (k: string, ...r: unknown[]) => Buffer | undefined)(uid, ...rest);
        if (this.depth > 0) {
          this.cachedN = this.read(b, 'cached');
          this.cachedGen = g;
          this.cachedUid = uid;
        }
        return b;
      }) as typeof db.getBinaryFast;
      db.putSync = ((uid: string, value: Buffer, opts?: { append?: boolean }) => {
        const append = typeof opts === 'object' && opts !== null && opts.append === true;
        this.beforeIds = this.before;
        const nb = append ? 0 : before(uid);
        const out = putSync(uid, value, opts);
        this.cachedUid = undefined;
        const na = this.read(value, 'after');
        if (gi.change(uid, this.beforeIds, nb, this.after, na, append)) this.changed();
        return out;
      }) as typeof db.putSync;
      db.removeSync = ((uid: string, ...rest: unknown[]) => {
        const nb = before(uid);
        const out = removeSync(uid, ...rest);
        this.cachedUid = undefined;
        if (out && gi.change(uid, this.beforeIds, nb, this.after, 0, false)) this.changed();
        return out;
      }) as typeof db.removeSync;
      db.clearSync = (() => {
        clearSync();
        this.cachedUid = undefined;
        gi.clear();
        gi.ordinals.clearSync();
        this.changed();
      }) as typeof db.clearSync;
    });
    const transactionSync = store.env.transactionSync.bind(store.env);
    store.env.transactionSync = (<T>(fn: () => T, flags?: number): T => {
      if (this.depth > 0) return transactionSync(fn, flags);
      this.depth++;
      this.touched = false;
      this.cachedUid = undefined;
      try {
        const out = transactionSync(() => {
          const r = fn();
          // Inside the transaction: the saved index is stale from the moment this commits.
          if (this.touched) {
            for (const gi of this.generations) gi.writeOrdinals();
            store.meta.putSync(INSIGHTS_SEQ_KEY, this.seq + 1);
          }
          return r;
        }, flags);
        if (this.touched) {
          this.seq++;
          this.dirty = true;
          const now = Date.now();
          for (const gi of this.generations) gi.commit(now);
        }
        return out;
      } catch (err) {
        for (const gi of this.generations) gi.rollback();
        throw err;
      } finally {
        this.touched = false;
        this.cachedUid = undefined;
        this.depth--;
      }
    }) as typeof store.env.transactionSync;
  }

  /** The index changed; outside a transaction (a clear, a lone put) it is committed at once. */
  private changed(): void {
    if (this.depth > 0) {
      this.touched = true;
      return;
    }
    this.seq++;
    this.store.meta.putSync(INSIGHTS_SEQ_KEY, this.seq);
    this.dirty = true;
    const now = Date.now();
    for (const gi of this.generations) gi.commit(now);
  }

  /** Decodes a value's ids into the `before` or `after` scratch array (grown as needed). */
  private read(buf: Buffer | undefined, into: 'before' | 'after' | 'cached'): number {
    if (buf === undefined) return 0;
    const want = (buf.length - 4) >> 3;
    if (want > this[into].length) this[into] = new Uint32Array(Math.max(want, this[into].length * 2));
    return idsOf(buf, this[into]);
  }
}

function entries(db: Database<unknown, string>): number {
  return (db.getStats() as { entryCount: number }).entryCount;
}
