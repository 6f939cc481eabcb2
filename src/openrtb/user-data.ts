// OpenRTB `user.data` from a user's licensed segment ids: one Data object per
// (provider, segtax) of the taxonomy, `id` = the provider, `name` = this DMP's
// domain, `ext.segtax`, `segment[].id` (strings, as 2.6 has them). Segments
// with no taxonomy entry have no segtax to describe them and are left out.
//
// The Data objects are written as bytes, exactly as JSON.stringify writes
// them, and spliced into the request's own bytes (scan.ts found where):
// Data objects already named with our domain are dropped, so a request
// enriched twice does not carry the segments twice; every other byte stays.
import { F, Kind, type BidRequestScanner } from './scan.js';

/** The taxonomy as Data objects need it (src/partners/registry.ts satisfies it). */
interface Taxonomy {
  segment(id: number): { provider: string; segtax: number } | undefined;
}

/** Where answers are written (http/format.ts's AnswerBuffer satisfies it). */
export interface ByteSink {
  reset(): void;
  /** Makes room for `n` more bytes (for `byte`, `bytes` and `digits`). */
  room(n: number): void;
  byte(c: number): void;
  bytes(b: Uint8Array): void;
  /** `src[start, end)`, making room itself. */
  copy(src: Buffer, start: number, end: number): void;
  /** A JSON string as JSON.stringify writes it, making room itself. */
  jsonString(s: string): void;
  /** An uint32 in decimal (up to 10 bytes). */
  digits(v: number): void;
  text(s: string): void;
}

const b = (s: string) => Buffer.from(s);
const ID_OPEN = b('{"id":');
const SEGMENT_OPEN = b(',"segment":[');
const SEGMENT_ITEM_OPEN = b('{"id":"');
const SEGMENT_ITEM_CLOSE = b('"}');
const EXT_OPEN = b('],"ext":{"segtax":');
const DATA_CLOSE = b('}}');
const DATA_MEMBER_OPEN = b('"data":[');
const USER_MEMBER_OPEN = b(',"user":{"data":[');
const USER_CLOSE = b(']}');

export class UserData {
  /** `,"name":"<domain>"` */
  private readonly nameMember: Buffer;
  // The groups of the last `group` call: provider and segtax per group, the group of each id (-1: none).
  private providers: string[] = [];
  private segtaxes: number[] = [];
  private groupOf = new Int32Array(64);
  private groups = 0;
  private ids: Uint32Array = new Uint32Array(0);
  private n = 0;

  constructor(
    private readonly taxonomy: Taxonomy,
    dmpDomain: string,
  ) {
    this.nameMember = Buffer.from(',"name":' + JSON.stringify(dmpDomain));
  }

  /**
   * Groups the first `n` of `ids` (ascending) into Data objects, kept until
   * the next call (`ids` is read again when they are written); returns how
   * many, 0 when no id is in the taxonomy.
   */
  group(ids: Uint32Array, n: number): number {
    if (this.groupOf.length < n) this.groupOf = new Int32Array(Math.max(n, this.groupOf.length * 2));
    const providers = this.providers;
    const segtaxes = this.segtaxes;
    let g = 0;
    for (let i = 0; i < n; i++) {
      const def = this.taxonomy.segment(ids[i]!);
      if (def === undefined) {
        this.groupOf[i] = -1;
        continue;
      }
      // Few groups per answer: a linear scan beats a Map here.
      let k = 0;
      while (k < g && !(providers[k] === def.provider && segtaxes[k] === def.segtax)) k++;
      if (k === g) {
        providers[g] = def.provider;
        segtaxes[g] = def.segtax;
        g++;
      }
      this.groupOf[i] = k;
    }
    this.groups = g;
    this.ids = ids;
    this.n = n;
    return g;
  }

  /** The Data objects of the last `group`, comma-separated, in order of their first segment. */
  private writeGroups(out: ByteSink): void {
    const { ids, n, groupOf } = this;
    for (let k = 0; k < this.groups; k++) {
      out.room(ID_OPEN.length + 1);
      if (k > 0) out.byte(0x2c);
      out.bytes(ID_OPEN);
      out.jsonString(this.providers[k]!);
      out.room(this.nameMember.length + SEGMENT_OPEN.length);
      out.bytes(this.nameMember);
      out.bytes(SEGMENT_OPEN);
      let first = true;
      for (let i = 0; i < n; i++) {
        if (groupOf[i] !== k) continue;
        out.room(1 + SEGMENT_ITEM_OPEN.length + 10 + SEGMENT_ITEM_CLOSE.length);
        if (!first) out.byte(0x2c);
        first = false;
        out.bytes(SEGMENT_ITEM_OPEN);
        out.digits(ids[i]!);
        out.bytes(SEGMENT_ITEM_CLOSE);
      }
      out.room(EXT_OPEN.length + 10);
      out.bytes(EXT_OPEN);
      const segtax = this.segtaxes[k]!;
      if (Number.isInteger(segtax) && segtax >= 0 && segtax <= 0xffffffff) out.digits(segtax);
      else out.text(JSON.stringify(segtax));
      out.room(DATA_CLOSE.length);
      out.bytes(DATA_CLOSE);
    }
  }

  /** `[<Data>,…]`: the Data objects of the last `group` alone. */
  writeData(out: ByteSink): void {
    out.reset();
    out.room(1);
    out.byte(0x5b);
    this.writeGroups(out);
    closeArray(out);
  }

  /**
   * `body` (the document `s` scanned, a BidRequest) with the Data objects of
   * the last `group` in `user.data`: after the request's own Data objects
   * (ours from an earlier pass left out), or in a `data` member added to
   * `user`, or in a `user` member added to the request.
   */
  writeEnriched(out: ByteSink, body: Buffer, s: BidRequestScanner): void {
    out.reset();
    if (s.kind[F.USER_DATA] === Kind.ARRAY && !hasOurs(s)) {
      // Nothing of ours to drop: the request up to user.data's `]` is copied
      // whole, not item by item (a native copy per item was ≈ 100 ns).
      const close = s.end[F.USER_DATA]! - 1;
      out.copy(body, 0, close);
      if (s.items > 0) comma(out);
      this.writeGroups(out);
      out.copy(body, close, body.length);
    } else if (s.kind[F.USER_DATA] === Kind.ARRAY) {
      out.copy(body, 0, s.start[F.USER_DATA]! + 1); // through its [
      let kept = 0;
      for (let i = 0; i < s.items; i++) {
        if (s.itemOurs[i] === 1) continue;
        if (kept++ > 0) comma(out);
        out.copy(body, s.itemStart[i]!, s.itemEnd[i]!);
      }
      if (kept > 0) comma(out);
      this.writeGroups(out);
      closeArray(out);
      out.copy(body, s.end[F.USER_DATA]!, body.length);
    } else if (s.kind[F.USER] === Kind.OBJECT) {
      const close = s.end[F.USER]! - 1; // user's closing brace
      out.copy(body, 0, close);
      if (!emptyObject(body, s.start[F.USER]!, close)) comma(out);
      out.copy(DATA_MEMBER_OPEN, 0, DATA_MEMBER_OPEN.length);
      this.writeGroups(out);
      closeArray(out);
      out.copy(body, close, body.length);
    } else {
      // A BidRequest has members (`id`, `imp`), so ours follows a comma.
      const close = s.end[F.ROOT]! - 1;
      out.copy(body, 0, close);
      out.copy(USER_MEMBER_OPEN, 0, USER_MEMBER_OPEN.length);
      this.writeGroups(out);
      out.copy(USER_CLOSE, 0, USER_CLOSE.length);
      out.copy(body, close, body.length);
    }
  }
}

/** Whether an element of the user.data just scanned is a Data object of ours. */
function hasOurs(s: BidRequestScanner): boolean {
  for (let i = 0; i < s.items; i++) if (s.itemOurs[i] === 1) return true;
  return false;
}

function comma(out: ByteSink): void {
  out.room(1);
  out.byte(0x2c);
}

function closeArray(out: ByteSink): void {
  out.room(1);
  out.byte(0x5d);
}

/** Whether the object from `open` ({) to `close` (}) holds only whitespace. */
function emptyObject(body: Buffer, open: number, close: number): boolean {
  for (let i = open + 1; i < close; i++) {
    const c = body[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return true;
}
