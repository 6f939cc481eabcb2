// The known-users filter on disk, beside the LMDB env. Written whole to a
// temp file and renamed, so a crash leaves the old file or the new one.
//
//   0  8  magic "SEGDBLM1"
//   8  4  u32 format version (2: the bits hold the ID graph's id keys as well
//          as users; a version-1 file, users only, is rebuilt)
//  12  4  u32 blocks
//  16  4  u32 k
//  20  4  u32 capacity
//  24  8  f64 target false-positive rate
//  32  8  f64 keys added
//  40  8  f64 store write sequence the bits cover (meta "writes")
//  48  4  u32 CRC-32 of the bits
//  52 12  reserved (zero)
//  64  …  the bits (blocks × 64 bytes)
import { open, rename, readFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { BlockedBloom, BLOCK_BITS, type BloomParams } from './blocked-bloom.js';

const MAGIC = Buffer.from('SEGDBLM1');
const VERSION = 2;
const HEADER = 64;

interface SavedFilter {
  filter: BlockedBloom;
  added: number;
  writes: number;
}

export class FilterFileError extends Error {}

export async function saveFilter(path: string, filter: BlockedBloom, added: number, writes: number): Promise<void> {
  const bits = new Uint8Array(filter.buffer);
  const copy = Buffer.from(bits); // a stable copy: the loader may set bits meanwhile
  const head = Buffer.alloc(HEADER);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(filter.params.blocks, 12);
  head.writeUInt32LE(filter.params.k, 16);
  head.writeUInt32LE(filter.params.capacity, 20);
  head.writeDoubleLE(filter.params.fpRate, 24);
  head.writeDoubleLE(added, 32);
  head.writeDoubleLE(writes, 40);
  head.writeUInt32LE(crc32(copy), 48);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writev([head, copy]);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/**
 * Records that the saved bits also cover store write sequence `writes` (no
 * user was added since they were saved): the 8-byte field is rewritten in
 * place, which is far cheaper than the whole file. Within the first sector,
 * so a crash leaves the old value or the new one; the old one only makes the
 * next start rebuild.
 */
export async function saveFilterWrites(path: string, writes: number): Promise<void> {
  const field = Buffer.alloc(8);
  field.writeDoubleLE(writes, 0);
  const fh = await open(path, 'r+');
  try {
    const head = Buffer.alloc(8);
    await fh.read(head, 0, 8, 0);
    if (!head.equals(MAGIC)) throw new FilterFileError('not a segd filter file');
    await fh.write(field, 0, 8, 40);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reads and verifies a saved filter; throws FilterFileError saying what is wrong. */
export async function loadFilter(path: string): Promise<SavedFilter> {
  const buf = await readFile(path);
  if (buf.length < HEADER || !buf.subarray(0, 8).equals(MAGIC)) throw new FilterFileError('not a segd filter file');
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) throw new FilterFileError(`format version ${version}, expected ${VERSION}`);
  const params: BloomParams = {
    blocks: buf.readUInt32LE(12),
    k: buf.readUInt32LE(16),
    capacity: buf.readUInt32LE(20),
    fpRate: buf.readDoubleLE(24),
  };
  const size = (params.blocks * BLOCK_BITS) / 8;
  if (params.blocks === 0 || params.k < 1 || params.k > 16) throw new FilterFileError('bad parameters');
  if (buf.length !== HEADER + size)
    throw new FilterFileError(`truncated: ${buf.length - HEADER} of ${size} bytes of bits`);
  const bits = buf.subarray(HEADER);
  if (crc32(bits) !== buf.readUInt32LE(48)) throw new FilterFileError('checksum mismatch');
  const sab = new SharedArrayBuffer(size);
  new Uint8Array(sab).set(bits);
  return { filter: new BlockedBloom(params, sab), added: buf.readDoubleLE(32), writes: buf.readDoubleLE(40) };
}
