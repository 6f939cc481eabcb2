// The ID graph's read side: any id a user is known by → the segd uid of its
// profile. Synchronous, straight from LMDB's memory map, one get per key (two
// for a segd uid that may have been merged into another profile); usable from
// every thread (lookup workers, the loader).
//
//   const graph = new IdGraph(store);
//   graph.resolve({ partner: 'dsp1', puid: 'abc' })    // → 'k3J…' | null
//   graph.resolve({ ifa: '6D92078A-…' })                // ifa is lowercased
//   graph.resolve({ eidSource: 'id5-sync.com', eid: 'ID5*…' })
//   graph.resolve({ login: '<sha256 hex>', loginSource: 'email-sha256' })
//   graph.resolve({ uid: 'k3J…' })                      // itself, or the profile it was merged into
//
// Merges (cross-device linking) repoint every key to the surviving profile at
// write time, so a resolved uid is always the profile's: no chains to follow.
import type { Database } from 'lmdb';
import type { Store } from '../store/env.js';
import { hasLinks, linksOf } from './links.js';
import { aliasKey, encodeGraphKey, type GraphKey } from './graph-keys.js';
import type { Suppression } from '../privacy/suppressions.js';
import type { AuditEntry } from '../privacy/audit.js';

/** A "maybe" set of the graph's keys: false = never written (the known-users filter holds every id key). */
export interface KeyFilter {
  mayContain(key: string): boolean;
}

export class IdGraph {
  /**
   * Set by a lookup worker: an id the filter has never seen resolves to null
   * without an LMDB read (most bid requests carry ids segd never linked):
   * resolve() of such an id 325 → 172 ns with an empty graph, 538 → 202 ns
   * with 100k linked ids (in process, docs/performance.md).
   */
  filter: KeyFilter | null = null;

  constructor(
    private readonly store: Store,
    private readonly maxIdBytes = 128,
  ) {}

  /** The segd uid `k` resolves to, or null (unknown, invalid, opted out or deleted). */
  resolve(k: GraphKey): string | null {
    if ('uid' in k) return this.profileOf(k.uid);
    const key = encodeGraphKey(k, this.maxIdBytes);
    if (typeof key !== 'string') return null;
    return this.resolveKey(key);
  }

  /** An encoded id key (keys.ts) → segd uid, or null. */
  resolveKey(key: string): string | null {
    if (this.filter !== null && !this.filter.mayContain(key)) return null;
    const s = this.store;
    s.refresh(); // a match acknowledged a moment ago is found
    return s.idmap.get(key, s.reading) ?? null;
  }

  /** The profile a segd uid belongs to: itself, or the profile it was merged into. */
  profileOf(uid: string): string {
    const s = this.store;
    s.refresh();
    return s.idmap.get(aliasKey(uid), s.reading) ?? uid;
  }

  /** Partner id → unix seconds of its last match with this profile. */
  syncTimes(uid: string): Record<string, number> {
    const profile = this.profileOf(uid); // refreshes
    return this.store.syncs.get(profile, this.store.reading) ?? {};
  }

  /**
   * Whether segd holds anything for this segd uid: memberships, a partner
   * match, linked ids, a merge into another profile, or a deletion's
   * tombstone (an opt-out makes it never lapse). A browser opt-out
   * stores a tombstone only for a uid segd knows (a made-up cookie writes
   * nothing).
   */
  knows(uid: string): boolean {
    const s = this.store;
    // doesExist's value `undefined`: whether the key exists.
    const has = (db: Database<unknown, string>, key: string) => db.doesExist(key, undefined, s.reading);
    return (
      has(s.members as Database<unknown, string>, uid) || // `members` refreshes
      has(s.syncs, uid) ||
      has(s.idmap, aliasKey(uid)) ||
      has(s.optout, uid) ||
      hasLinks(s.links as Database<unknown, string>, uid)
    );
  }

  /** Whether this uid is already opted out for good (a repeated opt-out writes nothing). */
  optedOut(uid: string): boolean {
    const s = this.store;
    s.refresh();
    const t = s.optout.get(uid, s.reading) as Suppression | undefined;
    return t !== undefined && t.until === 0;
  }

  /** The newest `limit` entries of the privacy audit log, newest first. */
  auditTail(limit: number): AuditEntry[] {
    const out: AuditEntry[] = [];
    for (const { value } of this.store.audit.getRange({ reverse: true, limit, snapshot: false }))
      out.push(value as AuditEntry);
    return out;
  }

  /** The id keys linked to a profile (partner ids, device ids, merged uids…). */
  links(uid: string): string[] {
    return linksOf(this.store.links as Database<unknown, string>, uid);
  }
}
