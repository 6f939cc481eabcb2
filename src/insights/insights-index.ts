// The insights index of a store: one GenerationIndex per members generation,
// kept exact by observing the one place every membership write passes — the
// generation databases themselves (store/member-watch.ts). Whatever writes them (a feed batch, a
// merge, a deletion, the TTL sweep, a snapshot's merge and flip, emptying a
// retired generation), the index sees the user's value before and after, in
// the same LMDB transaction, and a transaction that fails is undone in the
// bitmaps as LMDB undoes it on disk.
//
// Every transaction that changed the index also bumps meta `insights.seq`; a
// saved index (persist.ts) is used at start only when it was saved at the
// sequence the store holds, otherwise the active generation is scanned and
// the index rebuilt from the ordinals the values carry (store/members.ts).
import type { Database } from 'lmdb';
import { writeSequence, type Store } from '../store/env.js';
import { MemberWatch } from '../store/member-watch.js';
import { GenerationIndex, newBitmap, openScan, type Bitmap } from './generation-index.js';

export const INSIGHTS_SEQ_KEY = 'insights.seq';
/** Users per transaction of a rebuild's second pass. */
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

  /**
   * Taps the store's generation databases. `saved`: an index read from disk
   * (persist.ts), used when it matches the store; otherwise the generations
   * are scanned (`rebuilt` says which happened).
   */
  constructor(
    private readonly store: Store,
    saved?: IndexState | null,
  ) {
    this.generations = [new GenerationIndex(), new GenerationIndex()];
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
    if (entries(store.generations[active ^ 1]!) > 0) this.rebuildGeneration(active ^ 1);
    this.tap();
  }

  /** False when the saved index was used. */
  rebuilt = true;

  /** The active generation's index, its committed changes applied: what queries read. */
  get active(): GenerationIndex {
    const gi = this.generations[this.store.generation()]!;
    gi.settle();
    return gi;
  }

  /** What a save writes: the active generation, as of the last commit (call between transactions). */
  state(): IndexState {
    const g = this.store.generation();
    const gi = this.generations[g]!;
    gi.settle();
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

  /**
   * Scans generation `g` and rebuilds its index from the ordinals its values
   * carry, reading only. Values without a usable one (written with the index
   * off, or by a writer without it) are given one in a second pass, which
   * writes just those values.
   */
  private rebuildGeneration(g: number): void {
    const { store } = this;
    const gi = this.generations[g]!;
    gi.clear();
    const members = store.generations[g]!;
    // Kept ordinals stay below this, so the bitmaps stay dense whatever a value carries.
    const bound = 2 * entries(members) + 65_536;
    const misfits = { n: 0 };
    // The segment counts size the rebuild's arrays: right for the active generation, a hint that may be off for the other.
    const sizes = [...store.counts.getRange()].map(({ key, value }) => [key, value] as const);
    gi.rebuildScan(openScan(store.env, members, false), bound, misfits, sizes);
    gi.finishFirstPass();
    if (misfits.n > 0) {
      const scan = openScan(store.env, members);
      const seen = newBitmap();
      let start: string | undefined;
      do {
        store.env.transactionSync(() => {
          start = gi.reassignChunk(scan, members, start, REBUILD_CHUNK, bound, seen);
        });
      } while (start !== undefined);
    }
    store.env.transactionSync(() => store.meta.putSync(INSIGHTS_SEQ_KEY, ++this.seq));
    gi.finishRebuild(Date.now());
    this.dirty = true;
  }

  /**
   * Keeps the ordinals in the values and observes every write to the
   * generation databases and every transaction (store/member-watch.ts): the
   * index changes with the values, commits with them, and is undone when a
   * transaction does not commit.
   */
  private tap(): void {
    const { store } = this;
    const gens = this.generations;
    const watch = MemberWatch.of(store);
    watch.keepOrdinals({
      change: (g, _uid, beforeOrd, before, nb, after, na, append) =>
        gens[g]!.change(beforeOrd, before, nb, after, na, append),
    });
    let touched = false;
    watch.add({
      change: () => undefined,
      clear: (g) => {
        gens[g]!.clear();
        touched = true;
      },
      // Inside the transaction: the saved index is stale from the moment this commits.
      beforeCommit: () => {
        touched ||= gens[0].changed || gens[1].changed;
        if (touched) store.meta.putSync(INSIGHTS_SEQ_KEY, this.seq + 1);
      },
      committed: () => {
        if (touched) {
          this.seq++;
          this.dirty = true;
          const now = Date.now();
          for (const gi of gens) gi.commit(now);
        }
        touched = false;
      },
      rolledBack: () => {
        for (const gi of gens) gi.rollback();
        touched = false;
      },
    });
  }
}

function entries(db: Database<unknown, string>): number {
  return (db.getStats() as { entryCount: number }).entryCount;
}
