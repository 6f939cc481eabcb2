// The common batch body, `{"uids":["…","…",…]}`, read from its bytes without
// JSON.parse: the batch route screens each uid against the known-users filter
// from the bytes and copies it into the answer from them, so an unknown user
// (40% of keys in the bench mix) costs no string at all.
//
// Only bodies that JSON.parse would read as exactly that object of one member,
// every uid a non-empty run of printable ASCII other than `"` and `\` (no
// escape, no control, no DEL: a uid checkUid accepts as it stands and that is
// its own JSON), are taken; any other body — other members, escapes, unicode,
// non-string items, too many or too long uids, malformed JSON — is left to
// JSON.parse (`scan` answers -1), so both readings agree wherever this one
// answers.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const UIDS_KEY = Buffer.from('"uids"');
/** The bytes a plain uid holds: printable ASCII other than `"` and `\`. */
const PLAIN = new Uint8Array(256);
for (let c = 0x20; c <= 0x7e; c++) PLAIN[c] = c === QUOTE || c === BACKSLASH ? 0 : 1;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export class UidListScanner {
  /** Where each uid's bytes start and end (between its quotes), for the first `scan` answer's count. */
  starts = new Int32Array(1024);
  ends = new Int32Array(1024);

  /**
   * The number of uids in `b` when it is the simple shape (offsets in
   * `starts`/`ends`), or -1: read it as JSON. More than `maxItems` uids or one
   * longer than `maxUidBytes` answers -1 too (JSON.parse's reading names the error).
   */
  scan(b: Uint8Array, maxItems: number, maxUidBytes: number): number {
    const len = b.length;
    let p = skipSpace(b, 0);
    if (p >= len || b[p] !== 0x7b) return -1; // {
    p = skipSpace(b, p + 1);
    if (p + UIDS_KEY.length > len) return -1;
    for (let i = 0; i < UIDS_KEY.length; i++) if (b[p + i] !== UIDS_KEY[i]) return -1;
    p = skipSpace(b, p + UIDS_KEY.length);
    if (b[p] !== 0x3a) return -1; // :
    p = skipSpace(b, p + 1);
    if (b[p] !== 0x5b) return -1; // [
    p = skipSpace(b, p + 1);
    let n = 0;
    if (b[p] === 0x5d)
      p++; // ]
    else {
      for (;;) {
        if (b[p] !== QUOTE || n === maxItems) return -1;
        const start = p + 1;
        p = start;
        // Printable ASCII up to the closing quote; anything else is JSON.parse's.
        while (p < len && PLAIN[b[p]!] === 1) p++;
        if (b[p] !== QUOTE || p === start || p - start > maxUidBytes) return -1;
        if (n === this.starts.length) this.grow();
        this.starts[n] = start;
        this.ends[n] = p;
        n++;
        p = skipSpace(b, p + 1);
        if (b[p] === 0x2c) {
          p = skipSpace(b, p + 1);
          continue;
        }
        if (b[p] !== 0x5d) return -1;
        p++;
        break;
      }
    }
    p = skipSpace(b, p);
    if (b[p] !== 0x7d) return -1; // }
    return skipSpace(b, p + 1) === len ? n : -1;
  }

  private grow(): void {
    const starts = new Int32Array(this.starts.length * 2);
    const ends = new Int32Array(this.ends.length * 2);
    starts.set(this.starts);
    ends.set(this.ends);
    this.starts = starts;
    this.ends = ends;
  }
}

function skipSpace(b: Uint8Array, p: number): number {
  while (p < b.length && isSpace(b[p]!)) p++;
  return p;
}
