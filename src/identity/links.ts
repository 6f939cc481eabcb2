// The ids linked to each profile (db `links`), for deletion, opt-out and
// merges: one LMDB key per (profile, id) — `uid \x1e idkey` → 1 — so adding
// or removing a link is one put or delete whatever the profile holds, and a
// profile's links (or one partner's) are a range read. A segd uid holds no
// control characters, so `uid \x1e` is a prefix no other profile shares.
//
// Stores written before this layout hold `uid` → [idkey, …] (one list); it is
// read alongside and rewritten into the per-id layout the first time the
// profile's links change.
import type { Database } from 'lmdb';
import { SEP } from './graph-keys.js';

const LINK = '\x1e';
/** The first character after LINK: the end of a profile's range. */
const AFTER_LINK = '\x1f';

type LinksDb = Database<unknown, string>;

/** Range of a profile's links, or of those starting with `prefix` (an id key prefix ending in SEP). */
function range(uid: string, prefix = ''): { start: string; end: string } {
  const start = uid + LINK + prefix;
  // A prefix ends in SEP (\x1f): the ids under it start at \x20 or above.
  return { start, end: prefix === '' ? uid + AFTER_LINK : start.slice(0, -1) + '\x20' };
}

/** Read side: usable from any thread. */
export function linksOf(db: LinksDb, uid: string): string[] {
  const legacy = db.get(uid);
  const out = Array.isArray(legacy) ? (legacy as string[]).slice() : [];
  const skip = uid.length + 1;
  for (const k of db.getKeys({ ...range(uid), snapshot: false })) out.push((k as string).slice(skip));
  return out;
}

/** Whether `uid` links any id (read side). */
export function hasLinks(db: LinksDb, uid: string): boolean {
  return Array.isArray(db.get(uid)) || db.getKeysCount({ ...range(uid), limit: 1 }) > 0;
}

/** Write side: inside a writer transaction. */
export class Links {
  constructor(private readonly db: LinksDb) {}

  list(uid: string): string[] {
    return linksOf(this.db, uid);
  }

  /** How many ids `uid` links, counted up to `upTo`. */
  count(uid: string, upTo: number): number {
    const legacy = this.db.get(uid);
    const n = Array.isArray(legacy) ? legacy.length : 0;
    return n >= upTo ? n : n + this.db.getKeysCount({ ...range(uid), limit: upTo - n });
  }

  /** The partner ids of `partner` that `uid` links. */
  ofPartner(uid: string, partner: string): string[] {
    this.migrate(uid);
    const skip = uid.length + 1;
    const out: string[] = [];
    for (const k of this.db.getKeys({ ...range(uid, `p${SEP}${partner}${SEP}`), snapshot: false }))
      out.push((k as string).slice(skip));
    return out;
  }

  add(uid: string, key: string): void {
    this.migrate(uid);
    this.db.putSync(uid + LINK + key, 1);
  }

  remove(uid: string, key: string): void {
    this.migrate(uid);
    this.db.removeSync(uid + LINK + key);
  }

  removeAll(uid: string): void {
    this.db.removeSync(uid);
    for (const k of [...this.db.getKeys({ ...range(uid), snapshot: false })]) this.db.removeSync(k as string);
  }

  /** A profile's list in the old layout → one key per id. */
  private migrate(uid: string): void {
    const legacy = this.db.get(uid);
    if (!Array.isArray(legacy)) return;
    for (const k of legacy as string[]) this.db.putSync(uid + LINK + k, 1);
    this.db.removeSync(uid);
  }
}
