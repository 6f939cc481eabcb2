// Membership writes that are not feed changes: an ID-graph merge joins two
// users' sets, a privacy action removes one whatever its ts. Each runs inside
// a transaction its caller opened, keeps the segment counts right and tells a
// loading snapshot which users it touched.
import type { Store } from '../store/env.js';
import { decodeMembers, encodeMembers, isValidMembersValue } from '../store/members.js';
import type { ProfileMembers } from '../identity/graph-writer.js';
import type { SegmentCounts } from './segment-counts.js';
import type { Transactions } from './transactions.js';

export class MemberEdits implements ProfileMembers {
  constructor(
    private readonly store: Store,
    private readonly tx: Transactions,
    private readonly counts: SegmentCounts,
    private readonly onNewUser: ((uid: string) => void) | undefined,
  ) {}

  /** A user key lookups must find (a snapshot's new user, a merged uid): tells the known-users filter. */
  markKnown(uid: string): void {
    this.onNewUser?.(uid);
  }

  /** Inside a transaction: removes `uid`'s memberships whatever their ts (deletion). True if it had any. */
  remove(uid: string): boolean {
    const buf = this.store.members.getBinaryFast(uid) as Buffer | undefined;
    if (buf === undefined) return false;
    const had = isValidMembersValue(buf) ? decodeMembers(buf).members : [];
    // Not a Change: a loading snapshot copies this user's (now absent) value at its flip.
    this.tx.dirty?.touch(uid);
    this.store.members.removeSync(uid);
    this.counts.change(had.map((m) => [m.id, -1] as const));
    return had.length > 0;
  }

  /** Inside a transaction: `from`'s memberships join `into`'s (union; the later expiry wins, 0 = never); `from`'s are removed. */
  merge(from: string, into: string): void {
    const { members } = this.store;
    const read = (u: string) => {
      const b = members.getBinaryFast(u) as Buffer | undefined;
      return b !== undefined && isValidMembersValue(b) ? decodeMembers(b) : undefined;
    };
    const a = read(from);
    if (!a) return;
    const b = read(into);
    const exp = new Map<number, number>();
    for (const m of b?.members ?? []) exp.set(m.id, m.expiresAt);
    for (const m of a.members) {
      const e = exp.get(m.id);
      exp.set(m.id, e === undefined ? m.expiresAt : e === 0 || m.expiresAt === 0 ? 0 : Math.max(e, m.expiresAt));
    }
    const merged = [...exp].map(([id, expiresAt]) => ({ id, expiresAt })).sort((x, y) => x.id - y.id);
    const delta: Array<[number, number]> = [];
    for (const m of a.members) delta.push([m.id, -1]);
    for (const m of b?.members ?? []) delta.push([m.id, -1]);
    for (const m of merged) delta.push([m.id, +1]);
    // Not a Change: a loading snapshot copies both users' values at its flip.
    this.tx.dirty?.touch(from);
    this.tx.dirty?.touch(into);
    members.removeSync(from);
    if (merged.length > 0 && (!b || b.members.length === 0)) this.onNewUser?.(into);
    members.putSync(into, encodeMembers(Math.max(a.updatedAt, b?.updatedAt ?? 0), merged));
    this.counts.change(delta);
  }
}
