// The ID graph's write side. Runs only on the loader thread, inside the one
// writer's transactions (the writer calls it for `match` changes, forgetting
// for opt-outs and deletions), so matches, merges, memberships and tombstones
// change together or not at all. What it needs of the memberships is the
// narrow ProfileMembers below; the loader composes the two.
//
// Linking rules (deterministic: the same changes in the same order give the
// same graph on every node):
// - A partner id, device id (ifa) or universal id (eid) belongs to one segd
//   uid; a later match for it moves it (the partner re-synced after the
//   browser lost its cookie: the newer segd uid is the live one).
// - A login id (hashed email, login) is the cross-device key: the first segd
//   uid matched to it owns it. When another segd uid (another device) is
//   matched to the same login id, that uid is merged into the owner's
//   profile: its ids are repointed, its memberships are merged (union; the
//   later expiry wins), and it becomes an alias (`uid` key) of the owner. From
//   then on every id of either device resolves to the owner, and membership
//   changes upstream sends for the merged uid are applied to the owner.
// - Suppressed users (opt-out, deletion) and tombstoned ids are never matched.
import type { Database } from 'lmdb';
import type { Store } from '../store/env.js';
import type { SuppressedUsers } from '../privacy/suppressions.js';
import type { ForgetTarget, Profile, ProfileGraph, Unlinked } from '../privacy/forget.js';
import { aliasKey, describeKey, kindOf, SEP } from './graph-keys.js';
import { Links } from './links.js';

/** What the graph's writes need of the memberships (the loader's writer provides it). */
export interface ProfileMembers {
  /** Inside a transaction: `from`'s memberships join `into`'s (union; the later expiry wins); `from`'s are removed. */
  merge(from: string, into: string): void;
  /** `key` (a segd uid, or an id key of the graph) is now a key lookups must find (the known-users filter learns it). */
  markKnown(key: string): void;
}

const DEFAULT_MAX_IDS_PER_PROFILE = 200;

export class GraphWriter implements ProfileGraph {
  /**
   * segd uids merged into another profile. In memory (≈ 60 bytes each), so a
   * membership change pays a Set lookup, not an LMDB get, to learn it needs
   * redirecting (an LMDB get is ≈ 1 µs here, a Set lookup tens of ns).
   */
  private readonly merged = new Set<string>();

  /** The ids each profile links (one key per id). */
  private readonly links: Links;

  constructor(
    private readonly store: Store,
    private readonly members: ProfileMembers,
    private readonly suppressed: SuppressedUsers,
    private readonly maxIds = DEFAULT_MAX_IDS_PER_PROFILE,
  ) {
    this.links = new Links(store.links as Database<unknown, string>);
    const start = aliasKey('');
    for (const key of store.idmap.getKeys({ start, end: `${start}\uffff`, snapshot: false }))
      this.merged.add((key as string).slice(start.length));
  }

  /** Nonzero when some segd uid was merged into another profile (callers skip profileOf at 0). */
  get merges(): number {
    return this.merged.size;
  }

  /** The segd uids merged into another profile. */
  mergedUids(): IterableIterator<string> {
    return this.merged.values();
  }

  /** The profile a segd uid belongs to (itself unless merged). */
  profileOf(uid: string): string {
    if (!this.merged.has(uid)) return uid;
    return this.store.idmap.get(aliasKey(uid)) ?? uid;
  }

  /** Inside a writer transaction: `key` now belongs to `uid`'s profile. False = refused (suppressed user or tombstoned id). */
  match(key: string, uid: string, nowSec: number): boolean {
    const { idmap } = this.store;
    const profile = this.profileOf(uid);
    if (this.suppressed.isSuppressed(profile, nowSec)) return false;
    if (this.suppressed.isSuppressedId(key, nowSec)) return false;
    const prev = idmap.get(key);
    const partner = kindOf(key) === 'p' ? key.slice(2, key.indexOf(SEP, 2)) : null;
    if (prev === profile) {
      if (partner !== null) this.synced(profile, partner, nowSec);
      return true;
    }
    if (prev !== undefined && kindOf(key) === 'login') {
      this.merge(profile, prev);
      return true;
    }
    // One id per partner per profile, the latest: a new partner uid replaces the old one.
    const replaced = partner !== null ? this.links.ofPartner(profile, partner) : [];
    if (replaced.length === 0 && this.links.count(profile, this.maxIds) >= this.maxIds) return false;
    for (const old of replaced) {
      if (idmap.get(old) === profile) idmap.removeSync(old);
      this.links.remove(profile, old);
    }
    if (prev !== undefined) this.links.remove(prev, key);
    idmap.putSync(key, profile);
    // Resolving an id asks the known-users filter first (a key it was never told of is a miss).
    if (prev === undefined) this.members.markKnown(key);
    this.links.add(profile, key);
    if (partner !== null) this.synced(profile, partner, nowSec);
    return true;
  }

  /**
   * When each partner last matched this profile, kept in the store rather
   * than a cookie: parallel inbound syncs would each rewrite a cookie from
   * the same old value and lose each other's updates (Prebid.js #3265), and
   * a cookie growing with partners bloats every request's headers.
   */
  private synced(uid: string, partner: string, nowSec: number): void {
    const had = this.store.syncs.get(uid);
    this.store.syncs.putSync(uid, { ...had, [partner]: nowSec });
  }

  /** Merges profile `from` into profile `into` (see the rules above). */
  private merge(from: string, into: string): void {
    const { idmap } = this.store;
    this.members.merge(from, into);
    const moved = this.links.list(from);
    for (const k of moved) idmap.putSync(k, into);
    this.links.removeAll(from);
    this.store.syncs.removeSync(from);
    const alias = aliasKey(from);
    idmap.putSync(alias, into);
    // Not capped: merges come from authenticated match uploads, and every id moved must keep resolving.
    for (const k of moved) this.links.add(into, k);
    this.links.add(into, alias);
    this.merged.add(from);
    // Lookups by the merged uid go through the known-users filter first.
    this.members.markKnown(from);
  }

  /** The profile `target` names (through merges), the ids it links and its segd uids (read only). */
  profile(target: ForgetTarget): Profile {
    const uid = target.uid !== undefined ? this.profileOf(target.uid) : (this.store.idmap.get(target.key!) ?? null);
    if (uid === null) return { uid, linked: [], users: [] };
    const linked = this.links.list(uid);
    const users = [uid];
    for (const k of linked) {
      const m = mergedUid(k);
      if (m !== null) users.push(m);
    }
    return { uid, linked, users };
  }

  /**
   * Inside a transaction: the profile `target` names (`p`, read in the same
   * transaction) leaves the graph: every id it links (and the target's key)
   * stops resolving, its links and the sync times of it and its merged uids go.
   */
  unlink(target: ForgetTarget, p: Profile): Unlinked {
    const { idmap, syncs } = this.store;
    const { uid, linked } = p;
    const keys = target.key !== undefined && !linked.includes(target.key) ? [...linked, target.key] : linked;
    const ids: string[] = [];
    const merged: string[] = [];
    for (const k of keys) {
      idmap.removeSync(k);
      const m = mergedUid(k);
      if (m !== null) merged.push(m);
      else ids.push(k);
    }
    if (uid !== null) syncs.removeSync(uid);
    for (const u of merged) syncs.removeSync(u);
    if (uid !== null) this.links.removeAll(uid);
    return { uid, linked: linked.length, ids, merged };
  }

  /** After the transaction that unlinked `u` committed: its merged uids are aliases no more. */
  unlinked(u: Unlinked): void {
    for (const m of u.merged) this.merged.delete(m);
  }

  describe(key: string): string {
    return describeKey(key);
  }
}

/** The segd uid a `uid`-kind id key names (a uid merged into a profile), or null for any other key. */
function mergedUid(k: string): string | null {
  return kindOf(k) === 'uid' ? k.slice(k.lastIndexOf(SEP) + 1) : null;
}
