// Segment counts (db `counts`: segment id → live member count). The writer is
// their only writer, so it caches what it stored and saves a get per segment
// per batch. A batch (or a sweep) gathers its deltas and writes each segment
// once, inside its transaction; only what committed reaches the cache.
import type { Database } from 'lmdb';

/** Bounded: feeds choose segment ids, and this is only a cache. */
const MAX_CACHED_COUNTS = 200_000;

export class SegmentCounts {
  /** Counts as stored. */
  private readonly cache = new Map<number, number>();
  /** The open batch's deltas. */
  private readonly delta = new Map<number, number>();
  /** What the open batch wrote, for the cache once it committed. */
  private readonly written = new Map<number, number>();
  private open = false;

  constructor(private readonly db: Database<number, number>) {}

  /** A batch starts: deltas gather until `write`. */
  begin(): void {
    this.delta.clear();
    this.written.clear();
    this.open = true;
  }

  /** Within a batch: segment `id` gains `d` members. */
  add(id: number, d: number): void {
    const m = this.delta;
    m.set(id, (m.get(id) ?? 0) + d);
  }

  /** Inside the batch's transaction: writes its deltas. */
  write(): void {
    const { db, cache, written } = this;
    for (const [id, d] of this.delta) {
      if (d === 0) continue;
      const c = (cache.get(id) ?? (db.get(id) as number | undefined) ?? 0) + d;
      written.set(id, c);
      if (c > 0) db.putSync(id, c);
      else db.removeSync(id);
    }
  }

  /** The batch ended, committed or not. */
  end(): void {
    this.open = false;
  }

  /** After the batch's transaction committed: what it wrote joins the cache. */
  committed(): void {
    if (this.cache.size + this.written.size > MAX_CACHED_COUNTS) this.cache.clear();
    for (const [id, c] of this.written) this.cache.set(id, c);
  }

  /**
   * Count changes of merges and privacy actions: inside a batch they join its
   * deltas (written once at its end); outside, they are written through
   * (inside the caller's transaction) and the cache dropped, as that
   * transaction may still fail.
   */
  change(delta: ReadonlyArray<readonly [number, number]>): void {
    if (delta.length === 0) return;
    if (this.open) {
      for (const [id, d] of delta) this.add(id, d);
      return;
    }
    const sum = new Map<number, number>();
    for (const [id, d] of delta) sum.set(id, (sum.get(id) ?? 0) + d);
    this.cache.clear();
    for (const [id, d] of sum) {
      if (d === 0) continue;
      const c = ((this.db.get(id) as number | undefined) ?? 0) + d;
      if (c > 0) this.db.putSync(id, c);
      else this.db.removeSync(id);
    }
  }

  /** After a snapshot became the active generation: the cached counts are of the old one. */
  clear(): void {
    this.cache.clear();
  }
}
