// The TTL sweep: expired memberships are never returned (checked at read
// time), but they take space and inflate segment counts until removed. The
// sweeper walks the store in key order, a chunk at a time, and hands the users
// holding expired pairs to the writer in small transactions, yielding between
// chunks so lookups (other threads) and the loader (this one) never stall.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { HEADER_BYTES, PAIR_BYTES } from '../store/members.js';
import { nowSeconds } from '../lookup/segments.js';
import type { Writer } from './writer.js';

const CHUNK = 2000;

function hasExpired(buf: Buffer, now: number): boolean {
  for (let off = HEADER_BYTES + 4; off < buf.length; off += PAIR_BYTES) {
    const exp = buf.readUInt32LE(off);
    if (exp !== 0 && exp <= now) return true;
  }
  return false;
}

export interface SweepPass {
  scanned: number;
  users: number;
  removed: number;
  ms: number;
}

export class Sweeper {
  private stopped = false;

  constructor(private readonly store: Store, private readonly writer: Writer, private readonly log: Logger) {}

  stop(): void {
    this.stopped = true;
  }

  /** One pass over the whole store. */
  async pass(): Promise<SweepPass> {
    const t0 = performance.now();
    const res: SweepPass = { scanned: 0, users: 0, removed: 0, ms: 0 };
    let start: string | undefined;
    for (;;) {
      const now = nowSeconds();
      const expired: string[] = [];
      let last: string | undefined;
      let n = 0;
      // snapshot:false and no await inside the scan: no read snapshot is pinned.
      for (const { key, value } of this.store.members.getRange({ start, snapshot: false })) {
        const uid = key as string;
        if (uid === start) continue; // the range starts at the last key of the previous chunk
        if (hasExpired(value as Buffer, now)) expired.push(uid);
        last = uid;
        if (++n === CHUNK) break;
      }
      res.scanned += n;
      if (expired.length) {
        const r = this.writer.sweep(expired, now);
        res.users += r.users;
        res.removed += r.removed;
      }
      if (n < CHUNK || last === undefined || this.stopped) break;
      start = last;
      await yieldToLoop();
    }
    res.ms = performance.now() - t0;
    if (res.removed) this.log.info(res, 'ttl sweep removed expired memberships');
    return res;
  }
}
