// One pass over a BidRequest's bytes that validates the whole document as
// JSON.parse would and notes where the few values enrichment reads lie
// (`id`, `imp`, `tmax`, `user`, `device`, `regs` and what they hold), so the
// request is answered by copying its bytes around segd's `user.data` rather
// than parsing and re-serialising it. Measured with `npm run bench:micro --
// --only enrich` (bench/micro-enrich.ts; shared 2-core machine, alternating
// rounds, best of 5): the 2.6 KB banner request 25.2 → 6.9 µs of JS (3.6×),
// the 0.6 KB video request 9.2 → 3.9 µs (2.4×).
//
// A container whose contents enrichment never reads (imp, site, device.sua,
// source, ext: most of a request) is validated by `skip`, a loop that keeps
// only the open brackets: no fields, key matches or spans. Against one loop
// that tracked fields everywhere, CPU time per scan (min of 41 alternating
// windows, two runs on a loaded machine): banner 1.02–1.20×, video
// 1.07–1.11×, app 1.08–1.22×. What is left is the per-byte walk over strings
// (≈ 1 ns a byte here, as fast as a bare loop over the bytes with a table
// lookup; 4-bytes-at-a-time checks through a DataView measured slower, and
// so did a SWAR walk over an Int32Array view of the body, 8 bytes in: scan +
// splice 0.97× on the banner, 0.90–0.94× on video and app-ifa, the view's
// allocation and the alignment costing more than the long strings win; a
// loop unrolled by four is 0.78× on a bare walk).
//
// Bounded: no recursion (containers go on an explicit stack, so any depth is
// one more slot, not a stack frame), each byte is looked at a constant number
// of times, and the only values turned into JS values are the handful above.
// Where JSON.parse keeps the last of duplicate keys, so does the scan: a key
// seen again forgets what the scan noted under its earlier value.

/** What a value in the document is to enrichment; F_OTHER for everything it never reads. */
export const enum F {
  OTHER,
  ROOT,
  ID,
  IMP,
  TMAX,
  USER,
  DEVICE,
  REGS,
  USER_ID,
  BUYERUID,
  EIDS,
  CONSENT,
  USER_DATA,
  USER_EXT,
  UEXT_CONSENT,
  IFA,
  GDPR,
  US_PRIVACY,
  GPP,
  GPP_SID,
  COPPA,
  REGS_EXT,
  REXT_GDPR,
  REXT_US_PRIVACY,
  /** An element of user.data (its spans are kept apart: see `items`). */
  DATA_ITEM,
  /** `name` of an object in user.data. */
  DATA_NAME,
  COUNT,
}

const Q = 0x22; // "
const BS = 0x5c; // \
const OPEN_OBJ = 0x7b; // {
const CLOSE_OBJ = 0x7d; // }
const OPEN_ARR = 0x5b; // [
const CLOSE_ARR = 0x5d; // ]
const COMMA = 0x2c;
const COLON = 0x3a;

/**
 * Byte classes inside a string: 0 is itself, STR_END ends it, STR_ESC
 * escapes, STR_BAD is refused (a control char), STR_HIGH is part of a
 * non-ASCII character (noted: see `ascii`).
 */
const STR_END = 1;
const STR_ESC = 2;
const STR_BAD = 3;
const STR_HIGH = 4;
const STRING_CLASS = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) STRING_CLASS[c] = STR_BAD;
for (let c = 0x80; c < 0x100; c++) STRING_CLASS[c] = STR_HIGH;
STRING_CLASS[Q] = STR_END;
STRING_CLASS[BS] = STR_ESC;

/** Escape letters JSON allows after a backslash (`u` is checked for its four hex digits). */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

// Minified requests have no whitespace: one compare rules it out for nearly every other byte.
const isWs = (c: number) => c <= 0x20 && (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** The keys enrichment reads, per object it reads them in: [object's field, key, the key's field]. */
const KEYS: ReadonlyArray<readonly [F, string, F]> = [
  [F.ROOT, 'id', F.ID],
  [F.ROOT, 'imp', F.IMP],
  [F.ROOT, 'tmax', F.TMAX],
  [F.ROOT, 'user', F.USER],
  [F.ROOT, 'device', F.DEVICE],
  [F.ROOT, 'regs', F.REGS],
  [F.USER, 'id', F.USER_ID],
  [F.USER, 'buyeruid', F.BUYERUID],
  [F.USER, 'eids', F.EIDS],
  [F.USER, 'consent', F.CONSENT],
  [F.USER, 'data', F.USER_DATA],
  [F.USER, 'ext', F.USER_EXT],
  [F.USER_EXT, 'consent', F.UEXT_CONSENT],
  [F.DEVICE, 'ifa', F.IFA],
  [F.REGS, 'gdpr', F.GDPR],
  [F.REGS, 'us_privacy', F.US_PRIVACY],
  [F.REGS, 'gpp', F.GPP],
  [F.REGS, 'gpp_sid', F.GPP_SID],
  [F.REGS, 'coppa', F.COPPA],
  [F.REGS, 'ext', F.REGS_EXT],
  [F.REGS_EXT, 'gdpr', F.REXT_GDPR],
  [F.REGS_EXT, 'us_privacy', F.REXT_US_PRIVACY],
  [F.DATA_ITEM, 'name', F.DATA_NAME],
];
/** Per object field: its keys as bytes and their fields (objects enrichment does not read have none). */
const KEYS_OF: Array<Array<{ bytes: Buffer; n: number; text: string; field: F }>> = Array.from(
  { length: F.COUNT },
  () => [],
);
for (const [obj, key, field] of KEYS) KEYS_OF[obj]!.push({ bytes: Buffer.from(key), n: key.length, text: key, field });

/** The fields a key forgets when it is seen again (its earlier value's). */
const FORGETS: Array<readonly F[]> = Array.from({ length: F.COUNT }, () => []);
FORGETS[F.USER] = [F.USER_ID, F.BUYERUID, F.EIDS, F.CONSENT, F.USER_DATA, F.USER_EXT, F.UEXT_CONSENT];
FORGETS[F.USER_EXT] = [F.UEXT_CONSENT];
FORGETS[F.DEVICE] = [F.IFA];
FORGETS[F.REGS] = [F.GDPR, F.US_PRIVACY, F.GPP, F.GPP_SID, F.COPPA, F.REGS_EXT, F.REXT_GDPR, F.REXT_US_PRIVACY];
FORGETS[F.REGS_EXT] = [F.REXT_GDPR, F.REXT_US_PRIVACY];

/** The fields the privacy signals are read from (bid-request.ts). */
const SIGNALS: readonly F[] = [
  F.GDPR,
  F.REXT_GDPR,
  F.CONSENT,
  F.UEXT_CONSENT,
  F.US_PRIVACY,
  F.REXT_US_PRIVACY,
  F.GPP,
  F.GPP_SID,
  F.COPPA,
];

/** Value kinds, by their first byte. */
export const enum Kind {
  ABSENT = 0,
  OBJECT = OPEN_OBJ,
  ARRAY = OPEN_ARR,
  STRING = Q,
  NUMBER = 0x30,
  TRUE = 0x74,
  FALSE = 0x66,
  NULL = 0x6e,
}

const INITIAL_DEPTH = 64;
/**
 * Levels of a skipped container whose kinds `skip` keeps in the bits of an
 * integer rather than on the stack: with every typed array access checked
 * for a detached buffer in a worker (see bench/micro-enrich.ts), a stack
 * write and read per container cost more than the shifts.
 */
const BIT_LEVELS = 30;
const INITIAL_ITEMS = 16;
const KEPT_DEPTH = 4096;
const KEPT_ITEMS = 4096;

/**
 * A reusable scanner (one per route): `scan` fills the spans of the last
 * document it read, valid until the next scan.
 */
export class BidRequestScanner {
  /** Per field: the kind of its value (ABSENT when not in the document), and where the value starts and ends. */
  readonly kind = new Uint8Array(F.COUNT);
  readonly start = new Int32Array(F.COUNT);
  readonly end = new Int32Array(F.COUNT);
  /** Per field: its string value holds an escape. */
  private readonly escaped = new Uint8Array(F.COUNT);
  /** The elements of user.data: spans, and whether each is an object named with `ourName`. */
  itemStart = new Int32Array(INITIAL_ITEMS);
  itemEnd = new Int32Array(INITIAL_ITEMS);
  itemOurs = new Uint8Array(INITIAL_ITEMS);
  items = 0;
  /** Where the scan stopped on malformed input. */
  errorAt = -1;
  /**
   * After a scan that accepted the document: every byte of it is ASCII, so
   * it is UTF-8 without a check. Bytes ≥ 0x80 can only be inside strings
   * (anywhere else the scan refuses them), and the string walks note them.
   */
  ascii = true;

  // The open containers: object or array, the field each was opened as, where it starts.
  private stackIsObj = new Uint8Array(INITIAL_DEPTH);
  private stackField = new Uint8Array(INITIAL_DEPTH);
  private stackStart = new Int32Array(INITIAL_DEPTH);
  // The stacks' and item arrays' lengths, kept as numbers: once any
  // ArrayBuffer in the process has been detached (uWS detaches every body
  // chunk after its callback), V8 checks for detachment on each typed array
  // `.length`, and these were read for every container.
  private depthCap = INITIAL_DEPTH;
  private itemCap = INITIAL_ITEMS;
  private buf: Buffer = Buffer.alloc(0);
  /** Whether the last string scanned holds an escape. */
  private esc = false;
  /** The name of the current user.data element is `ourName`. */
  private itemIsOurs = false;
  private readonly ourNameBytes: Buffer;
  private readonly ourNameLength: number;

  /** `ourName`: the `name` of the Data objects segd writes (its domain). */
  constructor(private readonly ourName: string) {
    this.ourNameBytes = Buffer.from(ourName, 'utf8');
    this.ourNameLength = this.ourNameBytes.length;
  }

  /** True when `body` is one JSON value and nothing else; false (errorAt set) otherwise. */
  scan(body: Buffer): boolean {
    // A hostile document's depth or item count grows these; the next one starts small again.
    if (this.depthCap > KEPT_DEPTH) this.newStack(INITIAL_DEPTH);
    if (this.itemCap > KEPT_ITEMS) this.newItems(INITIAL_ITEMS);
    this.buf = body;
    this.kind.fill(0);
    this.items = 0;
    this.errorAt = -1;
    highSeen = false;
    const pos = this.value(body);
    this.ascii = !highSeen;
    if (pos < 0) {
      this.errorAt = -pos - 1;
      return false;
    }
    return true;
  }

  /** The whole document; the position after it, or -(error position) - 1. */
  private value(buf: Buffer): number {
    const len = buf.length;
    let pos = 0;
    let depth = 0;
    let field: F = F.ROOT;
    let c = 0;
    for (;;) {
      // A value starts here, as `field`.
      while (pos < len && isWs((c = buf[pos]!))) pos++;
      if (pos >= len) return -pos - 1;
      const at = pos;
      if (field === F.DATA_ITEM) this.itemIsOurs = false;
      if (field === F.OTHER && (c === OPEN_OBJ || c === OPEN_ARR)) {
        // Nothing inside is read: validated in a loop that notes nothing.
        pos = this.skip(buf, pos, depth);
        if (pos < 0) return pos;
      } else if (c === OPEN_OBJ || c === OPEN_ARR) {
        if (depth === this.depthCap) this.grow();
        const isObj = c === OPEN_OBJ;
        this.stackIsObj[depth] = isObj ? 1 : 0;
        this.stackField[depth] = field;
        this.stackStart[depth] = pos;
        depth++;
        pos++;
        while (pos < len && isWs((c = buf[pos]!))) pos++;
        if (pos >= len) return -pos - 1;
        if (c !== (isObj ? CLOSE_OBJ : CLOSE_ARR)) {
          // The first member or element.
          if (isObj) {
            pos = this.key(buf, pos, len, field);
            if (pos < 0) return pos;
            field = this.keyField;
          } else field = field === F.USER_DATA ? F.DATA_ITEM : F.OTHER;
          continue;
        }
        // Empty: closed below as any container.
      } else if (c === Q) {
        pos = this.string(buf, pos);
        if (pos < 0) return pos;
        if (field !== F.OTHER) this.noteValue(field, Kind.STRING, at, pos);
      } else if (c === 0x2d || isDigit(c)) {
        pos = number(buf, pos, len);
        if (pos < 0) return pos;
        if (field !== F.OTHER) this.noteValue(field, Kind.NUMBER, at, pos);
      } else {
        pos = literal(buf, pos, c);
        if (pos < 0) return pos;
        if (field !== F.OTHER) this.noteValue(field, c, at, pos);
      }

      // After a value: close containers, or go on to the next member or element.
      for (;;) {
        if (depth === 0) {
          while (pos < len && isWs(buf[pos]!)) pos++;
          return pos === len ? pos : -pos - 1;
        }
        while (pos < len && isWs((c = buf[pos]!))) pos++;
        if (pos >= len) return -pos - 1;
        const top = depth - 1;
        const isObj = this.stackIsObj[top] === 1;
        if (c === COMMA) {
          pos++;
          if (isObj) {
            while (pos < len && isWs(buf[pos]!)) pos++;
            pos = this.key(buf, pos, len, this.stackField[top]!);
            if (pos < 0) return pos;
            field = this.keyField;
          } else field = this.stackField[top] === F.USER_DATA ? F.DATA_ITEM : F.OTHER;
          break;
        }
        if (c !== (isObj ? CLOSE_OBJ : CLOSE_ARR)) return -pos - 1;
        pos++;
        depth = top;
        const f = this.stackField[top]!;
        if (f !== F.OTHER) this.noteValue(f, isObj ? Kind.OBJECT : Kind.ARRAY, this.stackStart[top]!, pos);
      }
    }
  }

  /**
   * A container enrichment reads nothing in, from its opening byte, checked
   * as `value` checks it but with no field, key or span noted; its own
   * containers are kept in bits, then on the stack above `base`. The position
   * after it.
   *
   * Strings, keys and their colons are walked inline, the call kept for the
   * rare string with an escape or a control byte: a call per string was a
   * fifth of the scan (perf, bench:cpu).
   */
  private skip(buf: Buffer, pos: number, base: number): number {
    const len = buf.length;
    // Containers open above `base`. Whether each is an object: bit k of
    // `bits` for the first BIT_LEVELS of them, the stack past those.
    let depth = 0;
    let bits = 0;
    let c = buf[pos]!;
    // The innermost open container is an object (kept in a local).
    let inObj = false;
    for (;;) {
      // A value starts at pos, its first byte in c.
      if (c === Q) {
        pos = skipString(buf, pos);
        if (pos < 0) return pos;
      } else if (c === OPEN_OBJ || c === OPEN_ARR) {
        inObj = c === OPEN_OBJ;
        if (depth < BIT_LEVELS) bits = inObj ? bits | (1 << depth) : bits & ~(1 << depth);
        else {
          if (base + depth === this.depthCap) this.grow();
          this.stackIsObj[base + depth] = inObj ? 1 : 0;
        }
        depth++;
        pos++;
        while (isWs((c = buf[pos]!))) pos++;
        if (pos >= len) return -pos - 1;
        if (c !== (inObj ? CLOSE_OBJ : CLOSE_ARR)) {
          if (inObj) {
            pos = skipKey(buf, pos, len);
            if (pos < 0) return pos;
            c = buf[pos]!;
          }
          continue;
        }
        // Empty: closed below as any container.
      } else if (c === 0x2d || isDigit(c)) {
        pos = number(buf, pos, len);
        if (pos < 0) return pos;
      } else {
        pos = literal(buf, pos, c);
        if (pos < 0) return pos;
      }

      // After a value: close containers, or go on to the next member or element.
      for (;;) {
        while (isWs((c = buf[pos]!))) pos++;
        if (pos >= len) return -pos - 1;
        if (c === COMMA) {
          pos++;
          while (isWs((c = buf[pos]!))) pos++;
          if (pos >= len) return -pos - 1;
          if (inObj) {
            pos = skipKey(buf, pos, len);
            if (pos < 0) return pos;
            c = buf[pos]!;
          }
          break;
        }
        if (c !== (inObj ? CLOSE_OBJ : CLOSE_ARR)) return -pos - 1;
        pos++;
        if (--depth === 0) return pos;
        inObj = depth <= BIT_LEVELS ? ((bits >>> (depth - 1)) & 1) === 1 : this.stackIsObj[base + depth - 1] === 1;
      }
    }
  }

  /** The field of the key just read by `key`. */
  private keyField: F = F.OTHER;

  /** A member's key and its colon, in an object opened as `obj`; the position of its value. */
  private key(buf: Buffer, pos: number, len: number, obj: F): number {
    if (buf[pos] !== Q) return -pos - 1;
    const at = pos;
    pos = this.string(buf, pos);
    if (pos < 0) return pos;
    const strEnd = pos;
    while (pos < len && isWs(buf[pos]!)) pos++;
    if (buf[pos] !== COLON) return -pos - 1;
    const keys = KEYS_OF[obj]!;
    let field = F.OTHER;
    if (keys.length > 0) {
      const text = this.esc ? (JSON.parse(buf.toString('utf8', at, strEnd)) as string) : null;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (text !== null ? text === k.text : sameBytes(buf, at + 1, strEnd - 1, k.bytes, k.n)) {
          field = k.field;
          break;
        }
      }
      if (field !== F.OTHER) {
        const forgets = FORGETS[field]!;
        for (let i = 0; i < forgets.length; i++) this.kind[forgets[i]!] = Kind.ABSENT;
        if (field === F.USER_DATA || field === F.USER) this.items = 0;
      }
    }
    this.keyField = field;
    return pos + 1;
  }

  /** A string from its opening quote; the position after its closing quote (sets `esc`). */
  private string(buf: Buffer, pos: number): number {
    pos++;
    while (STRING_CLASS[buf[pos]!] === 0) pos++;
    if (buf[pos] === Q) {
      this.esc = false;
      return pos + 1;
    }
    escapeSeen = false;
    pos = stringRest(buf, pos);
    this.esc = escapeSeen;
    return pos;
  }

  private noteValue(field: F, kind: number, at: number, end: number): void {
    if (field === F.DATA_NAME) {
      this.itemIsOurs = kind === Kind.STRING && this.isOurName(at, end);
      return;
    }
    if (field === F.DATA_ITEM) {
      if (this.items === this.itemCap) this.growItems();
      const i = this.items++;
      this.itemStart[i] = at;
      this.itemEnd[i] = end;
      this.itemOurs[i] = kind === Kind.OBJECT && this.itemIsOurs ? 1 : 0;
      return;
    }
    this.kind[field] = kind;
    this.start[field] = at;
    this.end[field] = end;
    this.escaped[field] = kind === Kind.STRING && this.esc ? 1 : 0;
  }

  /** Whether the string at [at, end) (quotes included) is `ourName`. */
  private isOurName(at: number, end: number): boolean {
    if (this.esc) return JSON.parse(this.buf.toString('utf8', at, end)) === this.ourName;
    return sameBytes(this.buf, at + 1, end - 1, this.ourNameBytes, this.ourNameLength);
  }

  /**
   * The JS value of `field` in the last document scanned, as JSON.parse gives
   * it; undefined when absent. Plain strings, numbers and literals are read
   * straight from the bytes; the rest (escaped strings, objects, arrays —
   * eids, gpp_sid) through JSON.parse of the value's own bytes.
   */
  valueOf(field: F): unknown {
    const buf = this.buf;
    const s = this.start[field]!;
    const e = this.end[field]!;
    switch (this.kind[field]) {
      case Kind.ABSENT:
        return undefined;
      case Kind.TRUE:
        return true;
      case Kind.FALSE:
        return false;
      case Kind.NULL:
        return null;
      case Kind.NUMBER:
        return numberAt(buf, s, e);
      case Kind.STRING:
        return this.escaped[field] === 0 ? utf8(buf, s + 1, e - 1) : JSON.parse(buf.toString('utf8', s, e));
      default:
        return JSON.parse(buf.toString('utf8', s, e));
    }
  }

  /**
   * The privacy signals of the last document as one string: each signal's
   * JSON text as sent (latin1: one char a byte), '' when absent, joined by
   * NUL, which JSON text never holds. Equal keys mean equal signals as
   * `valueOf` reads them. Null when the signals are longer than `maxChars`.
   */
  signalsKey(maxChars: number): string | null {
    let n = 0;
    for (let i = 0; i < SIGNALS.length; i++) {
      const f = SIGNALS[i]!;
      if (this.kind[f] !== Kind.ABSENT) n += this.end[f]! - this.start[f]!;
    }
    if (n > maxChars) return null;
    let key = '';
    for (let i = 0; i < SIGNALS.length; i++) {
      const f = SIGNALS[i]!;
      if (i > 0) key += '\0';
      if (this.kind[f] !== Kind.ABSENT) key += this.buf.toString('latin1', this.start[f]!, this.end[f]!);
    }
    return key;
  }

  /** Twice the depth, what is open kept. */
  private grow(): void {
    const { stackIsObj, stackField, stackStart } = this;
    this.newStack(stackField.length * 2);
    this.stackIsObj.set(stackIsObj);
    this.stackField.set(stackField);
    this.stackStart.set(stackStart);
  }

  private newStack(n: number): void {
    this.depthCap = n;
    this.stackIsObj = new Uint8Array(n);
    this.stackField = new Uint8Array(n);
    this.stackStart = new Int32Array(n);
  }

  /** Room for twice the items, those seen kept. */
  private growItems(): void {
    const { itemStart, itemEnd, itemOurs } = this;
    this.newItems(itemStart.length * 2);
    this.itemStart.set(itemStart);
    this.itemEnd.set(itemEnd);
    this.itemOurs.set(itemOurs);
  }

  private newItems(n: number): void {
    this.itemCap = n;
    this.itemStart = new Int32Array(n);
    this.itemEnd = new Int32Array(n);
    this.itemOurs = new Uint8Array(n);
  }
}

/** `true`, `false` or `null` from its first byte `c`; the position after it. */
function literal(buf: Buffer, pos: number, c: number): number {
  const word = c === Kind.TRUE ? 'true' : c === Kind.FALSE ? 'false' : c === Kind.NULL ? 'null' : '';
  if (word === '') return -pos - 1;
  for (let k = 1; k < word.length; k++) if (buf[pos + k] !== word.charCodeAt(k)) return -(pos + k) - 1;
  return pos + word.length;
}

/** A member's key from its opening quote, its colon and the whitespace after it; the position of its value. */
function skipKey(buf: Buffer, pos: number, len: number): number {
  if (buf[pos] !== Q) return -pos - 1;
  pos = skipString(buf, pos);
  if (pos < 0) return pos;
  if (buf[pos] === COLON) pos++;
  else {
    while (pos < len && isWs(buf[pos]!)) pos++;
    if (buf[pos] !== COLON) return -pos - 1;
    pos++;
  }
  while (isWs(buf[pos]!)) pos++;
  return pos < len ? pos : -pos - 1;
}

/**
 * A string from its opening quote, walked in one loop to its closing quote
 * (`stringRest` only for an escape, a control byte or a non-ASCII one); the
 * position after it. It reads on to the byte that stops it, with no length
 * check: past the end a Buffer reads `undefined`, which stops it too.
 */
function skipString(buf: Buffer, pos: number): number {
  pos++;
  while (STRING_CLASS[buf[pos]!] === 0) pos++;
  return buf[pos] === Q ? pos + 1 : stringRest(buf, pos);
}

/** Set when `stringRest` passes an escape (the scanner clears it before the strings it reads). */
let escapeSeen = false;
/** Set when `stringRest` passes a byte ≥ 0x80 (cleared when a scan starts). */
let highSeen = false;

/**
 * The rest of a string from a byte the fast loop stopped at (an escape, a
 * byte ≥ 0x80, a control byte, or the end of the buffer); the position after
 * its closing quote. Sets `escapeSeen` when it passes an escape, `highSeen` when it
 * passes a byte of a non-ASCII character.
 *
 * Most strings hold no escape: their callers walk them in one loop to the
 * closing quote (`while (STRING_CLASS[byte] === 0)`) and come here only
 * when it stops elsewhere. With the one-compare whitespace test and a key's
 * colon read straight after it, the scan alone 1.07–1.10× faster on the
 * banner, 1.07–1.09× on app-ifa (min of 101 alternating windows against the
 * build before, four runs, both orders, loaded machine).
 */
function stringRest(buf: Buffer, pos: number): number {
  const len = buf.length;
  for (;;) {
    while (pos < len && STRING_CLASS[buf[pos]!] === 0) pos++;
    if (pos >= len) return -pos - 1;
    const k = STRING_CLASS[buf[pos]!]!;
    if (k === STR_END) return pos + 1;
    if (k === STR_BAD) return -pos - 1;
    if (k === STR_HIGH) {
      highSeen = true;
      pos++;
      continue;
    }
    escapeSeen = true;
    const e = buf[pos + 1];
    if (e === undefined) return -pos - 2;
    if (SIMPLE_ESCAPE[e] === 1) pos += 2;
    else if (e === 0x75) {
      for (let h = 2; h < 6; h++) if (HEX[buf[pos + h] ?? 0] !== 1) return -(pos + h) - 1;
      pos += 6;
    } else return -pos - 2;
  }
}

/** A number from its first byte, checked against JSON's grammar; the position after it. */
function number(buf: Buffer, pos: number, len: number): number {
  if (buf[pos] === 0x2d) pos++;
  if (pos >= len) return -pos - 1;
  if (buf[pos] === 0x30) pos++;
  else if (isDigit(buf[pos]!)) while (isDigit(buf[pos]!)) pos++;
  else return -pos - 1;
  if (buf[pos] === 0x2e) {
    pos++;
    if (!isDigit(buf[pos] ?? 0)) return -pos - 1;
    while (isDigit(buf[pos]!)) pos++;
  }
  const e = buf[pos];
  if (e === 0x65 || e === 0x45) {
    pos++;
    if (buf[pos] === 0x2b || buf[pos] === 0x2d) pos++;
    if (!isDigit(buf[pos] ?? 0)) return -pos - 1;
    while (isDigit(buf[pos]!)) pos++;
  }
  return pos;
}

/**
 * The number at [s, e) as JSON.parse reads it. A plain integer of up to 15
 * digits (tmax, gdpr, coppa: every number enrichment reads, nearly always)
 * is summed from its digits, exact below 2^53; anything else goes through
 * Number(), whose grammar JSON's is a subset of, with the same rounding.
 * The digits: ≈ 60 ns less a number than decoding its text.
 */
function numberAt(buf: Buffer, s: number, e: number): number {
  if (e - s <= 15) {
    let v = 0;
    let i = s;
    for (; i < e; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    if (i === e) return v;
  }
  return Number(buf.toString('latin1', s, e));
}

/**
 * `buf[s, e)` decoded as UTF-8 by Buffer's own decoder, `utf8Slice`, which
 * `toString('utf8', s, e)` reaches through its argument checks and encoding
 * lookup (those were ≈ 1% of the worker's JS samples, bench:cpu --prof;
 * lmdb-js decodes strings through it the same way). The caller's span lies
 * inside `buf`.
 */
function utf8(buf: Buffer, s: number, e: number): string {
  return (buf as Buffer & { utf8Slice(start: number, end: number): string }).utf8Slice(s, e);
}

/** `buf[from, to)` is `bytes`, whose length `n` is passed in (see `depthCap`). */
function sameBytes(buf: Buffer, from: number, to: number, bytes: Buffer, n: number): boolean {
  if (to - from !== n) return false;
  for (let i = 0; i < n; i++) if (buf[from + i] !== bytes[i]) return false;
  return true;
}
