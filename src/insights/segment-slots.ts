// Segment id → slot: a dense number per segment (0, 1, 2, … in order of first
// use), so per-segment work runs over arrays indexed by slot instead of a Map
// keyed by id. Taxonomy ids are small and find their slot in a table (one
// typed-array load); the rest (the exposure range, ids past 2^16) in a Map.
/** Segment ids below this find their slot in a table; the rest in a Map. */
const SMALL_IDS = 1 << 16;

export class SegmentSlots {
  /** slot → segment id. */
  readonly ids: number[] = [];
  private readonly small = new Int32Array(SMALL_IDS).fill(-1);
  private readonly big = new Map<number, number>();

  get size(): number {
    return this.ids.length;
  }

  /** `id`'s slot, given the next one on its first use. */
  of(id: number): number {
    if (id < SMALL_IDS) {
      const s = this.small[id]!;
      if (s >= 0) return s;
      return (this.small[id] = this.add(id));
    }
    const s = this.big.get(id);
    if (s !== undefined) return s;
    const made = this.add(id);
    this.big.set(id, made);
    return made;
  }

  /** Forgets every slot. */
  clear(): void {
    for (const id of this.ids) if (id < SMALL_IDS) this.small[id] = -1;
    this.big.clear();
    this.ids.length = 0;
  }

  private add(id: number): number {
    this.ids.push(id);
    return this.ids.length - 1;
  }
}
