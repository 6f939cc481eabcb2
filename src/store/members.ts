// The `members` value layout: compact, fixed-width, little-endian.
//
//   u32 updatedAt (unix seconds of the newest change applied to this user)
//   n × (u32 segment id, u32 expiresAt unix seconds; 0 = never)  — sorted by id
//
// 4 + 8n bytes; a user in 10 segments costs 84 bytes. Readers decode straight
// from LMDB's memory map (getBinaryFast) without building objects.
//
// With the insights index on, a value with pairs ends with one more u32: the
// user's ordinal in that index (insights/generation-index.ts), 4 + 8n + 4
// bytes. The pairs end where they always do, so a reader stepping over pairs
// (`off + PAIR_BYTES <= length`) never sees it, and the two lengths cannot be
// confused: 4 + 8n is never a multiple of 8, 4 + 8n + 4 always is. A value
// without pairs (a tombstone) never carries one.

export const HEADER_BYTES = 4;
export const PAIR_BYTES = 8;
export const MAX_SEGMENT_ID = 0xffff_ffff;
/** What ordinalOf answers for a value that carries none. */
export const NO_ORDINAL = 0xffff_ffff;
export const ORDINAL_BYTES = 4;

export interface Membership {
  id: number;
  /** Unix seconds; 0 = never expires. */
  expiresAt: number;
}

export function encodeMembers(updatedAt: number, members: readonly Membership[]): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + PAIR_BYTES * members.length);
  buf.writeUInt32LE(updatedAt >>> 0, 0);
  let off = HEADER_BYTES;
  for (const m of members) {
    buf.writeUInt32LE(m.id >>> 0, off);
    buf.writeUInt32LE(m.expiresAt >>> 0, off + 4);
    off += PAIR_BYTES;
  }
  return buf;
}

/**
 * The value of `n` pairs from parallel arrays (ids ascending). `ordinalRoom`:
 * 4 more bytes at the end for the ordinal the insights index writes there
 * (withOrdinal, in place), given only when an index keeps ordinals and n > 0.
 */
export function encodePairs(
  updatedAt: number,
  ids: Uint32Array,
  exps: Uint32Array,
  n: number,
  ordinalRoom: boolean,
): Buffer {
  const size = HEADER_BYTES + PAIR_BYTES * n;
  const buf = Buffer.allocUnsafe(ordinalRoom && n > 0 ? size + ORDINAL_BYTES : size);
  buf.writeUInt32LE(updatedAt >>> 0, 0);
  for (let k = 0, off = HEADER_BYTES; k < n; k++, off += PAIR_BYTES) {
    buf.writeUInt32LE(ids[k]!, off);
    buf.writeUInt32LE(exps[k]!, off + 4);
  }
  if (buf.length !== size) clearOrdinal(buf, size);
  return buf;
}

/**
 * Marks the ordinal's room after a value of `size` bytes as holding none,
 * until the index writes it (withOrdinal): never left as stale heap bytes.
 * Returns the value's length with the room.
 */
export function clearOrdinal(buf: Buffer, size: number): number {
  buf.writeUInt32LE(NO_ORDINAL, size);
  return size + ORDINAL_BYTES;
}

/** Full decode, for the writer (which needs the whole set to merge). */
export function decodeMembers(buf: Uint8Array): { updatedAt: number; members: Membership[] } {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const updatedAt = b.readUInt32LE(0);
  const members: Membership[] = [];
  for (let off = HEADER_BYTES; off + PAIR_BYTES <= b.length; off += PAIR_BYTES) {
    members.push({ id: b.readUInt32LE(off), expiresAt: b.readUInt32LE(off + 4) });
  }
  return { updatedAt, members };
}

export function isValidMembersValue(buf: Uint8Array): boolean {
  return isValidSize(buf.length);
}

/** 4 + 8n bytes, or 4 + 8n + 4 with n ≥ 1 (a trailing ordinal). */
function isValidSize(size: number): boolean {
  const rest = size - HEADER_BYTES;
  return rest >= 0 && (rest % PAIR_BYTES === 0 || (rest > PAIR_BYTES && rest % PAIR_BYTES === ORDINAL_BYTES));
}

/** The insights ordinal a members value carries (NO_ORDINAL: none). */
export function ordinalOf(buf: Uint8Array | undefined, size = buf?.length ?? 0): number {
  if (buf === undefined || size < HEADER_BYTES + PAIR_BYTES + ORDINAL_BYTES || size % PAIR_BYTES !== 0)
    return NO_ORDINAL;
  return (buf[size - 4]! | (buf[size - 3]! << 8) | (buf[size - 2]! << 16) | (buf[size - 1]! << 24)) >>> 0;
}

/**
 * `buf` (a value with pairs) carrying ordinal `ord`: written in place when it
 * carries one already, otherwise a copy with it appended.
 */
export function withOrdinal(buf: Buffer, ord: number): Buffer {
  let out = buf;
  if (buf.length % PAIR_BYTES !== 0) {
    out = Buffer.allocUnsafe(buf.length + ORDINAL_BYTES);
    buf.copy(out, 0);
  }
  out.writeUInt32LE(ord >>> 0, out.length - ORDINAL_BYTES);
  return out;
}

/**
 * Live segment ids, ascending, written into `out` (reused by the caller to
 * avoid an allocation per lookup). Returns how many were written.
 */
export function liveSegments(buf: Buffer, nowSec: number, out: Uint32Array): number {
  let n = 0;
  const end = buf.length - PAIR_BYTES;
  for (let off = HEADER_BYTES; off <= end && n < out.length; off += PAIR_BYTES) {
    const exp = buf.readUInt32LE(off + 4);
    if (exp === 0 || exp > nowSec) out[n++] = buf.readUInt32LE(off);
  }
  return n;
}

/** Segment ids of a members value (ascending), expired ones included, written into `out`; returns how many. */
export function segmentIds(buf: Uint8Array | undefined, out: Uint32Array, size = buf?.length ?? 0): number {
  if (buf === undefined || !isValidSize(size)) return 0;
  // Bytes assembled by hand: no view object per value (the writer's every change passes here).
  let n = 0;
  for (let off = HEADER_BYTES; off + PAIR_BYTES <= size && n < out.length; off += PAIR_BYTES)
    out[n++] = (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
  return n;
}

/**
 * The earliest expiresAt after `nowSec` among the pairs (0: none): until
 * then, liveSegments(buf, t, …) gives the same ids for any t ≥ nowSec.
 */
export function nextExpiry(buf: Buffer, nowSec: number): number {
  let next = 0;
  const end = buf.length - PAIR_BYTES;
  for (let off = HEADER_BYTES; off <= end; off += PAIR_BYTES) {
    const exp = buf.readUInt32LE(off + 4);
    if (exp > nowSec && (next === 0 || exp < next)) next = exp;
  }
  return next;
}
