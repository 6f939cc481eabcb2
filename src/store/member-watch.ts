// The one watch on every membership write. Whatever writes the members
// generations (a feed batch, a merge, a deletion, the TTL sweep, a snapshot's
// merge and flip, emptying a retired generation), the observers see the
// user's segment ids before and after, inside the writer's LMDB transaction,
// and learn whether that transaction committed or not. The insights index
// and the outbound outbox are observers; the databases are wrapped once,
// however many observe them.
//
// A write outside any transaction is run in one of its own, so an observer's
// own writes (made in `beforeCommit`) always commit with the change.
//
// One observer may also keep ordinals (the insights index): it names the
// ordinal a user's value carries (members.ts) before the value is written,
// from the one the value carried before, so keeping it costs no read or
// write of its own.
import type { Store } from './env.js';
import { NO_ORDINAL, ordinalOf, segmentIds, withOrdinal } from './members.js';

export interface MemberObserver {
  /**
   * `uid`'s ids in generation `g` go from before[0..nb) to after[0..na)
   * (ascending; either may be empty). `append`: a bulk load (MDB_APPEND)
   * into an empty generation, so nothing was read before. The arrays are
   * reused: copy what must outlive the call.
   */
  change(
    g: number,
    uid: string,
    before: Uint32Array,
    nb: number,
    after: Uint32Array,
    na: number,
    append: boolean,
  ): void;
  /** Generation `g` was emptied whole. */
  clear(g: number): void;
  /** Inside the transaction, after its work and before it commits: what must commit with it. */
  beforeCommit(): void;
  /** The transaction committed. */
  committed(): void;
  /** The transaction did not commit (LMDB undid its writes). */
  rolledBack(): void;
}

export interface OrdinalKeeper {
  /**
   * As MemberObserver.change, called before the write; `beforeOrd`: the
   * ordinal the value carried (NO_ORDINAL: none). Returns the ordinal the
   * written value carries (ignored when na = 0: such a value carries none).
   */
  change(
    g: number,
    uid: string,
    beforeOrd: number,
    before: Uint32Array,
    nb: number,
    after: Uint32Array,
    na: number,
    append: boolean,
  ): number;
}

const watches = new WeakMap<Store, MemberWatch>();

export class MemberWatch {
  private readonly observers: MemberObserver[] = [];
  private keeper: OrdinalKeeper | undefined;
  /** The ordinal the value read by `before` (or the cached one) carried. */
  private beforeOrd = NO_ORDINAL;
  private cachedOrd = NO_ORDINAL;
  private depth = 0;
  private before = new Uint32Array(64);
  private after = new Uint32Array(64);
  /** The ids of the last user the writer read inside the open transaction. */
  private cached = new Uint32Array(64);
  private cachedN = 0;
  private cachedGen = -1;
  private cachedUid: string | undefined;
  /** `before` or `cached`: where the ids before the write being reported are. */
  private beforeIds = this.before;
  private readonly run: <T>(fn: () => T) => T;

  /** The store's watch, wrapping its databases on first use. */
  static of(store: Store): MemberWatch {
    let w = watches.get(store);
    if (w === undefined) watches.set(store, (w = new MemberWatch(store)));
    return w;
  }

  add(observer: MemberObserver): void {
    this.observers.push(observer);
  }

  /** The one observer that keeps ordinals in the values (members.ts). */
  keepOrdinals(keeper: OrdinalKeeper): void {
    if (this.keeper !== undefined) throw new Error('ordinals are kept by one observer');
    this.keeper = keeper;
  }

  /**
   * Whether an observer keeps ordinals in `store`'s values: a writer then
   * encodes a value with the ordinal's room (members.ts encodePairs), so it
   * is written in place rather than copied.
   */
  static keepsOrdinals(store: Store): boolean {
    return watches.get(store)?.keeper !== undefined;
  }

  /** True inside a write transaction on this env. */
  get inTransaction(): boolean {
    return this.depth > 0;
  }

  private constructor(store: Store) {
    const { env } = store;
    const transactionSync = env.transactionSync.bind(env);
    this.run = <T>(fn: () => T): T => env.transactionSync(fn);
    store.generations.forEach((db, g) => {
      const getBinaryFast = db.getBinaryFast.bind(db) as (k: string, o?: unknown) => Buffer | undefined;
      const putSync = db.putSync.bind(db) as (k: string, v: Buffer, o?: unknown) => boolean;
      const removeSync = db.removeSync.bind(db) as (k: string, ...r: unknown[]) => boolean;
      const clearSync = db.clearSync.bind(db);
      /** The user's ids before a write: what the writer's own read just found, or read now. */
      const before = (uid: string): number => {
        if (this.cachedGen === g && this.cachedUid === uid) {
          this.beforeIds = this.cached;
          this.beforeOrd = this.cachedOrd;
          return this.cachedN;
        }
        this.beforeIds = this.before;
        const b = getBinaryFast(uid);
        this.beforeOrd = ordinalOf(b);
        return this.decode(b, 'before');
      };
      // Inside a write transaction the writer reads a user just before writing it: its ids are kept, saving a second read.
      // Two parameters, as lmdb-js takes them: a rest parameter would cost an array and a spread per read.
      db.getBinaryFast = ((uid: string, opts?: unknown) => {
        const b = getBinaryFast(uid, opts);
        if (this.depth > 0) {
          this.cachedN = this.decode(b, 'cached');
          this.cachedOrd = ordinalOf(b);
          this.cachedGen = g;
          this.cachedUid = uid;
        }
        return b;
      }) as typeof db.getBinaryFast;
      db.putSync = ((uid: string, value: Buffer, opts?: { append?: boolean }) => {
        if (this.depth === 0) return this.run(() => (db.putSync as typeof putSync)(uid, value, opts));
        const append = typeof opts === 'object' && opts !== null && opts.append === true;
        this.beforeIds = this.before;
        this.beforeOrd = NO_ORDINAL;
        const nb = append ? 0 : before(uid);
        const na = this.decode(value, 'after');
        if (this.keeper !== undefined) {
          const ord = this.keeper.change(g, uid, this.beforeOrd, this.beforeIds, nb, this.after, na, append);
          if (na > 0) value = withOrdinal(value, ord);
        }
        const out = putSync(uid, value, opts);
        this.cachedUid = undefined;
        for (const o of this.observers) o.change(g, uid, this.beforeIds, nb, this.after, na, append);
        return out;
      }) as typeof db.putSync;
      db.removeSync = ((uid: string, ...rest: unknown[]) => {
        if (this.depth === 0) return this.run(() => db.removeSync(uid, ...(rest as [])));
        const nb = before(uid);
        const out = removeSync(uid, ...rest);
        this.cachedUid = undefined;
        if (out) {
          this.keeper?.change(g, uid, this.beforeOrd, this.beforeIds, nb, this.after, 0, false);
          for (const o of this.observers) o.change(g, uid, this.beforeIds, nb, this.after, 0, false);
        }
        return out;
      }) as typeof db.removeSync;
      db.clearSync = (() => {
        clearSync();
        this.cachedUid = undefined;
        for (const o of this.observers) o.clear(g);
        // Observers' own writes for the clear commit in a transaction of their own.
        if (this.depth === 0) this.run(() => undefined);
      }) as typeof db.clearSync;
    });
    env.transactionSync = (<T>(fn: () => T, flags?: number): T => {
      if (this.depth > 0) return transactionSync(fn, flags);
      this.depth++;
      this.cachedUid = undefined;
      try {
        const out = transactionSync(() => {
          const r = fn();
          for (const o of this.observers) o.beforeCommit();
          return r;
        }, flags);
        for (const o of this.observers) o.committed();
        return out;
      } catch (err) {
        for (const o of this.observers) o.rolledBack();
        throw err;
      } finally {
        this.cachedUid = undefined;
        this.depth--;
      }
    }) as typeof env.transactionSync;
  }

  /** Decodes a value's ids into a scratch array (grown as needed). */
  private decode(buf: Buffer | undefined, into: 'before' | 'after' | 'cached'): number {
    if (buf === undefined) return 0;
    const want = (buf.length - 4) >> 3;
    if (want > this[into].length) this[into] = new Uint32Array(Math.max(want, this[into].length * 2));
    return segmentIds(buf, this[into]);
  }
}
