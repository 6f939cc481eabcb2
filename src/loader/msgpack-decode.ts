// Decoding a stream of msgpack records (inbox files, HTTP push, NATS), one
// record at a time, so that one bad record is one reject:
//   - 64-bit integers (0xcf uint64, 0xd3 int64: what Go and Java encoders
//     emit for int64 fields) decode as numbers when they fit exactly (|n| ≤
//     2^53); larger ones stay BigInt and fail the field's range check with a
//     reason like any other out-of-range number.
//   - a record msgpackr cannot decode although its bytes are well formed
//     (nested deeper than the decoder's recursion can go, an unknown
//     extension) is skipped by walking its structure iteratively
//     (`recordEnd`) and reported as undecodable; the records after it go on.
//   - bytes that are not msgpack at all end the stream: msgpack has no
//     delimiter to resynchronise on.
import { Unpackr } from 'msgpackr';

// 'auto' is in msgpackr's decoder but not yet in its type declarations.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' as 'number' });

/** What a decoded stream reports, record by record; `end` is the offset just past the record in `buf`. */
interface DecodeSink {
  record(value: unknown, end: number): void;
  /** A complete record that cannot be decoded: a reject, and the stream goes on after it. */
  undecodable(reason: string, end: number): void;
}

export type DecodeEnd =
  /** Every record in the buffer was reported. */
  | { kind: 'done' }
  /** `buf[at…]` is the start of a record cut by the end of the buffer. */
  | { kind: 'incomplete'; at: number }
  /** `buf[at…]` is not msgpack: nothing after it can be read. */
  | { kind: 'malformed'; at: number; reason: string }
  /** `limit` records were reported; `buf[at…]` is still to decode. */
  | { kind: 'paused'; at: number };

/**
 * Reports each record of `buf` in order, at most `limit` of them; says how the
 * buffer ended. Errors thrown by the sink propagate.
 */
export function decodeRecords(buf: Uint8Array, sink: DecodeSink, limit = Infinity): DecodeEnd {
  let pos = 0;
  let reported = 0;
  while (pos < buf.length) {
    if (reported >= limit) return { kind: 'paused', at: pos };
    let end = pos;
    let sinkError: { err: unknown } | null = null;
    try {
      unpackr.unpackMultiple(pos === 0 ? buf : buf.subarray(pos), (value: unknown, _start?: number, e?: number) => {
        end = pos + (e ?? 0);
        try {
          sink.record(value, end);
        } catch (err) {
          sinkError = { err };
          throw err;
        }
        return ++reported < limit; // false stops the decoder
      });
      if (end < buf.length && reported >= limit) return { kind: 'paused', at: end };
      return { kind: 'done' };
    } catch (err) {
      if (sinkError !== null) throw (sinkError as { err: unknown }).err;
      pos = end; // the records before it were reported
      if ((err as { incomplete?: boolean }).incomplete) return { kind: 'incomplete', at: pos };
      const skip = recordEnd(buf, pos);
      if (skip === INCOMPLETE) return { kind: 'incomplete', at: pos };
      const reason = `${(err as Error).name}: ${(err as Error).message}`.slice(0, 200);
      if (skip === MALFORMED) return { kind: 'malformed', at: pos, reason };
      sink.undecodable(`msgpack record cannot be decoded (${reason})`, skip);
      reported++;
      pos = skip;
    }
  }
  return { kind: 'done' };
}

export const INCOMPLETE = -1;
export const MALFORMED = -2;

/**
 * The offset just past the msgpack value starting at `buf[at]`, found without
 * decoding it and without recursion (a count of the values still to skip);
 * INCOMPLETE when the buffer ends first, MALFORMED on a byte that starts no
 * msgpack value (0xc1).
 */
export function recordEnd(buf: Uint8Array, at: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = at;
  let left = 1; // values still to skip
  while (left > 0) {
    if (pos >= buf.length) return INCOMPLETE;
    const t = buf[pos]!;
    left--;
    let head = 1; // bytes of the type byte and its length field
    let body = 0; // bytes of payload after them
    let items = 0; // nested values that follow
    const need = (n: number) => pos + 1 + n <= buf.length;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) {
      // fixint, nil, false, true
    } else if (t <= 0x8f) items = 2 * (t & 0x0f);
    else if (t <= 0x9f) items = t & 0x0f;
    else if (t <= 0xbf) body = t & 0x1f;
    else if (t === 0xc1) return MALFORMED;
    else if (t === 0xc4 || t === 0xd9) {
      if (!need(1)) return INCOMPLETE;
      head = 2;
      body = buf[pos + 1]!;
    } else if (t === 0xc5 || t === 0xda) {
      if (!need(2)) return INCOMPLETE;
      head = 3;
      body = view.getUint16(pos + 1);
    } else if (t === 0xc6 || t === 0xdb) {
      if (!need(4)) return INCOMPLETE;
      head = 5;
      body = view.getUint32(pos + 1);
    } else if (t === 0xc7) {
      if (!need(1)) return INCOMPLETE;
      head = 3;
      body = buf[pos + 1]!;
    } else if (t === 0xc8) {
      if (!need(2)) return INCOMPLETE;
      head = 4;
      body = view.getUint16(pos + 1);
    } else if (t === 0xc9) {
      if (!need(4)) return INCOMPLETE;
      head = 6;
      body = view.getUint32(pos + 1);
    } else if (t === 0xca) body = 4;
    else if (t === 0xcb) body = 8;
    else if (t === 0xcc || t === 0xd0) body = 1;
    else if (t === 0xcd || t === 0xd1) body = 2;
    else if (t === 0xce || t === 0xd2) body = 4;
    else if (t === 0xcf || t === 0xd3) body = 8;
    else if (t >= 0xd4 && t <= 0xd8)
      body = 1 + (1 << (t - 0xd4)); // fixext: type byte + 1..16
    else if (t === 0xdc || t === 0xde) {
      if (!need(2)) return INCOMPLETE;
      head = 3;
      items = view.getUint16(pos + 1) * (t === 0xde ? 2 : 1);
    } else {
      // 0xdd array32, 0xdf map32
      if (!need(4)) return INCOMPLETE;
      head = 5;
      items = view.getUint32(pos + 1) * (t === 0xdf ? 2 : 1);
    }
    pos += head + body;
    left += items;
  }
  return pos > buf.length ? INCOMPLETE : pos;
}
