// Encoding lookup answers. Every answer (JSON, MessagePack, kv, gam) is written as bytes into
// a reused per-route buffer (AnswerBuffer) and handed to uWS as a view of it:
// the shape is fixed and ids are integers, so only the user key may need
// escaping. Measured with allocation sampling on segd (1 worker, closed loop,
// 60% known uids, GET JSON): 727 → 227 B of JS heap per request against
// answers built as strings, and young-generation scavenges 10.5 → 3.4 per
// 100k requests (--trace-gc).

/** Every answer format; a format's index here numbers it where a number is wanted (hot answers). */
export const FORMATS = ['json', 'msgpack', 'kv', 'gam'] as const;
export type Format = (typeof FORMATS)[number];

/** `?format=` wins; otherwise Accept: application/msgpack selects msgpack. */
export function pickFormat(formatParam: string | undefined, accept: string): Format | null {
  if (formatParam) {
    if (formatParam === 'json' || formatParam === 'msgpack' || formatParam === 'kv' || formatParam === 'gam')
      return formatParam;
    return null;
  }
  return accept.includes('application/msgpack') || accept.includes('application/x-msgpack') ? 'msgpack' : 'json';
}

/** Initial capacity: a GET answer of a 128-byte uid and 300 segments fits. */
const INITIAL_BYTES = 4096;
/** A buffer grown past this (a large batch) is let go at the next answer, unless the owner keeps more. */
const KEPT_BYTES = 64 * 1024;
/** Answers up to this long are handed out as a cached view (one per length). */
const CACHED_VIEWS = 2048;
/** An uint32 in decimal, with its comma. */
const MAX_ID_BYTES = 11;

const UID_OPEN = Buffer.from('{"uid":');
const NULL = Buffer.from('null');
const SEGMENTS_OPEN = Buffer.from(',"segments":[');

/**
 * One answer at a time, written from offset 0. uWS copies a body into its
 * cork buffer, the socket or the socket's backpressure buffer before end()
 * returns (uWebSockets AsyncSocket::write with optionally=false), so the
 * next answer may overwrite this one as soon as it is sent. Whoever takes a
 * `view()` sends it before writing the next answer.
 */
export class AnswerBuffer {
  private buf: Buffer = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  // A view per answer length, made once: a subarray per answer is an object
  // (92 B of heap, measured with --expose-gc) on every request.
  private views: (Buffer | undefined)[] = new Array<Buffer | undefined>(CACHED_VIEWS).fill(undefined);
  /** Bytes written so far. */
  pos = 0;

  /** `keptBytes`: the largest buffer kept from one answer to the next. */
  constructor(private readonly keptBytes = KEPT_BYTES) {}

  /** Starts an answer. */
  reset(): void {
    if (this.buf.length > this.keptBytes) this.replace(Buffer.allocUnsafeSlow(INITIAL_BYTES));
    this.pos = 0;
  }

  /** Makes room for `n` more bytes. */
  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.replace(grown);
  }

  private replace(buf: Buffer): void {
    this.buf = buf;
    this.views.fill(undefined);
  }

  /** The answer so far, valid until the next write. */
  view(): Buffer {
    const n = this.pos;
    if (n >= CACHED_VIEWS) return this.buf.subarray(0, n);
    let v = this.views[n];
    if (v === undefined) this.views[n] = v = this.buf.subarray(0, n);
    return v;
  }

  /** Constant bytes; the caller made room. */
  bytes(b: Uint8Array): void {
    const n = b.length;
    const buf = this.buf;
    const p = this.pos;
    // The answers' constants are a few bytes long: copied in a loop, two of
    // them (`{"uid":`, `,"segments":[`) take 21.2 ns against 26.7 ns through
    // TypedArray set() (bench:micro, same run, loaded machine; 25 vs 78 ns,
    // and 68 ns through Buffer copy(), in a standalone alternating loop).
    if (n <= 32) for (let i = 0; i < n; i++) buf[p + i] = b[i]!;
    else buf.set(b, p);
    this.pos = p + n;
  }

  /** `src[start, end)`. */
  copy(src: Buffer, start: number, end: number): void {
    this.room(end - start);
    this.pos += src.copy(this.buf, this.pos, start, end);
  }

  /** One ASCII byte; the caller made room. */
  byte(c: number): void {
    this.buf[this.pos++] = c;
  }

  /** Any string as UTF-8. */
  text(s: string): void {
    this.room(s.length * 3);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /** An uint32 in decimal; the caller made room for MAX_ID_BYTES. */
  digits(v: number): void {
    this.pos = writeDigits(this.buf, this.pos, v);
  }

  /**
   * `v1,v2,…`: the first `n` of `ids` in decimal, with room made. Written
   * through locals rather than `digits` per id: a 1000-item batch's JSON
   * items 87-100 → 68-84 ns each (six ids on 60% of them, isolated loop).
   */
  idList(ids: Uint32Array, n: number): void {
    this.room(n * MAX_ID_BYTES);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      if (i > 0) buf[p++] = 44;
      p = writeDigits(buf, p, ids[i]!);
    }
    this.pos = p;
  }

  /** `s` as a JSON string, exactly as JSON.stringify writes it; null as null. */
  jsonString(s: string | null): void {
    if (s === null) {
      this.room(4);
      return this.bytes(NULL);
    }
    const len = s.length;
    this.room(len + 2);
    const buf = this.buf;
    const start = this.pos;
    buf[start] = 34;
    // Printable ASCII other than " and \ is its own JSON: copied a char at a
    // time (uids are mostly UUIDs and hex digests; a native write costs more
    // at this length). Anything else takes JSON.stringify's escaping.
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === 34 || c === 92) return this.text(JSON.stringify(s));
      buf[start + 1 + i] = c;
    }
    buf[start + 1 + len] = 34;
    this.pos = start + len + 2;
  }
  /**
   * The string whose chars are `src[start, end)`, as JSON; the caller checked
   * they are printable ASCII other than `"` and `\\` (so their own JSON, as in
   * jsonString).
   */
  asciiJsonString(src: Uint8Array, start: number, end: number): void {
    const len = end - start;
    this.room(len + 2);
    const buf = this.buf;
    const at = this.pos + 1;
    buf[at - 1] = 34;
    // A loop: at a uid's length a native copy costs more (as in jsonString).
    for (let i = 0; i < len; i++) buf[at + i] = src[start + i]!;
    buf[at + len] = 34;
    this.pos = at + len + 1;
  }

  /** The string whose chars are the ASCII bytes `src[start, end)`, as MessagePack. */
  asciiMsgpackString(src: Uint8Array, start: number, end: number): void {
    const len = end - start;
    this.room(len + 5);
    this.msgpackHeader(len, 0xa0, 0xd9, 0xda, 0xdb, 32);
    const buf = this.buf;
    const at = this.pos;
    for (let i = 0; i < len; i++) buf[at + i] = src[start + i]!;
    this.pos = at + len;
  }

  /** `s` as a MessagePack string (the shortest header); null as nil. */
  msgpackString(s: string | null): void {
    if (s === null) {
      this.room(1);
      return this.byte(0xc0);
    }
    const len = s.length;
    // Uids are ASCII as a rule: their length is their byte length, checked as they are copied.
    this.room(len + 5);
    const start = this.pos;
    const at = start + stringHeaderBytes(len);
    const buf = this.buf;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        const bytes = Buffer.byteLength(s, 'utf8');
        this.room(bytes + 5);
        this.msgpackHeader(bytes, 0xa0, 0xd9, 0xda, 0xdb, 32);
        this.pos += this.buf.write(s, this.pos, 'utf8');
        return;
      }
      buf[at + i] = c;
    }
    this.msgpackHeader(len, 0xa0, 0xd9, 0xda, 0xdb, 32);
    this.pos = at + len;
  }

  /** An uint32 as MessagePack's shortest unsigned integer; the caller made room for 5 bytes. */
  msgpackUint(v: number): void {
    const buf = this.buf;
    let p = this.pos;
    if (v < 0x80) buf[p++] = v;
    else if (v < 0x100) {
      buf[p++] = 0xcc;
      buf[p++] = v;
    } else if (v < 0x10000) {
      buf[p++] = 0xcd;
      buf[p++] = v >>> 8;
      buf[p++] = v & 0xff;
    } else {
      buf[p++] = 0xce;
      buf.writeUInt32BE(v, p);
      p += 4;
    }
    this.pos = p;
  }

  /** A MessagePack array header for `n` items; the caller made room for 5 bytes. */
  msgpackArray(n: number): void {
    this.msgpackHeader(n, 0x90, -1, 0xdc, 0xdd, 16);
  }

  /**
   * A length header: the fix form (`fix` | n) below `fixLimit`, else 8-bit
   * (when the type has one), 16-bit or 32-bit; the caller made room for 5 bytes.
   */
  private msgpackHeader(n: number, fix: number, h8: number, h16: number, h32: number, fixLimit: number): void {
    const buf = this.buf;
    let p = this.pos;
    if (n < fixLimit) buf[p++] = fix | n;
    else if (h8 >= 0 && n < 0x100) {
      buf[p++] = h8;
      buf[p++] = n;
    } else if (n < 0x10000) {
      buf[p++] = h16;
      buf[p++] = n >>> 8;
      buf[p++] = n & 0xff;
    } else {
      buf[p++] = h32;
      buf.writeUInt32BE(n, p);
      p += 4;
    }
    this.pos = p;
  }
}

/** `v` (an uint32) in decimal at `buf[p]`, room made; the position after it. */
function writeDigits(buf: Buffer, p: number, v: number): number {
  const after = p + decimalLength(v);
  let end = after;
  // Integer division on int32 (`| 0`): with `%` and `/` on doubles the 8
  // ids of a typical answer took 189 ns, with int32 steps 56 ns (mb, one
  // run alternating). Ids above 2^31 - 1 take one double step first.
  if (v > 0x7fffffff) {
    const q = Math.floor(v / 10);
    buf[--end] = 48 + v - q * 10;
    v = q;
  }
  let x = v | 0;
  do {
    const q = (x / 10) | 0;
    buf[--end] = 48 + x - q * 10;
    x = q;
  } while (x !== 0);
  return after;
}

/** Bytes of a MessagePack string header for `n` bytes. */
function stringHeaderBytes(n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function decimalLength(v: number): number {
  if (v < 100000) return v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10000 ? 4 : 5;
  return v < 1000000 ? 6 : v < 10000000 ? 7 : v < 100000000 ? 8 : v < 1000000000 ? 9 : 10;
}

/**
 * A lookup answer's items as bytes, one grammar per format: GET answers one
 * item, a batch many between `open` and `close`. Every item is
 * `{uid, segments}`, plus `error: {code, message}` for a batch item in error.
 * MessagePack written here rather than objects handed to msgpackr's pack
 * (`npm run bench:micro`, same run): a 1000-key batch 1505 → 1111 ns/key
 * (encoding alone 716 → 322), a GET answer of 8 segments 1127 → 241 ns.
 */
export interface ItemEncoder {
  /** A batch answer's start: `{"results":[` and its MessagePack twin, for `count` items. */
  open(out: AnswerBuffer, count: number): void;
  /** One item: `uid`, the first `n` of `ids`, and the error (`code` null: none). */
  item(
    out: AnswerBuffer,
    first: boolean,
    uid: string | null,
    ids: Uint32Array,
    n: number,
    code: string | null,
    message: string,
  ): void;
  /**
   * An item without error whose uid is the string of the ASCII bytes
   * `src[start, end)`, printable and neither `"` nor `\\` (codec/uid-list.ts):
   * the same bytes as `item` of that string.
   */
  asciiItem(
    out: AnswerBuffer,
    first: boolean,
    src: Uint8Array,
    start: number,
    end: number,
    ids: Uint32Array,
    n: number,
  ): void;
  /**
   * An item whose bytes are kept from an earlier answer (lookup/hot-answers.ts):
   * `bytes` as `item` wrote them for the first item, after this encoder's separator.
   */
  keptItem(out: AnswerBuffer, first: boolean, bytes: Uint8Array): void;
  /** How many separator bytes `item` writes before an item's own bytes. */
  separatorLength(first: boolean): number;
  close(out: AnswerBuffer): void;
}

const RESULTS_OPEN = Buffer.from('{"results":[');
const ERROR_OPEN = Buffer.from(',"error":{"code":');
const MESSAGE_OPEN = Buffer.from(',"message":');

export const JSON_ITEMS: ItemEncoder = {
  open(out) {
    out.room(RESULTS_OPEN.length);
    out.bytes(RESULTS_OPEN);
  },
  item(out, first, uid, ids, n, code, message) {
    jsonItemOpen(out, first);
    out.jsonString(uid);
    jsonSegments(out, ids, n);
    if (code === null) {
      out.byte(125); // }
      return;
    }
    out.room(ERROR_OPEN.length);
    out.bytes(ERROR_OPEN);
    out.jsonString(code);
    out.room(MESSAGE_OPEN.length);
    out.bytes(MESSAGE_OPEN);
    out.jsonString(message);
    out.room(2);
    out.byte(125); // }
    out.byte(125); // }
  },
  asciiItem(out, first, src, start, end, ids, n) {
    jsonItemOpen(out, first);
    out.asciiJsonString(src, start, end);
    jsonSegments(out, ids, n);
    out.byte(125); // }
  },
  keptItem(out, first, bytes) {
    out.room(bytes.length + 1);
    if (!first) out.byte(44);
    out.bytes(bytes);
  },
  separatorLength: (first) => (first ? 0 : 1),
  close(out) {
    out.room(2);
    out.byte(93);
    out.byte(125);
  },
};

/** `{"uid":`, after a comma unless it is the first item. */
function jsonItemOpen(out: AnswerBuffer, first: boolean): void {
  out.room(UID_OPEN.length + 1);
  if (!first) out.byte(44);
  out.bytes(UID_OPEN);
}

/** `,"segments":[…]`, with room for the item's closing braces. */
function jsonSegments(out: AnswerBuffer, ids: Uint32Array, n: number): void {
  out.room(SEGMENTS_OPEN.length);
  out.bytes(SEGMENTS_OPEN);
  out.idList(ids, n);
  out.room(2);
  out.byte(93); // ]
}

/** MessagePack constants: a fixmap of 1, 2 or 3 entries, and the keys as fixstr. */
const mpKey = (k: string) => Buffer.from([0xa0 | k.length, ...Buffer.from(k)]);
const MP_RESULTS = Buffer.concat([Buffer.from([0x81]), mpKey('results')]);
const MP_ITEM = Buffer.concat([Buffer.from([0x82]), mpKey('uid')]);
const MP_ITEM_WITH_ERROR = Buffer.concat([Buffer.from([0x83]), mpKey('uid')]);
const MP_SEGMENTS = mpKey('segments');
const MP_ERROR = Buffer.concat([mpKey('error'), Buffer.from([0x82]), mpKey('code')]);
const MP_MESSAGE = mpKey('message');

export const MSGPACK_ITEMS: ItemEncoder = {
  open(out, count) {
    out.room(MP_RESULTS.length + 5);
    out.bytes(MP_RESULTS);
    out.msgpackArray(count);
  },
  item(out, _first, uid, ids, n, code, message) {
    out.room(MP_ITEM.length);
    out.bytes(code === null ? MP_ITEM : MP_ITEM_WITH_ERROR);
    out.msgpackString(uid);
    msgpackSegments(out, ids, n);
    if (code !== null) {
      out.room(MP_ERROR.length);
      out.bytes(MP_ERROR);
      out.msgpackString(code);
      out.room(MP_MESSAGE.length);
      out.bytes(MP_MESSAGE);
      out.msgpackString(message);
    }
  },
  asciiItem(out, _first, src, start, end, ids, n) {
    out.room(MP_ITEM.length);
    out.bytes(MP_ITEM);
    out.asciiMsgpackString(src, start, end);
    msgpackSegments(out, ids, n);
  },
  keptItem(out, _first, bytes) {
    out.room(bytes.length);
    out.bytes(bytes);
  },
  separatorLength: () => 0,
  close() {},
};

/** The `segments` entry: its key and array. */
function msgpackSegments(out: AnswerBuffer, ids: Uint32Array, n: number): void {
  out.room(MP_SEGMENTS.length + 5 + n * 5);
  out.bytes(MP_SEGMENTS);
  out.msgpackArray(n);
  for (let i = 0; i < n; i++) out.msgpackUint(ids[i]!);
}

/** `{"uid":…,"segments":[…]}`, valid until `out`'s next answer. */
export function jsonAnswer(out: AnswerBuffer, uid: string | null, ids: Uint32Array, n: number): Buffer {
  out.reset();
  JSON_ITEMS.item(out, true, uid, ids, n, null, '');
  return out.view();
}

/** `{uid, segments}` in MessagePack, valid until `out`'s next answer. */
export function msgpackAnswer(out: AnswerBuffer, uid: string | null, ids: Uint32Array, n: number): Buffer {
  out.reset();
  MSGPACK_ITEMS.item(out, true, uid, ids, n, null, '');
  return out.view();
}

/** `key=` as bytes, for kvAnswer and gamAnswer (keys are ASCII: config/schema.ts). */
export function keyPrefix(key: string): Buffer {
  return Buffer.from(key + '=', 'latin1');
}

/** `key=v1,v2`, valid until `out`'s next answer. */
export function kvAnswer(out: AnswerBuffer, prefix: Uint8Array, ids: Uint32Array, n: number): Buffer {
  out.reset();
  out.room(prefix.length);
  out.bytes(prefix);
  out.idList(ids, n);
  return out.view();
}

/**
 * Google Ad Manager-style key-values: `key=v1,v2`, at most `maxBytes` long.
 * Whole values past the cap are dropped (a partial id would target the wrong
 * segment); ids are ascending, so the same user always keeps the same prefix.
 */
export function gamAnswer(
  out: AnswerBuffer,
  prefix: Uint8Array,
  ids: Uint32Array,
  n: number,
  maxBytes: number,
): Buffer {
  out.reset();
  out.room(prefix.length + n * MAX_ID_BYTES);
  out.bytes(prefix);
  for (let i = 0; i < n; i++) {
    const v = ids[i]!;
    if (out.pos + (i === 0 ? 0 : 1) + decimalLength(v) > maxBytes) break;
    if (i > 0) out.byte(44);
    out.digits(v);
  }
  return out.view();
}

/** The keys and cap of the text formats, from the settings (SEGD_KV_KEY, SEGD_GAM_KEY, SEGD_GAM_MAX_BYTES). */
export interface TextKeys {
  kv: Uint8Array;
  gam: Uint8Array;
  gamMaxBytes: number;
}

/** A GET answer in `format`: `who` holding the first `n` of `ids`; valid until `out`'s next answer. */
export function answerIn(
  format: Format,
  out: AnswerBuffer,
  keys: TextKeys,
  who: string | null,
  ids: Uint32Array,
  n: number,
): Buffer {
  if (format === 'json') return jsonAnswer(out, who, ids, n);
  if (format === 'kv') return kvAnswer(out, keys.kv, ids, n);
  if (format === 'gam') return gamAnswer(out, keys.gam, ids, n, keys.gamMaxBytes);
  return msgpackAnswer(out, who, ids, n);
}
