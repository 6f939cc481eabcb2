// The ID graph's write side. Runs only on the loader thread, inside the one
// writer's transactions (loader/writer.ts calls it for `match` changes; the
// privacy actions open their own through Writer.commit, so a full disk is
// detected and reported there too), so matches, merges, memberships and
// tombstones change together or not at all.
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
import { createHash } from 'node:crypto';
import type { Store } from '../store/env.js';
import type { Writer } from '../loader/writer.js';
import type { Database } from 'lmdb';
import { aliasKey, describeKey, kindOf, SEP } from './keys.js';
import { Links } from './links.js';
import { isActive, stronger, type AuditEntry, type Suppression, type SuppressionReason } from './suppression.js';

export interface ForgetTarget {
  /** A segd uid (resolved through merges), or */
  uid?: string;
  /** an id key (keys.ts). */
  key?: string;
}

export interface ForgetResult {
  found: boolean;
  /** The profile removed (null when nothing was stored for the key). */
  uid: string | null;
  /** Linked ids removed. */
  ids: number;
  memberships: boolean;
  /** When the tombstone lapses (unix s; 0 = never). */
  until: number;
  auditSeq: number;
}

const AUDIT_SEQ = 'auditSeq';
export const DEFAULT_MAX_IDS_PER_PROFILE = 200;

export const digest = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

export class GraphWriter {
  /**
   * segd uids merged into another profile. In memory (≈ 60 bytes each), so a
   * membership change pays a Set lookup, not an LMDB get, to learn it needs
   * redirecting (an LMDB get is ≈ 1 µs here, a Set lookup tens of ns).
   */
  readonly merged = new Set<string>();

  /** The ids each profile links (one key per id). */
  private readonly links: Links;

  constructor(private readonly store: Store, private readonly writer: Writer, private readonly maxIds = DEFAULT_MAX_IDS_PER_PROFILE) {
    this.links = new Links(store.links as Database<unknown, string>);
    const start = aliasKey('');
    for (const key of store.idmap.getKeys({ start, end: `${start}\uffff`, snapshot: false })) this.merged.add((key as string).slice(start.length));
  }

  /** Loads the suppressed users into the writer (called once at start; at most its in-memory cap, the rest stay in the store). */
  loadSuppressed(nowSec: number): number {
    let n = 0;
    for (const { key, value } of this.store.optout.getRange({ snapshot: false })) {
      const k = key as string;
      const s = value as Suppression;
      if (k.includes(SEP) || !isActive(s, nowSec)) continue;
      if (!this.writer.suppressed.set(k, s.until === 0 ? Infinity : s.until)) break;
      n++;
    }
    return n;
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
    if (this.writer.isSuppressed(profile, nowSec)) return false;
    if (isActive(this.store.optout.get(key) as Suppression | undefined, nowSec)) return false;
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
    this.writer.mergeMembers(from, into);
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
    this.writer.markKnown(from);
  }

  /**
   * Opt-out or deletion, in one transaction: removes the profile's
   * memberships and every linked id, tombstones the uid, its merged uids and
   * every id until `until` (0 = for good), and appends an audit entry.
   * A key or uid with nothing stored is tombstoned all the same (its data may
   * still be on its way from upstream).
   */
  forget(target: ForgetTarget, reason: SuppressionReason, nowSec: number, until: number, by: string): ForgetResult {
    const { idmap, optout, audit, meta } = this.store;
    let result!: ForgetResult;
    // Applied to the in-memory sets only once the transaction committed (it may fail: a full disk).
    const unmerged: string[] = [];
    const suppressed = new Map<string, number>();
    const kept = new Map<string, number>();
    // Never shortens a tombstone already there (an opt-out's "never" stays "never").
    const tombstone = (k: string, tomb: Suppression): number => {
      const had = optout.get(k) as Suppression | undefined;
      const keep = stronger(had, tomb, nowSec);
      if (keep !== had) optout.putSync(k, keep);
      return keep.until;
    };
    this.writer.commit(() => {
      const uid = target.uid !== undefined ? this.profileOf(target.uid) : idmap.get(target.key!) ?? null;
      const linked = uid !== null ? this.links.list(uid) : [];
      const keys = target.key !== undefined && !linked.includes(target.key) ? [...linked, target.key] : linked;
      const tomb: Suppression = { at: nowSec, until, reason };
      const users = uid !== null ? [uid] : [target.uid!].filter((u) => u !== undefined);
      for (const k of keys) {
        idmap.removeSync(k);
        if (kindOf(k) === 'uid') {
          const u = k.slice(k.lastIndexOf(SEP) + 1);
          users.push(u);
          unmerged.push(u);
        }
        else kept.set(k, tombstone(k, tomb));
      }
      let memberships = false;
      for (const u of users) {
        memberships = this.writer.removeMembers(u) || memberships;
        this.store.syncs.removeSync(u);
        suppressed.set(u, tombstone(u, tomb));
      }
      // What the answer and the audit report: the profile's tombstone as it now stands.
      const lasts = users.length ? suppressed.get(users[0]!)! : kept.get(target.key!) ?? until;
      if (uid !== null) this.links.removeAll(uid);
      const seq = ((meta.get(AUDIT_SEQ) as number | undefined) ?? 0) + 1;
      meta.putSync(AUDIT_SEQ, seq);
      const requested = target.key ?? target.uid!;
      const found = target.key !== undefined ? uid !== null : linked.length > 0 || memberships;
      const entry: AuditEntry = {
        seq,
        at: Date.now(),
        action: reason === 'optout' ? 'optout' : 'delete',
        requested: { kind: target.key !== undefined ? describeKey(target.key) : 'uid', digest: digest(requested) },
        found,
        uidDigest: uid !== null ? digest(uid) : null,
        ids: linked.length,
        memberships,
        until: lasts,
        by,
      };
      audit.putSync(seq, entry);
      result = { found, uid: found ? uid : null, ids: linked.length, memberships, until: lasts, auditSeq: seq };
    });
    for (const u of unmerged) this.merged.delete(u);
    for (const [u, t] of suppressed) this.writer.suppressed.set(u, t === 0 ? Infinity : t);
    return result;
  }

  /** Removes suppressions past their `until`; returns how many. */
  expire(nowSec: number): number {
    const old: string[] = [];
    for (const { key, value } of this.store.optout.getRange({ snapshot: false })) {
      if (!isActive(value as Suppression, nowSec)) old.push(key as string);
    }
    if (old.length) {
      this.writer.commit(() => old.forEach((k) => this.store.optout.removeSync(k)));
      for (const k of old) this.writer.suppressed.delete(k);
    }
    return old.length;
  }
}
