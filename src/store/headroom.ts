// Room kept allocated in the data file for a writable map (lmdb-js
// `useWritemap`).
//
// With a writable map LMDB writes a transaction's pages in place, through the
// memory map of a sparse file (it sets the file's size to the map size with
// ftruncate): a page's disk blocks are allocated when it is first written, and
// on a full disk that write faults with SIGBUS and the process dies. So the
// file's blocks are kept allocated from its start to `headroom` bytes (plus
// what the coming transaction may take) beyond LMDB's last used page, before
// any write transaction begins; a disk that cannot give them makes the write
// fail with ENOSPC before it touches the map, which is the store-full path
// (write-failure.ts): the transaction is refused whole, and retried once space
// is back. LMDB takes new pages only from past its last used page; pages below
// it were written before or allocated here.
//
// Once the disk refused an extension the store counts as full until an
// extension succeeds: every write transaction retries it first, so a small
// write is refused while a big one cannot go, as without a writable map.
//
// The allocation is util-linux `fallocate` (mode 0, or --keep-size past the
// end of the file, whose size LMDB keeps at the map size): Node has no
// fallocate binding, zeros written with pwrite would race LMDB's own writes
// through the map and move the file's size under it, and a native addon for
// one system call is a build step. It runs once per `headroom` bytes the file
// grows (a few milliseconds each).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';

/** The default room past the last used page: covers a transaction that says nothing of its size. */
export const DEFAULT_HEADROOM_BYTES = 64 * 1024 * 1024;

/**
 * The most new pages one record of a writer transaction takes: its leaf and
 * the leaf's split (branch pages, counts, the checkpoint and the free list
 * are shared by the transaction's records and come out of the headroom).
 */
export const PAGES_PER_RECORD = 2;

const MDB_MAGIC = 0xbeefc0de;

/** An error with the errno code the store-full path knows (write-failure.ts stallReason). */
export class AllocationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AllocationError';
  }
}

/**
 * The end (bytes) of the last used page of the LMDB file at `file`, from its
 * newer meta page, or 0 if there is no such file. Read before LMDB opens it,
 * so the room is there for the writes the opening makes.
 */
export function usedBytes(file: string): number {
  if (!existsSync(file)) return 0;
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(256);
    if (readSync(fd, head, 0, head.length, 0) < head.length) return 0;
    // The meta follows the page header (its size is lmdb-js's build's): find the magic.
    let h = -1;
    for (let o = 0; o <= 64; o += 4) if (head.readUInt32LE(o) === MDB_MAGIC) h = o;
    if (h < 0) throw new Error(`${file}: not an LMDB data file (no meta page)`);
    // MDB_meta: magic u32, version u32, address 8, mapsize 8, dbs[2] of 48 bytes
    // (the first's md_pad is the page size), last_pg 8, txnid 8.
    const pageSize = head.readUInt32LE(h + 24);
    const meta = (page: Buffer) => ({
      lastPage: Number(page.readBigUInt64LE(h + 120)),
      txnid: Number(page.readBigUInt64LE(h + 128)),
    });
    const second = Buffer.alloc(256);
    readSync(fd, second, 0, second.length, pageSize);
    const a = meta(head);
    const b = second.readUInt32LE(h) === MDB_MAGIC ? meta(second) : a;
    return ((b.txnid > a.txnid ? b : a).lastPage + 1) * pageSize;
  } finally {
    closeSync(fd);
  }
}

/** Allocates `[offset, offset + length)` of `file`; `keepSize`: without changing its size. */
function fallocate(file: string, offset: number, length: number, keepSize: boolean): void {
  const args = [...(keepSize ? ['--keep-size'] : []), '--offset', String(offset), '--length', String(length), file];
  const r = spawnSync('fallocate', args, { encoding: 'utf8' });
  if (r.status === 0) return;
  const why = (r.error?.message ?? r.stderr).trim();
  const code = /No space left/i.test(why) ? 'ENOSPC' : /quota/i.test(why) ? 'EDQUOT' : 'EALLOC';
  throw new AllocationError(code, `fallocate ${args.join(' ')}: ${why}`);
}

export class Headroom {
  /** The file's blocks are allocated up to here (bytes). */
  private allocated = 0;
  /** The disk refused the last extension: retried before every write until it succeeds. */
  private refused = false;

  constructor(
    readonly file: string,
    readonly headroom: number = DEFAULT_HEADROOM_BYTES,
  ) {}

  /**
   * Before LMDB opens the file: allocates it up to the room past its last
   * used page, and returns the map size to open with: LMDB sets the file's
   * size to it, so it must not cut the room; twice the used size, as
   * lmdb-js grows the map, so that a growing store is not remapped (every
   * page faulted in again) soon after. Past the room the file is sparse and
   * unused. A new file is LMDB's to create (it writes its meta pages with
   * pwrite); `ensure` then allocates it.
   */
  beforeOpen(): number {
    const used = usedBytes(this.file);
    const end = roundUp(used + this.headroom);
    if (used > 0) {
      fallocate(this.file, 0, end, false);
      this.allocated = end;
    }
    return Math.max(end, roundUp(2 * used));
  }

  /** The end the file is allocated to (bytes). */
  get allocatedEnd(): number {
    return this.allocated;
  }

  /**
   * Before a write transaction that may take `need` bytes of new pages: keeps
   * the room allocated past `used` (the end of LMDB's last used page), or
   * throws AllocationError (ENOSPC when the disk is full). After a refusal,
   * a further headroom must be allocatable before anything is written.
   */
  ensure(used: number, need = 0): void {
    const want = used + need + this.headroom;
    if (want <= this.allocated && !this.refused) return;
    // A further headroom at once: one allocation per `headroom` bytes of growth.
    const end = roundUp(Math.max(want, this.allocated) + this.headroom);
    try {
      fallocate(this.file, this.allocated, end - this.allocated, true);
    } catch (err) {
      this.refused = true;
      throw err;
    }
    this.refused = false;
    this.allocated = end;
  }
}

const CHUNK = 1 << 20;
const roundUp = (n: number) => Math.ceil(n / CHUNK) * CHUNK;
