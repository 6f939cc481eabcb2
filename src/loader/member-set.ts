// A user's membership set after a feed change: the rules every write of
// memberships follows (a batch, a snapshot's replay at its flip). Pure.
import type { Membership } from '../store/members.js';
import type { Change } from './records.js';

/** The user's membership set after `ch`, sorted by id, expired pairs dropped. */
export function nextMembers(old: readonly Membership[] | undefined, ch: Change, nowSec: number): Membership[] {
  if (ch.op === 'delete') return [];
  if (old === undefined && ch.op !== 'remove') return freshMembers(ch, nowSec);
  const map = new Map<number, number>();
  if (old && ch.op !== 'replace') {
    for (const m of old) if (m.expiresAt === 0 || m.expiresAt > nowSec) map.set(m.id, m.expiresAt);
  }
  if (ch.op === 'remove') {
    for (const id of ch.ids) map.delete(id);
  } else {
    for (let i = 0; i < ch.ids.length; i++) {
      const ttl = ch.ttls[i] ?? 0;
      const exp = ttl === 0 ? 0 : ch.ts + ttl;
      // A TTL already past when applied (old ts + short ttl) adds nothing.
      if (exp !== 0 && exp <= nowSec) map.delete(ch.ids[i]!);
      else map.set(ch.ids[i]!, exp);
    }
  }
  const out: Membership[] = [];
  for (const [id, expiresAt] of map) out.push({ id, expiresAt });
  out.sort((a, b) => a.id - b.id);
  return out;
}

/** A new user's set: the common case of a snapshot import, without a Map. */
function freshMembers(ch: Change, nowSec: number): Membership[] {
  const out: Membership[] = [];
  for (let i = 0; i < ch.ids.length; i++) {
    const ttl = ch.ttls[i] ?? 0;
    const exp = ttl === 0 ? 0 : ch.ts + ttl;
    out.push({ id: ch.ids[i]!, expiresAt: exp });
  }
  out.sort((a, b) => a.id - b.id); // stable: duplicates keep record order
  // Duplicates in one record: the last one wins, then expired ones go, as in the Map path.
  let w = 0;
  for (let r = 0; r < out.length; r++) {
    if (w > 0 && out[w - 1]!.id === out[r]!.id) out[w - 1] = out[r]!;
    else out[w++] = out[r]!;
  }
  out.length = w;
  return out.filter((m) => m.expiresAt === 0 || m.expiresAt > nowSec);
}

/** How many memberships differ between `old` and `next`: added plus removed. */
export function changedCount(old: readonly Membership[] | undefined, next: readonly Membership[]): number {
  if (!old) return next.length;
  const before = new Set(old.map((m) => m.id));
  let n = 0;
  for (const m of next) if (!before.delete(m.id)) n++;
  return n + before.size;
}
