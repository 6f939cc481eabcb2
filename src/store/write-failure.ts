// A loader transaction that could not commit because the store cannot grow:
// the disk (or quota) is full, or LMDB's map size is reached. Nothing of the
// transaction is kept (LMDB aborts it; its checkpoint goes with it), readers
// keep the last committed data, and the same work succeeds once space is back.
import { statfsSync } from 'node:fs';

export type StallReason = 'disk_full' | 'map_full';
export const STALL_REASONS: readonly StallReason[] = ['disk_full', 'map_full'];

/** Below this, a failed write on the data dir's filesystem is taken for a full disk. */
const LOW_SPACE_BYTES = 64 * 1024 * 1024;

export class StoreFullError extends Error {
  constructor(
    readonly reason: StallReason,
    cause: unknown,
  ) {
    super(
      reason === 'map_full'
        ? 'the LMDB map size is reached (SEGD map size too small)'
        : "no space left on the data dir's filesystem",
      { cause },
    );
    this.name = 'StoreFullError';
  }
}

/**
 * Why a write failed, if for lack of space. LMDB reports a write that hit a
 * full filesystem as ENOSPC, or as EIO (seen on tmpfs: lmdb-js 3.5 surfaced
 * errno 5), so an I/O error counts as "full" when the filesystem has little space left.
 */
export function stallReason(err: unknown, dataDir: string): StallReason | null {
  const e = err as { code?: unknown; message?: unknown };
  const msg = String(e?.message ?? '');
  if (msg.includes('MDB_MAP_FULL') || e?.code === -30792) return 'map_full';
  const code = e?.code;
  if (code === 'ENOSPC' || code === 28 || code === 'EDQUOT' || code === 122 || /No space left/i.test(msg))
    return 'disk_full';
  if (code === 5 || code === 'EIO' || /Input\/output error/.test(msg))
    return freeBytes(dataDir) < LOW_SPACE_BYTES ? 'disk_full' : null;
  return null;
}

/** Bytes available to this process on the filesystem holding `dir` (Infinity if unknown). */
export function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return Infinity;
  }
}
