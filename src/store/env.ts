// The LMDB env and its named databases (see docs/design.md "Data model").
//
// One env per process: lmdb-js shares the native env between worker threads of
// the same process, so the loader (main thread) writes and the lookup workers
// read the same memory map. Workers never write.
import * as lmdb from 'lmdb';
import { open, type RootDatabase, type Database } from 'lmdb';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { stallReason } from './write-failure.js';
import { DEFAULT_HEADROOM_BYTES, Headroom, PAGES_PER_RECORD } from './headroom.js';

const SCHEMA_VERSION = 1;

export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

export interface Store {
  path: string;
  env: RootDatabase;
  /**
   * user key → members value (see members.ts): the active generation. A
   * snapshot is loaded into the other one and becomes active by one flip of
   * meta `generation`, mirrored in a shared Int32 every lookup reads.
   */
  readonly members: Database<Buffer, string>;
  /** Both generations of members (`members`, `members.1`); see loader/snapshot.ts. */
  readonly generations: readonly [Database<Buffer, string>, Database<Buffer, string>];
  /** The active generation, 0 or 1. */
  generation(): number;
  /**
   * Renews this thread's read snapshot if anything committed since it began
   * (or the generation flipped). Reads through `members` do it themselves;
   * a read path that starts elsewhere (the ID graph) calls it first.
   */
  refresh(): void;
  /**
   * The options of a get through this thread's own read transaction
   * (`db.get(key, store.reading)`), for a read right after refresh() or
   * `members` (or inside a pin() taken the same turn): renewed by refresh()
   * when anything committed, and released READ_HOLD_MS after it was first
   * read through, so lmdb-js arms no per-turn timer for these reads
   * (measured: the timer work in a lookup worker's CPU profile 1.4% → 0.2%
   * of its samples; bench:cpu --route lookup, CPU a request: 0.96–1.02× in
   * five runs on a loaded machine, median 0.98×, not told apart from noise).
   */
  readonly reading: GetOptions;
  /** Makes `g` active for every reader sharing the cell (after the flip committed). */
  setGeneration(g: number): void;
  /** segment id → live member count, maintained by the writer */
  counts: Database<number, number>;
  /** segment id → taxonomy record (SegmentDef: name, provider, segtax, …) */
  segments: Database<unknown, number>;
  /** partner id → Partner (API key digests, licences, sync template) */
  partners: Database<unknown, string>;
  /** name → checkpoints, schema version, flags */
  meta: Database<unknown, string>;
  /** ID graph: id key (kind, source, id; see identity/keys.ts) → segd uid */
  idmap: Database<string, string>;
  /** ID graph: segd uid → the id keys linked to it (msgpack string[]), for deletion and export */
  links: Database<string[], string>;
  /** Suppressed users and ids (opt-out, deletion tombstones): segd uid or id key → Suppression (privacy/suppressions.ts) */
  optout: Database<unknown, string>;
  /** segd uid → {partner id: unix seconds of its last match} (msgpack): the outbound sync skips recent ones */
  syncs: Database<Record<string, number>, string>;
  /** Append-only audit log of privacy actions: sequence number → entry (msgpack) */
  audit: Database<unknown, number>;
  /** destination id → Destination (where membership changes are pushed; partners/types.ts) */
  destinations: Database<unknown, string>;
  /** Outbound changes not yet delivered: [destination id, sequence] → delta (outbound/outbox.ts) */
  outbox: Database<unknown, [string, number]>;
  /** destination id → its delivery state: cursor, batch in flight, counts, last error (outbound/cursor.ts) */
  outbound: Database<unknown, string>;
  /** Outbound changes a destination kept refusing: [destination id, sequence] → dead letter */
  outboundDead: Database<unknown, [string, number]>;
  /**
   * Before a write transaction of `records` feed records (a writer batch;
   * every other transaction is covered by the headroom): with a writable map,
   * keeps the data file's room for it allocated (headroom.ts), or throws
   * AllocationError (code ENOSPC: the store-full path). A no-op otherwise.
   * Every transactionSync, putSync and removeSync on this env calls it itself.
   */
  prepareWrite(records?: number): void;
  close(): Promise<void>;
}

export interface OpenOptions {
  maxReaders?: number;
  /** Workers open without creating the directory or writing the schema. */
  readOnly?: boolean;
  /**
   * Where the active generation lives: an Int32 slot shared by every thread
   * of the process (the server's SharedState). Default: private to this Store.
   * A read-only opener trusts the cell; a writer sets it from meta, as does
   * any opener without a shared cell.
   */
  generationCell?: { cells: Int32Array; index: number };
  /**
   * An Int32 slot every commit on this env bumps, shared like the generation
   * cell. A thread's read snapshot lives until it is reset (`reading`: up to
   * READ_HOLD_MS; lmdb-js's own: a setTimeout(0) after it began), so a worker
   * serving a burst of requests inside that time would answer from a
   * snapshot older than a commit a caller already saw acknowledged
   * (measured with lmdb-js's: ≈ 3% of reads right after an HTTP push ack
   * missed the pushed user). Readers compare the slot per read and renew on change:
   * read-your-acknowledged-writes across threads for one Atomics.load.
   */
  commitCell?: { cells: Int32Array; index: number };
  /** lmdb-js env options over the defaults below (benches compare them). */
  lmdb?: { useWritemap?: boolean; noReadAhead?: boolean; overlappingSync?: boolean; noSync?: boolean };
  /**
   * LMDB writes through a writable map, with the data file kept allocated
   * `headroom` bytes past its last used page (headroom.ts), so a full disk
   * refuses a write instead of killing the process. Writers only: a
   * read-only opener in the same process shares the writer's env (and map).
   */
  writemap?: { headroom?: number };
}

export const GENERATION_KEY = 'generation';

/** A get's options: lmdb-js's GetOptions (its `transaction`). */
export type GetOptions = NonNullable<Parameters<Database['get']>[1]>;

/**
 * How long a thread's read snapshot lives at most (`Store.reading`): from its
 * first read, the snapshot is released (the transaction reset) this long
 * after, whether or not reads keep coming. So a commit no refresh() sees (a
 * putSync outside transactionSync, another process) is read within this
 * bound, and a worker with no lookups pins no page the writer freed since for
 * longer: the data file grows by at most the pages the writer frees in this
 * window (lmdb-js's own read transaction resets at the end of each event-loop
 * turn, arming a setTimeout(0) on every turn that reads).
 */
export const READ_HOLD_MS = 50;

/**
 * lmdb-js's native read transaction (its `Txn`; lmdb-js's `resetTxn` resets
 * one: its reader slot is kept, its snapshot released, and the next read
 * through it renews it to the last commit).
 */
interface NativeTxn {
  address: number;
  abort(): void;
}
const MDB_RDONLY = 0x20000;
const nativeAddon = (
  lmdb as unknown as {
    nativeAddon: { Txn: new (env: unknown, flags: number) => NativeTxn; resetTxn(address: number): void };
  }
).nativeAddon;

/** The writer's map from the configured headroom (SEGD_WRITEMAP_HEADROOM_MB; 0: a read-only map, pages written with pwrite). */
export function writemapFromConfig(headroomMb: number): Pick<OpenOptions, 'writemap'> {
  return headroomMb > 0 ? { writemap: { headroom: headroomMb * 2 ** 20 } } : {};
}

export function openStore(path: string, opts: OpenOptions = {}): Store {
  if (!opts.readOnly) mkdirSync(path, { recursive: true, mode: 0o700 });
  const room =
    opts.writemap && !opts.readOnly
      ? new Headroom(join(path, 'data.mdb'), opts.writemap.headroom ?? DEFAULT_HEADROOM_BYTES)
      : null;
  const mapped = room ? { useWritemap: true, mapSize: room.beforeOpen() } : {};
  const env = open({
    path,
    maxDbs: 24,
    maxReaders: opts.maxReaders ?? 1024,
    // Never noSync: a machine crash would corrupt the file (lmdb-js #132).
    // noMemInit stays off so stale heap bytes never reach the data file.
    noMemInit: false,
    // Data files are private to the service account.
    fileMode: 0o600,
    ...opts.lmdb,
    ...mapped,
  } as unknown as Parameters<typeof open>[0]);
  // lmdb-js's native env: info() is mdb_env_info (≈ 1 µs), writeTxn is set while a write transaction runs.
  const native = (env as unknown as { env: { info(): { lastPageNumber: number }; writeTxn: unknown } }).env;
  // This thread's read transaction (Store.reading), begun before any read of
  // lmdb-js's own: lmdb-js's native env opens and renews range cursors in the
  // read transaction begun last, which must stay lmdb-js's (begun after this
  // one, or a range reads this one's snapshot), so its own is dropped (as an
  // openDB drops it) and begins anew at its next read.
  let txn: NativeTxn | null = new nativeAddon.Txn(native, MDB_RDONLY);
  nativeAddon.resetTxn(txn.address);
  (env as unknown as { _commitReadTxn(): void })._commitReadTxn();
  const reading: { transaction?: NativeTxn } = { transaction: txn };
  // `reading`: live from a read until a refresh sees a commit or READ_HOLD_MS
  // pass (`holding`: the release is armed), then reset until a read renews it.
  let holding: NodeJS.Timeout | null = null;
  const reset = () => {
    if (txn !== null) nativeAddon.resetTxn(txn.address);
  };
  const release = () => {
    holding = null;
    reset();
  };
  // A database opened after the transaction began is not in it until it renews.
  const openDB = env.openDB.bind(env);
  env.openDB = ((...args: Parameters<typeof openDB>) => {
    const db = openDB(...args);
    reset();
    return db;
  }) as typeof env.openDB;
  const pageSize = room ? (env.getStats() as { pageSize: number }).pageSize : 0;
  const prepareWrite = room
    ? (records = 0) => {
        if (native.writeTxn) return; // inside a transaction: prepared when it began
        room.ensure((native.info().lastPageNumber + 1) * pageSize, records * PAGES_PER_RECORD * pageSize);
      }
    : () => undefined;
  try {
    prepareWrite();
  } catch (err) {
    // A full disk: the store opens (lookups serve), its writes are refused until there is room.
    if (stallReason(err, path) !== 'disk_full') throw err;
  }
  const generations = [
    env.openDB<Buffer, string>({ name: 'members', encoding: 'binary' }),
    env.openDB<Buffer, string>({ name: 'members.1', encoding: 'binary' }),
  ] as const;
  const dbs = {
    counts: env.openDB<number, number>({ name: 'counts', keyEncoding: 'uint32' }),
    segments: env.openDB<unknown, number>({ name: 'segments', encoding: 'msgpack', keyEncoding: 'uint32' }),
    partners: env.openDB<unknown, string>({ name: 'partners', encoding: 'msgpack' }),
    meta: env.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack' }),
    idmap: env.openDB<string, string>({ name: 'idmap', encoding: 'string' }),
    links: env.openDB<string[], string>({ name: 'links', encoding: 'msgpack' }),
    optout: env.openDB<unknown, string>({ name: 'optout', encoding: 'msgpack' }),
    syncs: env.openDB<Record<string, number>, string>({ name: 'syncs', encoding: 'msgpack' }),
    audit: env.openDB<unknown, number>({ name: 'audit', encoding: 'msgpack', keyEncoding: 'uint32' }),
    destinations: env.openDB<unknown, string>({ name: 'destinations', encoding: 'msgpack' }),
    outbox: env.openDB<unknown, [string, number]>({ name: 'outbox', encoding: 'msgpack' }),
    outbound: env.openDB<unknown, string>({ name: 'outbound', encoding: 'msgpack' }),
    outboundDead: env.openDB<unknown, [string, number]>({ name: 'outbound.dead', encoding: 'msgpack' }),
  };
  const { meta } = dbs;
  // A putSync or removeSync outside a transaction is one of its own, which lmdb-js begins on the db's prototype, past the env's wrapper below.
  if (room)
    for (const db of [...generations, ...Object.values(dbs)] as Database[]) {
      const { putSync, removeSync } = db;
      db.putSync = ((...args: Parameters<typeof putSync>) => (
        prepareWrite(),
        putSync.apply(db, args)
      )) as typeof putSync;
      db.removeSync = ((...args: Parameters<typeof removeSync>) => (
        prepareWrite(),
        removeSync.apply(db, args)
      )) as typeof removeSync;
    }
  const { cells, index } = opts.generationCell ?? { cells: new Int32Array(1), index: 0 };
  // A private cell, or the writer's: from meta. A read-only opener given a shared cell trusts it (the writer keeps it).
  if (!opts.readOnly || !opts.generationCell)
    Atomics.store(cells, index, ((meta.get(GENERATION_KEY) as number | undefined) ?? 0) & 1);
  // The generation this thread's read transaction was last renewed for: on a
  // flip, the first read renews it, so the new generation is read as
  // committed (the flip commits before the cell changes).
  let seen = Atomics.load(cells, index);
  const commits = opts.commitCell ?? { cells: new Int32Array(1), index: 0 };
  let seenCommits = Atomics.load(commits.cells, commits.index);
  // Every synchronous commit on this env, whoever makes it (writer, registry,
  // snapshot flip), bumps the shared slot once it has committed.
  const commitSync = env.transactionSync.bind(env);
  env.transactionSync = ((fn: () => unknown, flags?: number) => {
    prepareWrite();
    const out = commitSync(fn, flags);
    Atomics.add(commits.cells, commits.index, 1);
    return out;
  }) as typeof env.transactionSync;
  const refresh = () => {
    const g = Atomics.load(cells, index);
    const c = Atomics.load(commits.cells, commits.index);
    if (g !== seen || c !== seenCommits) {
      seen = g;
      seenCommits = c;
      env.resetReadTxn();
      reset();
    }
    holding ??= setTimeout(release, READ_HOLD_MS).unref();
    return g;
  };
  const store: Store = {
    path,
    env,
    // Measured (bench:micro, loaded machine): ≈ 10–20 ns over a held db handle, 19–21 ns with the commit check (two Atomics.loads), against ≈ 700–2,500 ns for the get itself.
    get members() {
      return generations[refresh()]!;
    },
    refresh,
    reading: reading as GetOptions,
    generations,
    generation: () => Atomics.load(cells, index),
    setGeneration: (g) => Atomics.store(cells, index, g),
    ...dbs,
    prepareWrite,
    close: () => {
      if (holding !== null) clearTimeout(holding);
      holding = null;
      // Reads after close go to lmdb-js's own transaction, which refuses them.
      delete reading.transaction;
      txn?.abort();
      txn = null;
      return env.close();
    },
  };
  checkSchema(store, !opts.readOnly);
  if (!opts.readOnly) settleFreeList(store);
  return store;
}

/**
 * A compacted copy (`segd backup`: LMDB's compacting copy) has an empty
 * free-page database behind a long transaction history. lmdb-js 3.5's page
 * allocator then fails the first write transaction that needs more than a
 * few pages: an assertion abort, a segfault or MDB_BAD_VALSIZE in
 * mdb_page_alloc (`segd import` of 2,000 records onto a backup of 20,000
 * users; a restored node's first catch-up batch when it has no checkpoint to
 * adopt). One small transaction first frees a page, so the free-page
 * database is not empty when a big one begins.
 */
function settleFreeList(store: Store): void {
  const free = (store.env.getStats() as { free?: { entryCount?: number } }).free?.entryCount;
  if (free === 0) store.meta.putSync('schema', SCHEMA_VERSION);
}

function checkSchema(store: Store, mayInit: boolean): void {
  const v = store.meta.get('schema');
  if (v === undefined) {
    if (!mayInit) throw new SchemaError(`${store.path}: no schema version (not initialised by segd)`);
    if (storedUsers(store) > 0) {
      throw new SchemaError(`${store.path}: holds data but no schema version; refusing to guess its layout`);
    }
    store.meta.putSync('schema', SCHEMA_VERSION);
    return;
  }
  if (v !== SCHEMA_VERSION) {
    throw new SchemaError(
      `${store.path}: schema version ${JSON.stringify(v)} is not one this segd understands (${SCHEMA_VERSION}); ` +
        'use the segd release that wrote it, or start from an empty data dir',
    );
  }
}

/** Loader transactions committed so far (bumped inside each one): what a saved filter is checked against. */
export function writeSequence(store: Store): number {
  return (store.meta.get('writes') as number | undefined) ?? 0;
}

export function userCount(store: Store): number {
  return (store.members.getStats() as { entryCount: number }).entryCount;
}

/** Users in either generation: a store with any is not empty (for seeding and schema checks). */
function storedUsers(store: Store): number {
  return store.generations.reduce((n, db) => n + (db.getStats() as { entryCount: number }).entryCount, 0);
}
