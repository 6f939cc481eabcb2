// A user's membership set after a feed change: the rules every write of
// memberships follows (a batch, a snapshot's replay at its flip).
//
// SetEdit holds the set before and after in typed arrays it reuses from one
// change to the next: the writer's loop runs once per record of every feed,
// and with it a record costs no object, Map or array of its own — only the
// value written (store/members.ts encodes it).
import { HEADER_BYTES, PAIR_BYTES, isValidMembersValue, type Membership } from '../store/members.js';
import type { Change } from './records.js';

/** Where the count changes of an edit go (loader/segment-counts.ts). */
export interface CountDeltas {
  add(id: number, d: number): void;
}

/** A change's own pairs, sorted by id with the last of duplicate ids kept: DROP marks an id it removes. */
const DROP = -1;
/** Changes with more ids than this are sorted by index, not by insertion. */
const INSERTION_MAX = 32;

export class SetEdit {
  /** The set as stored before the change (expired pairs included), ids ascending. */
  beforeIds = new Uint32Array(32);
  beforeExps = new Uint32Array(32);
  nb = 0;
  /** A valid value was stored (possibly a tombstone, nb = 0). */
  had = false;
  /** The stored value's updatedAt (0 when none). */
  updatedAt = 0;
  /** The set after the change, ids ascending, expired pairs dropped. */
  ids = new Uint32Array(32);
  exps = new Uint32Array(32);
  n = 0;
  /** The change's pairs (ch: exp or DROP), sorted by id. */
  private chIds = new Uint32Array(16);
  private chExps = new Float64Array(16);
  private nc = 0;
  /** sortLarge's index permutation, reused. */
  private order = new Uint32Array(0);

  /** Reads the stored value (undefined: none; an invalid one counts as none). */
  load(buf: Uint8Array | undefined): void {
    this.nb = 0;
    this.updatedAt = 0;
    this.had = buf !== undefined && isValidMembersValue(buf);
    if (!this.had) return;
    const b = buf!;
    this.updatedAt = u32(b, 0);
    // A trailing ordinal (members.ts) is not a pair: pairs end at 4 + 8n.
    const n = (b.length - HEADER_BYTES) >> 3;
    if (n > this.beforeIds.length) this.growBefore(n);
    for (let k = 0, off = HEADER_BYTES; k < n; k++, off += PAIR_BYTES) {
      this.beforeIds[k] = u32(b, off);
      this.beforeExps[k] = u32(b, off + 4);
    }
    this.nb = n;
  }

  /** As load, from decoded memberships (undefined: none). */
  loadMembers(ms: readonly Membership[] | undefined, updatedAt = 0): void {
    this.had = ms !== undefined;
    this.updatedAt = updatedAt;
    const n = ms?.length ?? 0;
    if (n > this.beforeIds.length) this.growBefore(n);
    for (let k = 0; k < n; k++) {
      this.beforeIds[k] = ms![k]!.id;
      this.beforeExps[k] = ms![k]!.expiresAt;
    }
    this.nb = n;
  }

  /**
   * The set after `ch` into ids/exps/n: for delete, none; for replace, the
   * change's pairs; for add, the stored live pairs with the change's over
   * them; for remove, the stored live pairs without the change's ids. Of
   * duplicate ids in one change the last wins, and a pair whose TTL is past
   * when applied (an old ts + a short ttl) removes its id rather than adding it.
   */
  apply(ch: Change, nowSec: number): void {
    this.n = 0;
    if (ch.op === 'delete') return;
    this.sortChange(ch, nowSec);
    const keepOld = ch.op !== 'replace';
    const nb = keepOld ? this.nb : 0;
    const need = nb + this.nc;
    if (need > this.ids.length) this.growAfter(need);
    const { beforeIds: bi, beforeExps: be, chIds: ci, chExps: ce, ids, exps } = this;
    let i = 0;
    let j = 0;
    let n = 0;
    while (i < nb || j < this.nc) {
      if (j >= this.nc || (i < nb && bi[i]! < ci[j]!)) {
        const e = be[i]!;
        if (e === 0 || e > nowSec) {
          ids[n] = bi[i]!;
          exps[n++] = e;
        }
        i++;
        continue;
      }
      if (i < nb && bi[i] === ci[j]) i++; // the change's pair wins
      const e = ce[j]!;
      if (e !== DROP) {
        ids[n] = ci[j]!;
        exps[n++] = e;
      }
      j++;
    }
    this.n = n;
  }

  /**
   * Memberships added plus removed between the stored set and the new one
   * (a pair whose expiry changed is neither); each reaches `counts` as +1 or
   * −1 (every stored pair counts, expired-but-unswept included).
   */
  diff(counts: CountDeltas | null): number {
    const { beforeIds: bi, ids } = this;
    const nb = this.nb;
    const na = this.n;
    let i = 0;
    let j = 0;
    let changed = 0;
    while (i < nb || j < na) {
      if (j >= na || (i < nb && bi[i]! < ids[j]!)) {
        counts?.add(bi[i]!, -1);
        changed++;
        i++;
      } else if (i >= nb || ids[j]! < bi[i]!) {
        counts?.add(ids[j]!, +1);
        changed++;
        j++;
      } else {
        i++;
        j++;
      }
    }
    return changed;
  }

  /**
   * Whether the new set is the stored one but for expiries moved out by less
   * than `slack` seconds each: no id added, none dropped (an expired pair the
   * change would clear counts as dropped), none shortened, none made
   * permanent or finite. Such a change need not be written.
   */
  sameWithin(slack: number): boolean {
    if (!this.had || this.n !== this.nb) return false;
    const { ids, exps, beforeIds: bi, beforeExps: be } = this;
    for (let k = 0; k < this.n; k++) {
      if (ids[k] !== bi[k]) return false;
      const a = exps[k]!;
      const b = be[k]!;
      if (a === b) continue;
      if (a === 0 || b === 0 || a < b || a - b >= slack) return false;
    }
    return true;
  }

  /** The earliest expiresAt of the new set (Infinity: none expires). */
  nextExpiry(): number {
    let next = Infinity;
    for (let k = 0; k < this.n; k++) {
      const e = this.exps[k]!;
      if (e !== 0 && e < next) next = e;
    }
    return next;
  }

  /** The new set as memberships. */
  members(): Membership[] {
    const out: Membership[] = [];
    for (let k = 0; k < this.n; k++) out.push({ id: this.ids[k]!, expiresAt: this.exps[k]! });
    return out;
  }

  /** The change's pairs, sorted by id (stable), the last of duplicate ids kept. */
  private sortChange(ch: Change, nowSec: number): void {
    const m = ch.ids.length;
    if (m > this.chIds.length) {
      const cap = Math.max(m, this.chIds.length * 2);
      this.chIds = new Uint32Array(cap);
      this.chExps = new Float64Array(cap);
    }
    const { chIds: ci, chExps: ce } = this;
    if (m > INSERTION_MAX) {
      this.sortLarge(ch, m, nowSec);
      return;
    }
    let n = 0;
    for (let k = 0; k < m; k++) {
      const id = ch.ids[k]!;
      const e = expOf(ch, k, nowSec);
      // Insertion sort: a record holds a few ids; an equal id replaces the earlier one (the last wins).
      let p = n;
      while (p > 0 && ci[p - 1]! > id) p--;
      if (p > 0 && ci[p - 1] === id) {
        ce[p - 1] = e;
        continue;
      }
      ci.copyWithin(p + 1, p, n);
      ce.copyWithin(p + 1, p, n);
      ci[p] = id;
      ce[p] = e;
      n++;
    }
    this.nc = n;
  }

  /**
   * A large change sorted by index (by id, stably), so the last of equal
   * ids is the last of its run: insertion sort is quadratic in the ids, and a
   * record of 10,000 ids in descending order took 42 ms of the writer.
   */
  private sortLarge(ch: Change, m: number, nowSec: number): void {
    const chIds = ch.ids;
    if (m > this.order.length) this.order = new Uint32Array(Math.max(m, this.order.length * 2));
    const order = this.order.subarray(0, m);
    for (let k = 0; k < m; k++) order[k] = k;
    order.sort((a, b) => chIds[a]! - chIds[b]!); // stable (ES2019): equal ids stay in position order
    const { chIds: ci, chExps: ce } = this;
    let n = 0;
    for (let r = 0; r < m; r++) {
      const k = order[r]!;
      if (n > 0 && ci[n - 1] === chIds[k]) n--; // a later pair of the same id replaces the earlier
      ci[n] = chIds[k]!;
      ce[n++] = expOf(ch, k, nowSec);
    }
    this.nc = n;
  }

  private growBefore(n: number): void {
    const cap = Math.max(n, this.beforeIds.length * 2);
    this.beforeIds = new Uint32Array(cap);
    this.beforeExps = new Uint32Array(cap);
  }

  private growAfter(n: number): void {
    const cap = Math.max(n, this.ids.length * 2);
    this.ids = new Uint32Array(cap);
    this.exps = new Uint32Array(cap);
  }
}

/** The expiry the change gives its k-th pair: 0 = none, DROP = it removes the id (a remove, or a TTL already past). */
function expOf(ch: Change, k: number, nowSec: number): number {
  if (ch.op === 'remove') return DROP;
  const ttl = ch.ttls[k] ?? 0;
  const e = ttl === 0 ? 0 : ch.ts + ttl;
  return e !== 0 && e <= nowSec ? DROP : e;
}

function u32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

const scratch = new SetEdit();

/** The user's membership set after `ch`, sorted by id, expired pairs dropped (SetEdit's rules, as objects). */
export function nextMembers(old: readonly Membership[] | undefined, ch: Change, nowSec: number): Membership[] {
  scratch.loadMembers(old);
  scratch.apply(ch, nowSec);
  return scratch.members();
}
