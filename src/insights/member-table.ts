// A rebuild's bulk load: every user's segments, read in key order with the
// ordinal its value carries, then turned into one bitmap per segment, each
// filled from ascending ordinals. Key order scatters the ordinals, and
// Roaring's addMany took 85–140 ns an ordinal on scattered input against
// 7–10 ns on ascending input (1M–6M ordinals over 10M): so the users are
// first laid out in rows, then read back in ordinal order, a window of
// ordinals at a time, into one buffer sorted by segment (a counting sort),
// and each segment's run goes to its bitmap in one call.
//
// Memory while it runs: 4 bytes per membership and per user (the rows), 4
// bytes per ordinal up to the highest (where each row is), and the window's
// buffer.
import roaring from 'roaring';

type Bitmap = InstanceType<typeof roaring.RoaringBitmap32>;

/** Segment ids below this find their slot in a table; the rest in a Map. */
const SMALL_IDS = 1 << 16;
/** Ordinals per window of the build (its buffer holds the window's memberships). */
const WINDOW = 1 << 20;

export class MemberTable {
  /** Per user: its number of segments, then their slots, in the order added. */
  private rows = new Uint32Array(1 << 16);
  private n = 0;
  /** ordinal → 1 + the offset of its user's row (0: no user has it). */
  private at = new Uint32Array(1 << 16);
  private maxOrd = -1;
  /** slot → segment id. */
  private readonly ids: number[] = [];
  private readonly smallSlot = new Int32Array(SMALL_IDS).fill(-1);
  private readonly bigSlot = new Map<number, number>();

  /** `window`: ordinals per window of the build. */
  constructor(private readonly window = WINDOW) {}

  /** Adds a user with ordinal `ord` and segments `segs[0..k)`; false (nothing added) when a user added before has `ord`. */
  add(ord: number, segs: Uint32Array, k: number): boolean {
    if (ord >= this.at.length) this.at = grown(this.at, ord + 1);
    if (this.at[ord] !== 0) return false;
    const row = this.n;
    if (row + 1 + k > this.rows.length) this.rows = grown(this.rows, row + 1 + k);
    const rows = this.rows;
    rows[row] = k;
    for (let i = 0; i < k; i++) rows[row + 1 + i] = this.slot(segs[i]!);
    this.n = row + 1 + k;
    this.at[ord] = row + 1;
    if (ord > this.maxOrd) this.maxOrd = ord;
    return true;
  }

  private slot(id: number): number {
    if (id < SMALL_IDS) {
      const s = this.smallSlot[id]!;
      if (s >= 0) return s;
      return (this.smallSlot[id] = this.newSlot(id));
    }
    const s = this.bigSlot.get(id);
    if (s !== undefined) return s;
    const made = this.newSlot(id);
    this.bigSlot.set(id, made);
    return made;
  }

  private newSlot(id: number): number {
    this.ids.push(id);
    return this.ids.length - 1;
  }

  /** Adds every user's ordinal to `users` and each to its segments' bitmaps in `segments` (made as needed). */
  build(users: Bitmap, segments: Map<number, Bitmap>, newBitmap: () => Bitmap): void {
    const { rows, at, ids } = this;
    const slots = ids.length;
    const bitmaps = ids.map((id) => {
      let bm = segments.get(id);
      if (bm === undefined) segments.set(id, (bm = newBitmap()));
      return bm;
    });
    const count = new Uint32Array(slots);
    const start = new Uint32Array(slots);
    const fill = new Uint32Array(slots);
    const ords = new Uint32Array(this.window);
    let buf = new Uint32Array(1 << 16);
    for (let lo = 0; lo <= this.maxOrd; lo += this.window) {
      const hi = Math.min(this.maxOrd + 1, lo + this.window);
      count.fill(0);
      let u = 0;
      let total = 0;
      for (let o = lo; o < hi; o++) {
        const a = at[o]!;
        if (a === 0) continue;
        ords[u++] = o;
        const k = rows[a - 1]!;
        for (let i = 0; i < k; i++) count[rows[a + i]!]!++;
        total += k;
      }
      if (u === 0) continue;
      users.addMany(ords.subarray(0, u));
      if (total > buf.length) buf = new Uint32Array(Math.max(total, buf.length * 2));
      let s = 0;
      for (let j = 0; j < slots; j++) {
        start[j] = fill[j] = s;
        s += count[j]!;
      }
      for (let x = 0; x < u; x++) {
        const o = ords[x]!;
        const a = at[o]!;
        const k = rows[a - 1]!;
        for (let i = 0; i < k; i++) buf[fill[rows[a + i]!]!++] = o;
      }
      for (let j = 0; j < slots; j++)
        if (count[j]! > 0) bitmaps[j]!.addMany(buf.subarray(start[j]!, start[j]! + count[j]!));
    }
  }
}

/** A copy of `a` with room for at least `need` elements. */
function grown(a: Uint32Array, need: number): Uint32Array<ArrayBuffer> {
  const out = new Uint32Array(Math.max(need, Math.ceil(a.length * 1.5)));
  out.set(a);
  return out;
}
