// The `members` value layout: compact, fixed-width, little-endian.
//
//   u32 updatedAt (unix seconds of the newest change applied to this user)
//   n × (u32 segment id, u32 expiresAt unix seconds; 0 = never)  — sorted by id
//
// 4 + 8n bytes; a user in 10 segments costs 84 bytes. Readers decode straight
// from LMDB's memory map (getBinaryFast) without building objects.

export const HEADER_BYTES = 4;
export const PAIR_BYTES = 8;
export const MAX_SEGMENT_ID = 0xffff_ffff;

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
  return buf.length >= HEADER_BYTES && (buf.length - HEADER_BYTES) % PAIR_BYTES === 0;
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
  if (buf === undefined || size < HEADER_BYTES || (size - HEADER_BYTES) % PAIR_BYTES !== 0) return 0;
  // Bytes assembled by hand: no view object per value (the writer's every change passes here).
  let n = 0;
  for (let off = HEADER_BYTES; off < size && n < out.length; off += PAIR_BYTES)
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
