// A snapshot's records held in memory until they are sorted and merged:
// compact, because a snapshot is the whole data set. Per record a uid string
// and a few typed-array slots; the segment ids and TTLs of all records share
// one Uint32Array. About 120 bytes per user record with 5–6 segments, against
// ≈ 300 for a Change object with its two arrays (10M users: ≈ 1.2 GB instead
// of ≈ 3 GB, which would not fit Node's default 4 GB heap).
import { HEADER_BYTES, PAIR_BYTES } from '../store/members.js';
import { OPS, type Change, type Op } from './records.js';

/** Pairs encodeFresh sorts in place (insertion sort); a longer record takes the general path. */
export const FAST_PAIRS = 64;

export class SnapshotRecords {
  readonly uids: string[] = [];
  private ts = new Uint32Array(1024);
  private ops = new Uint8Array(1024);
  private start = new Float64Array(1024);
  private len = new Uint32Array(1024);
  /** id, ttl, id, ttl, … of every record. */
  private pairs = new Uint32Array(1 << 16);
  private used = 0;
  private uidChars = 0;

  get length(): number {
    return this.uids.length;
  }

  /** About what the records hold on the JS heap: each uid string (header, one byte a char) and its array slot. */
  get heapBytes(): number {
    return this.uidChars + 32 * this.uids.length;
  }

  push(ch: Change): void {
    const i = this.uids.length;
    if (i === this.ts.length) this.grow();
    const n = ch.ids.length;
    while (this.used + 2 * n > this.pairs.length)
      this.pairs = grown(this.pairs, new Uint32Array(this.pairs.length * 2));
    this.uids.push(ch.uid);
    this.uidChars += ch.uid.length;
    this.ts[i] = ch.ts;
    this.ops[i] = OPS.indexOf(ch.op);
    this.start[i] = this.used;
    this.len[i] = n;
    for (let k = 0; k < n; k++) {
      this.pairs[this.used++] = ch.ids[k]!;
      this.pairs[this.used++] = ch.ttls[k] ?? 0;
    }
  }

  private grow(): void {
    const cap = this.ts.length * 2;
    this.ts = grown(this.ts, new Uint32Array(cap));
    this.ops = grown(this.ops, new Uint8Array(cap));
    this.start = grown(this.start, new Float64Array(cap));
    this.len = grown(this.len, new Uint32Array(cap));
  }

  tsOf(i: number): number {
    return this.ts[i]!;
  }

  /** Record i as a Change again (the general path: users with several records, long records, other ops). */
  change(i: number): Change {
    const ids: number[] = [];
    const ttls: number[] = [];
    const s = this.start[i]!;
    for (let k = 0; k < this.len[i]!; k++) {
      ids.push(this.pairs[s + 2 * k]!);
      ttls.push(this.pairs[s + 2 * k + 1]!);
    }
    return { op: OPS[this.ops[i]!] as Op, uid: this.uids[i]!, ids, ttls, ts: this.ts[i]! };
  }

  /**
   * Record i, an add/replace, as a members value written into `out` (what
   * nextMembers gives for a new user: sorted by id, the last of duplicate ids
   * wins, expired pairs dropped). Returns its length, or -1 when the record is
   * not that simple (another op, or more than FAST_PAIRS segments).
   */
  encodeFresh(i: number, now: number, out: Buffer): number {
    const op = OPS[this.ops[i]!];
    const n = this.len[i]!;
    if ((op !== 'add' && op !== 'replace') || n > FAST_PAIRS) return -1;
    const ts = this.ts[i]!;
    const s = this.start[i]!;
    out.writeUInt32LE(ts, 0);
    let count = 0;
    for (let k = 0; k < n; k++) {
      const id = this.pairs[s + 2 * k]!;
      const ttl = this.pairs[s + 2 * k + 1]!;
      const exp = ttl === 0 ? 0 : ts + ttl;
      // Insertion: the place of id among the sorted pairs written so far.
      let at = count;
      while (at > 0 && out.readUInt32LE(HEADER_BYTES + (at - 1) * PAIR_BYTES) > id) at--;
      if (at > 0 && out.readUInt32LE(HEADER_BYTES + (at - 1) * PAIR_BYTES) === id) {
        out.writeUInt32LE(exp, HEADER_BYTES + (at - 1) * PAIR_BYTES + 4); // a duplicate: the last wins
        continue;
      }
      const off = HEADER_BYTES + at * PAIR_BYTES;
      if (at < count) out.copy(out, off + PAIR_BYTES, off, HEADER_BYTES + count * PAIR_BYTES);
      out.writeUInt32LE(id, off);
      out.writeUInt32LE(exp, off + 4);
      count++;
    }
    // Expired pairs go (a TTL already past when loaded adds nothing).
    let w = 0;
    for (let r = 0; r < count; r++) {
      const exp = out.readUInt32LE(HEADER_BYTES + r * PAIR_BYTES + 4);
      if (exp !== 0 && exp <= now) continue;
      if (w !== r)
        out.copy(
          out,
          HEADER_BYTES + w * PAIR_BYTES,
          HEADER_BYTES + r * PAIR_BYTES,
          HEADER_BYTES + (r + 1) * PAIR_BYTES,
        );
      w++;
    }
    return HEADER_BYTES + w * PAIR_BYTES;
  }
}

function grown<T extends Uint8Array | Uint32Array | Float64Array>(from: T, to: T): T {
  to.set(from as never);
  return to;
}

const SLOTS = 130; // second code unit: none, 0..127, ≥ 128
const LAST_BUCKET = 128 * SLOTS; // first code unit ≥ 128

/**
 * Record indices in uid order, stable (records of one uid keep file order):
 * a counting pass into buckets by the first two code units (ASCII; the rest
 * share a bucket, in order), then each bucket sorted on its own. Measured
 * 1.67 s → 0.76 s for 1M mixed uuid/base36 keys against one sort of the whole
 * array with the same comparator. Bucket order agrees with both UTF-16 and
 * UTF-8 order, so `cmp` decides only within a bucket.
 */
export function sortedOrder(uids: readonly string[], cmp: (a: string, b: string) => number): Uint32Array {
  const n = uids.length;
  const bucketOf = new Uint32Array(n);
  const first = new Float64Array(LAST_BUCKET + 2);
  for (let i = 0; i < n; i++) {
    const u = uids[i]!;
    const c0 = u.charCodeAt(0);
    let b = LAST_BUCKET;
    if (c0 < 128) {
      const c1 = u.length > 1 ? u.charCodeAt(1) : -1;
      b = c0 * SLOTS + (c1 < 0 ? 0 : c1 >= 128 ? SLOTS - 1 : c1 + 1);
    }
    bucketOf[i] = b;
    first[b + 1]!++;
  }
  for (let b = 0; b <= LAST_BUCKET; b++) first[b + 1]! += first[b]!;
  const out = new Uint32Array(n);
  const pos = first.slice(0, LAST_BUCKET + 1);
  for (let i = 0; i < n; i++) out[pos[bucketOf[i]!]!++] = i;
  const byUid = (a: number, b: number) => cmp(uids[a]!, uids[b]!) || a - b;
  for (let b = 0; b <= LAST_BUCKET; b++) {
    const s = first[b]!;
    const e = first[b + 1]!;
    if (e - s >= 2) out.subarray(s, e).sort(byUid);
  }
  return out;
}

/** The records in uid order (positions 0..length-1), grouped by user. */
export class SortedRecords {
  readonly order: Uint32Array;

  constructor(
    readonly recs: SnapshotRecords,
    private readonly cmp: (a: string, b: string) => number,
  ) {
    const { uids } = recs;
    let sorted = true;
    for (let k = 1; k < uids.length && sorted; k++) if (cmp(uids[k - 1]!, uids[k]!) > 0) sorted = false;
    // A file already in key order (common for exports) skips the sort.
    this.order = sorted ? Uint32Array.from({ length: uids.length }, (_, k) => k) : sortedOrder(uids, cmp);
  }

  get length(): number {
    return this.order.length;
  }

  uid(j: number): string {
    return this.recs.uids[this.order[j]!]!;
  }

  /** Position past the run of records for the user at `from - 1`. */
  groupEnd(from: number): number {
    const uid = this.uid(from - 1);
    let k = from;
    while (k < this.order.length && this.uid(k) === uid) k++;
    return k;
  }

  /** The positions [from, to) holding `uid`'s records, or null. */
  find(uid: string): [number, number] | null {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cmp(this.uid(mid), uid) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= this.order.length || this.uid(lo) !== uid) return null;
    return [lo, this.groupEnd(lo + 1)];
  }

  /** Records at positions [from, to) as Changes, in ts order (file order among equal ts). */
  changes(from: number, to: number): Change[] {
    const out: Change[] = [];
    for (let k = from; k < to; k++) out.push(this.recs.change(this.order[k]!));
    return out.sort((a, b) => a.ts - b.ts);
  }

  encodeFresh(j: number, now: number, out: Buffer): number {
    return this.recs.encodeFresh(this.order[j]!, now, out);
  }
}
