// Owns the known-users filter on the loader (main) thread: loads it at start,
// adds users and the ID graph's id keys as the writer creates them, rebuilds
// it from the store when it is missing, stale, corrupt or too full, and
// checkpoints it to disk. Lookups ask it before reading a user; resolving an
// id (a partner uid, a device or universal id) asks it before reading the
// graph.
//
// Staleness is detected with the store's write sequence (meta "writes",
// bumped in every loader transaction): a saved filter is exact only for the
// sequence it records. Commits that add no user (updates to existing users)
// advance the sequence too, so each checkpoint records the sequence the saved
// bits cover even when no bit changed (a header-only rewrite). Until a usable filter exists, workers run without one
// (every lookup goes to LMDB): slower, never wrong.
import { performance } from 'node:perf_hooks';
import { aliasKey } from '../identity/graph-keys.js';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { userCount, writeSequence, type Store } from '../store/env.js';
import type { Logger } from '../log.js';
import { BlockedBloom, sizeFor, type BloomParams } from './blocked-bloom.js';
import { saveFilter, saveFilterWrites, loadFilter } from './persist.js';
import { timeline } from '../metrics/timeline.js';

export const FILTER_FILE = 'known-users.bloom';
const SCAN_CHUNK = 50_000;
/** Far longer than a message takes to reach every worker. */
const RETIRED_MS = 60_000;

interface KnownUsersOptions {
  /** Users to size for (grown to 1.25× the store when that is larger). */
  expectedUsers: number;
  fpRate: number;
  saveEveryMs: number;
}

type FilterState = 'ready' | 'building' | 'off';

/** What workers need to attach to the filter: shared bits + parameters, or none. */
export interface FilterHandle {
  buffer: SharedArrayBuffer;
  params: BloomParams;
}

export class KnownUsers {
  /** The filter lookups use; null while none is usable. */
  current: BlockedBloom | null = null;
  private building: BlockedBloom | null = null;
  /**
   * The filter just replaced: workers may check it until the swap message
   * reaches them, so new users keep going into it for a while.
   */
  private retired: BlockedBloom | null = null;
  private retiredTimer: NodeJS.Timeout | null = null;
  private added = 0;
  private dirty = false;
  /** The write sequence the file on disk records; -1: no file of ours yet. */
  private savedWrites = -1;
  /** Checkpoints run one at a time, so an older one never lands after a newer one. */
  private saving: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private rebuilding: Promise<void> | null = null;
  private readonly path: string;
  private readonly listeners: Array<(h: FilterHandle | null) => void> = [];
  rebuilds = 0;
  private closing = false;

  constructor(
    private readonly store: Store,
    private readonly opts: KnownUsersOptions,
    private readonly log: Logger,
  ) {
    this.path = join(store.path, FILTER_FILE);
  }

  get state(): FilterState {
    return this.current ? 'ready' : this.building ? 'building' : 'off';
  }

  handle(): FilterHandle | null {
    return this.current ? { buffer: this.current.buffer, params: this.current.params } : null;
  }

  onChange(fn: (h: FilterHandle | null) => void): void {
    this.listeners.push(fn);
  }

  /** Loads the saved filter if it is exactly current; otherwise starts a rebuild. */
  async init(): Promise<void> {
    try {
      const saved = await loadFilter(this.path);
      const writes = writeSequence(this.store);
      if (saved.writes !== writes) {
        this.log.warn({ saved: saved.writes, store: writes }, 'known-users filter is stale; rebuilding');
      } else if (saved.added > saved.filter.params.capacity) {
        this.log.warn(
          { added: saved.added, capacity: saved.filter.params.capacity },
          'known-users filter is too full; rebuilding',
        );
      } else {
        this.current = saved.filter;
        this.added = saved.added;
        this.savedWrites = saved.writes;
        this.log.info(
          { keys: saved.added, capacity: saved.filter.params.capacity, bytes: saved.filter.buffer.byteLength },
          'known-users filter loaded',
        );
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') this.log.info('no known-users filter yet; building it');
      else this.log.warn({ err: (err as Error).message }, 'known-users filter unusable; rebuilding');
    }
    if (!this.current) void this.rebuild();
    this.timer = setInterval(() => void this.checkpoint(), this.opts.saveEveryMs);
    this.timer.unref();
  }

  /** Writer hook: called inside the transaction that creates the user, before it commits. */
  readonly onNewUser = (uid: string): void => {
    this.current?.add(uid);
    this.building?.add(uid);
    this.retired?.add(uid);
    this.added++;
    this.dirty = true;
  };

  /** Called after each writer batch: grows the filter when it passes its capacity. */
  afterBatch(): void {
    const cap = this.current?.params.capacity ?? Infinity;
    if (this.added > cap && !this.rebuilding) {
      this.log.info({ added: this.added, capacity: cap }, 'known-users filter full; rebuilding at twice the size');
      void this.rebuild(cap * 2);
    }
  }

  /** Builds a new filter from every key in the store, then swaps it in. */
  rebuild(capacity?: number): Promise<void> {
    this.rebuilding ??= this.doRebuild(capacity).finally(() => {
      this.rebuilding = null;
      // Users the writer added while the scan ran can leave the new filter
      // past its capacity (a first build beside the seed or a replay): it
      // grows now, not at the next batch, which may be long in coming.
      if (!this.closing) this.afterBatch();
    });
    return this.rebuilding;
  }

  private async doRebuild(capacity?: number): Promise<void> {
    const t0 = performance.now();
    const users = userCount(this.store);
    const ids = (this.store.idmap.getStats() as { entryCount: number }).entryCount;
    const params = sizeFor(
      Math.max(capacity ?? 0, this.opts.expectedUsers, Math.ceil((users + ids) * 1.25)),
      this.opts.fpRate,
    );
    const next = new BlockedBloom(params);
    this.building = next;
    // Users the writer adds while the scan runs: `added` grows by one for each (onNewUser).
    const addedBefore = this.added;
    let n = 0;
    // snapshot:false: a long scan must not pin an old read snapshot (file growth);
    // users created meanwhile reach `next` through onNewUser.
    let chunk = 0;
    // Device uids merged into another profile hold no memberships but must
    // pass the filter, so `?uid=` of either device finds the profile. Every
    // other id key goes in as it is (its \x1f separators never occur in a
    // uid), so resolving an id segd never linked skips the LMDB read.
    const merged = aliasKey('');
    // A snapshot that swaps generations mid-scan (and soon empties the one being
    // scanned) restarts the scan on the new one; what was added stays (false positives only).
    for (let gen = -1; gen !== this.store.generation();) {
      gen = this.store.generation();
      const keys = chain(
        this.store.generations[gen]!.getKeys({ snapshot: false }),
        this.store.idmap.getKeys({ snapshot: false }),
      );
      for (const raw of keys) {
        const key = raw as string;
        next.add(key.startsWith(merged) ? key.slice(merged.length) : key);
        n++;
        if (++chunk === SCAN_CHUNK) {
          chunk = 0;
          await yieldToLoop();
          if (this.closing) {
            this.building = null;
            return; // abandoned: the next start rebuilds
          }
          if (this.store.generation() !== gen) break;
        }
      }
    }
    this.building = null;
    this.retired = this.current;
    if (this.retiredTimer) clearTimeout(this.retiredTimer);
    this.retiredTimer = setTimeout(() => (this.retired = null), RETIRED_MS);
    this.retiredTimer.unref();
    this.current = next;
    // An upper bound: a user added while the scan ran is counted whether or
    // not the scan saw it too. The scan's count alone misses those added
    // behind its cursor, and a filter built beside a seed or a replay would
    // pass its capacity unseen.
    this.added = n + (this.added - addedBefore);
    this.rebuilds++;
    this.dirty = true;
    this.log.info(
      {
        keys: n,
        capacity: params.capacity,
        k: params.k,
        bytes: next.buffer.byteLength,
        ms: Math.round(performance.now() - t0),
      },
      'known-users filter built',
    );
    for (const fn of this.listeners) fn(this.handle());
    await this.checkpoint();
  }

  /**
   * Saves the filter if it changed, or else records the write sequence it
   * covers now. The sequence is read before the bits are copied: bits ⊇ users
   * at that sequence.
   */
  checkpoint(): Promise<void> {
    this.saving = this.saving.then(() => this.checkpointNow());
    return this.saving;
  }

  /**
   * Writes the whole filter now, changed or not (an operator before a planned
   * restart, or a load test measuring what a save costs lookups).
   */
  async saveNow(): Promise<{ bytes: number; ms: number } | null> {
    const f = this.current;
    if (!f) return null;
    const t0 = performance.now();
    this.dirty = true;
    await this.checkpoint();
    return { bytes: f.buffer.byteLength, ms: performance.now() - t0 };
  }

  private async checkpointNow(): Promise<void> {
    const f = this.current;
    if (!f) return;
    const writes = writeSequence(this.store);
    if (!this.dirty) {
      // No user added since the last save: the bits on disk cover `writes` too.
      if (this.savedWrites < 0 || this.savedWrites === writes) return;
      try {
        await saveFilterWrites(this.path, writes);
        this.savedWrites = writes;
      } catch (err) {
        this.dirty = true; // the next checkpoint writes the whole file
        this.log.error({ err, path: this.path }, 'saving the known-users filter failed');
      }
      return;
    }
    this.dirty = false;
    const t0 = performance.now();
    try {
      await saveFilter(this.path, f, this.added, writes);
      timeline.mark('filter-save', t0, { bytes: f.buffer.byteLength });
      this.savedWrites = writes;
    } catch (err) {
      this.dirty = true;
      this.log.error({ err, path: this.path }, 'saving the known-users filter failed');
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    await this.rebuilding?.catch(() => undefined);
    await this.checkpoint();
  }

  get addedCount(): number {
    return this.added;
  }
}

function* chain<T>(...its: Iterable<T>[]): Generator<T> {
  for (const it of its) yield* it;
}
