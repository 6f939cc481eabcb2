// The insights index on disk, beside the LMDB env: the active generation's
// bitmaps, written whole to a temp file and renamed, so a crash leaves the old
// file or the new one. Used at start only when its sequence matches the
// store's `insights.seq` (insights-index.ts); otherwise the index is rebuilt.
//
//   0  8  magic "SEGDINS1"
//   8  4  u32 format version (2: the ordinals are the ones the members values carry)
//  12  4  u32 generation
//  16  8  f64 insights sequence it covers
//  24  4  u32 next ordinal
//  28  4  u32 segments
//  32  4  u32 CRC-32 of the body
//  36  8  f64 store write sequence (meta "writes") it covers
//  44 20  reserved (zero)
//  64  …  body: u32 length + the users bitmap; per segment u32 id, f64 updatedAt, u32 length + its bitmap
//         (bitmaps in CRoaring's portable-stable "croaring" format)
import { open, rename, readFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import roaring from 'roaring';
import type { IndexState } from './insights-index.js';

const { RoaringBitmap32 } = roaring;
const MAGIC = Buffer.from('SEGDINS1');
const VERSION = 2;
const HEADER = 64;

export class IndexFileError extends Error {}

/** Serialises `s` now (synchronously, so it is the state of one moment) and writes it out. */
export async function saveIndex(path: string, s: IndexState): Promise<number> {
  const parts: Buffer[] = [];
  const u = bytes(s.users.serialize('croaring'));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(u.length, 0);
  parts.push(len, u);
  for (const [id, bm] of s.segments) {
    const b = bytes(bm.serialize('croaring'));
    const head = Buffer.alloc(16);
    head.writeUInt32LE(id, 0);
    head.writeDoubleLE(s.updatedAt.get(id) ?? 0, 4);
    head.writeUInt32LE(b.length, 12);
    parts.push(head, b);
  }
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(s.generation, 12);
  head.writeDoubleLE(s.seq, 16);
  head.writeUInt32LE(s.next, 24);
  head.writeUInt32LE(s.segments.size, 28);
  head.writeUInt32LE(crc32(body), 32);
  head.writeDoubleLE(s.writes, 36);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writev([head, body]);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return HEADER + body.length;
}

/** Reads and verifies a saved index; throws IndexFileError saying what is wrong. */
export async function loadIndex(path: string): Promise<IndexState> {
  const buf = await readFile(path);
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) throw new IndexFileError('not a segd insights file');
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) throw new IndexFileError(`format version ${version}, expected ${VERSION}`);
  const body = buf.subarray(HEADER);
  if (crc32(body) !== buf.readUInt32LE(32)) throw new IndexFileError('checksum mismatch');
  const n = buf.readUInt32LE(28);
  let off = 0;
  const take = (len: number) => {
    if (off + len > body.length) throw new IndexFileError('truncated');
    const b = body.subarray(off, off + len);
    off += len;
    return b;
  };
  const users = RoaringBitmap32.deserialize(take(take(4).readUInt32LE(0)), 'croaring');
  const segments = new Map<number, InstanceType<typeof RoaringBitmap32>>();
  const updatedAt = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const head = take(16);
    const id = head.readUInt32LE(0);
    segments.set(id, RoaringBitmap32.deserialize(take(head.readUInt32LE(12)), 'croaring'));
    updatedAt.set(id, head.readDoubleLE(4));
  }
  if (off !== body.length) throw new IndexFileError('trailing bytes');
  return {
    generation: buf.readUInt32LE(12),
    seq: buf.readDoubleLE(16),
    writes: buf.readDoubleLE(36),
    next: buf.readUInt32LE(24),
    users,
    segments,
    updatedAt,
  };
}

/** Roaring's serialised bytes as a Node Buffer (its typings name a Buffer of their own). */
function bytes(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}
