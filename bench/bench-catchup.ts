// A restored node's catch-up, in process: `npm run bench:catchup -- --base DIR
// [--changes 200000] [--rounds 3] [--variants NAME,…] [--lmdb-builds NAME=DIR,…]`.
//
// DIR holds a store as `segd backup` writes it (a compacted copy of
// synthetic users, seed 1). Every round copies it afresh, for each variant in
// turn, and a child process opens the copy (a freshly mapped env, as a node
// started on a backup) and applies `--changes` push-shaped records (an `add`
// of two random segments for a random existing user) through the Writer, the
// store watched by the outbox as in every server, in groups of the variant's
// size, each group one transaction with its checkpoint. Measured per record
// from process.resourceUsage(): CPU (user and system apart, so the load of
// other processes shows as wall time, not as this CPU) and minor page
// faults, with the pages written (/proc/self/io), for the whole replay and
// for its parts: the transaction's work (reads, copy-on-write of the pages
// it changes) and its commit (writing the dirty pages, the free list); and
// the CPU, wall clock and faults of each group in turn. Variants alternate
// round by round. `--cold` copies with O_DIRECT, as `segd backup` writes, so
// the copy starts outside the page cache (a volume restored from a snapshot).
//
// `--lmdb-builds stock=DIR,patched=DIR` runs every variant under each of
// these lmdb-js native builds (DIR/build/Release/lmdb.node, chosen through
// node-gyp-build's LMDB_PREBUILD), in turn within a round, the order reversed
// every other round; each child names the addon it mapped, and a child that
// mapped another one fails the run.
import {
  readFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
  openSync,
  readSync,
  closeSync,
  statSync,
  realpathSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore, userCount, type Store } from '../src/store/env.js';
import { ABORT } from 'lmdb';
import { Writer } from '../src/loader/writer.js';
import { pushShapedRecords } from './seed-writer.js';
import { prng } from '../src/loadtest/key-mix.js';
import { nowSeconds } from '../src/lookup/segments.js';
import { intFlag, pairsFlag, parseFlags, type Flags } from '../src/terminal/flags.js';
import { OutboxWriter } from '../src/outbound/outbox.js';
import { segmentIds } from '../src/store/members.js';
import { DestinationRules } from '../src/outbound/deltas.js';
import { Registry } from '../src/partners/registry.js';

const say = (msg: string) => console.log(`[bench:catchup ${new Date().toISOString().slice(11, 19)}] ${msg}`);

interface Variant {
  name: string;
  /** Records per transaction. */
  group: number;
  /** Each group's records applied in key order (stable), not in arrival order. */
  sorted?: boolean;
  /** Before the replay: read the data file through (page cache), or scan every key of the members db (page tables). */
  prefault?: 'read' | 'scan' | 'buffers';
  /** lmdb-js env options (store/env.ts OpenOptions.lmdb). */
  lmdb?: { useWritemap?: boolean; noReadAhead?: boolean; overlappingSync?: boolean; noSync?: boolean };
  /** A writable map with the data file's room preallocated (store/env.ts OpenOptions.writemap). */
  writemap?: { headroom?: number };
}

const VARIANTS: Variant[] = [
  { name: 'group 20k', group: 20_000 },
  { name: 'group 5k', group: 5_000 },
  { name: 'group 10k', group: 10_000 },
  { name: 'group 50k', group: 50_000 },
  { name: 'group 100k', group: 100_000 },
  { name: 'group 50k sorted', group: 50_000, sorted: true },
  { name: 'group 2k', group: 2_000 },
  { name: 'group 20k sorted', group: 20_000, sorted: true },
  { name: 'group 20k file read first', group: 20_000, prefault: 'read' },
  { name: 'group 20k keys scanned first', group: 20_000, prefault: 'scan' },
  { name: 'group 20k page buffers made first', group: 20_000, prefault: 'buffers' },
  { name: 'group 20k writemap', group: 20_000, lmdb: { useWritemap: true } },
  { name: 'group 20k writemap+headroom', group: 20_000, writemap: {} },
  { name: 'group 20k no read-ahead', group: 20_000, lmdb: { noReadAhead: true } },
  { name: 'group 20k sync in the commit', group: 20_000, lmdb: { overlappingSync: false } },
  { name: 'group 20k no sync (unsafe)', group: 20_000, lmdb: { noSync: true, overlappingSync: false } },
];

/** A native build of lmdb-js to run the variants under; no dir: the one lmdb-js finds itself. */
interface Build {
  name: string;
  dir?: string;
}

/** The lmdb-js addon this process has mapped (from /proc/self/maps). */
function mappedLmdbAddon(): string {
  const maps = readFileSync('/proc/self/maps', 'utf8').split('\n');
  const path = maps.map((l) => l.split(/\s+/)[5] ?? '').find((p) => /lmdb[^/]*\.node$/.test(p));
  return path ?? 'none';
}

interface Usage {
  /** Bytes this process handed to write(2) and friends (/proc/self/io wchar). */
  wchar: number;
  user: number;
  sys: number;
  minflt: number;
  majflt: number;
  wall: number;
}

function usage(): Usage {
  const r = process.resourceUsage();
  const io = readFileSync('/proc/self/io', 'utf8');
  return {
    wchar: Number(/wchar: (\d+)/.exec(io)![1]),
    user: r.userCPUTime,
    sys: r.systemCPUTime,
    minflt: r.minorPageFault,
    majflt: r.majorPageFault,
    wall: performance.now() * 1000,
  };
}

function since(u0: Usage, u1: Usage = usage()): Usage {
  return {
    wchar: u1.wchar - u0.wchar,
    user: u1.user - u0.user,
    sys: u1.sys - u0.sys,
    minflt: u1.minflt - u0.minflt,
    majflt: u1.majflt - u0.majflt,
    wall: u1.wall - u0.wall,
  };
}

const add = (a: Usage, b: Usage): Usage => ({
  wchar: a.wchar + b.wchar,
  user: a.user + b.user,
  sys: a.sys + b.sys,
  minflt: a.minflt + b.minflt,
  majflt: a.majflt + b.majflt,
  wall: a.wall + b.wall,
});
const ZERO: Usage = { wchar: 0, user: 0, sys: 0, minflt: 0, majflt: 0, wall: 0 };
const per = (u: Usage, n: number): Usage => ({
  wchar: u.wchar / n,
  user: u.user / n,
  sys: u.sys / n,
  minflt: u.minflt / n,
  majflt: u.majflt / n,
  wall: u.wall / n,
});

/**
 * LMDB copies each page a write transaction changes into a malloc'd buffer
 * and keeps the single-page buffers for later transactions (`me_dpages` in
 * mdb.c), committed or aborted. Makes `pages` of them in a transaction it
 * aborts: each 3,000-byte value takes one overflow page (above a leaf's
 * largest inline value, within one page), under keys that sort before every uid.
 */
function makePageBuffers(store: Store, pages: number): void {
  const value = Buffer.alloc(3000, 0x5a);
  const db = store.generations[0];
  store.env.transactionSync(() => {
    for (let n = 0; n < pages; n++) db.putSync('\u0000page-buffer:' + String(n).padStart(8, '0'), value);
    return ABORT;
  });
}

function prefault(store: Store, how: Variant['prefault']): Usage {
  const u0 = usage();
  if (how === 'read') {
    const fd = openSync(join(store.path, 'data.mdb'), 'r');
    const buf = Buffer.allocUnsafe(1 << 20);
    while (readSync(fd, buf, 0, buf.length, null) > 0);
    closeSync(fd);
  } else if (how === 'scan') {
    let n = 0;
    for (const _ of store.members.getKeys()) n++;
    if (n === 0) throw new Error('scan found no keys');
  } else if (how === 'buffers') {
    makePageBuffers(store, 24_000); // ≈ 1.2 pages a record of a 20,000-record group at 10M
  }
  return since(u0);
}

/** The child: opens `dir`, applies the records of `round` as `v` says, prints one JSON line. */
async function child(dir: string, v: Variant, changes: number, round: number): Promise<void> {
  const store = openStore(dir, {
    ...(v.lmdb ? { lmdb: v.lmdb } : {}),
    ...(v.writemap ? { writemap: v.writemap } : {}),
  });
  new OutboxWriter(store, new DestinationRules(Registry.load(store)), () => undefined);
  const writer = new Writer(store);
  const users = userCount(store);
  const recs = pushShapedRecords(changes, users, prng(1000 + round));
  const pre = v.prefault ? prefault(store, v.prefault) : ZERO;
  // The transaction's work and its commit apart: lmdb-js runs the callback, then commits.
  let work = ZERO;
  let commit = ZERO;
  const env = store.env;
  const txn = env.transactionSync.bind(env);
  env.transactionSync = ((fn: () => unknown, flags?: number) => {
    let mid = ZERO;
    const u0 = usage();
    const out = txn(() => {
      const r = fn();
      mid = usage();
      return r;
    }, flags);
    const u1 = usage();
    work = add(work, since(u0, mid));
    commit = add(commit, since(mid, u1));
    return out;
  }) as typeof env.transactionSync;
  const info0 = env.getStats() as { mapSize?: number; lastPageNumber?: number };
  const u0 = usage();
  const now = nowSeconds();
  let applied = 0;
  const groups: Array<{ cpu: number; wall: number; minflt: number; lastPage: number; free: number }> = [];
  for (let i = 0; i < recs.length; i += v.group) {
    const g0 = usage();
    let group = recs.slice(i, i + v.group);
    if (v.sorted) group = group.sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
    applied += writer.apply(group, now, { key: 'ckpt:bench', value: { seq: i + group.length, at: now } }).applied;
    await new Promise((r) => setImmediate(r)); // as the source between parts: lmdb-js's flush callbacks run
    const g = since(g0);
    const st = env.getStats() as { lastPageNumber: number; free: { entryCount: number } };
    groups.push({
      cpu: Math.round((g.user + g.sys) / group.length),
      wall: Math.round(g.wall / group.length),
      minflt: g.minflt,
      lastPage: st.lastPageNumber,
      free: st.free.entryCount,
    });
  }
  const total = since(u0);
  const info1 = env.getStats() as { mapSize?: number; lastPageNumber?: number };
  // The replayed users' segments (timestamps aside), to compare runs of the same records.
  const answers = createHash('sha256');
  const ids = new Uint32Array(4096);
  for (const uid of [...new Set(recs.map((r) => r.uid))].sort()) {
    const n = segmentIds(store.members.getBinaryFast(uid) as Buffer | undefined, ids);
    answers.update(`${uid}:${ids.subarray(0, n).join(',')}\n`);
  }
  await store.close();
  const file = statSync(join(dir, 'data.mdb'));
  process.stdout.write(
    JSON.stringify({
      users,
      applied,
      total: per(total, changes),
      work: per(work, changes),
      commit: per(commit, changes),
      prefault: pre,
      mapSize: [info0.mapSize, info1.mapSize],
      lastPage: [info0.lastPageNumber, info1.lastPageNumber],
      fileMB: [file.size / 2 ** 20, (file.blocks * 512) / 2 ** 20],
      groups,
      addon: mappedLmdbAddon(),
      answers: answers.digest('hex').slice(0, 16),
    }) + '\n',
  );
}

interface Result {
  users: number;
  applied: number;
  total: Usage;
  work: Usage;
  commit: Usage;
  prefault: Usage;
  mapSize: number[];
  lastPage: number[];
  /** The data file at the end: its size and the disk it holds (MB). */
  fileMB: number[];
  groups: Array<{ cpu: number; wall: number; minflt: number; lastPage: number; free: number }>;
  /** The lmdb-js addon the child mapped. */
  addon: string;
  /** A digest of the replayed users' segments after the replay. */
  answers: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f1 = (x: number) => x.toFixed(1).padStart(6);
const f2 = (x: number) => x.toFixed(2).padStart(6);

function parent(f: Flags): void {
  const base = typeof f.base === 'string' ? f.base : null;
  if (base === null) throw new Error('--base DIR (a store as `segd backup` writes it) is required');
  const changes = intFlag(f, 'changes', { min: 1000, max: 10_000_000, def: 200_000 });
  const rounds = intFlag(f, 'rounds', { min: 1, max: 50, def: 3 });
  const cold = f.cold === true;
  const names = typeof f.variants === 'string' ? f.variants.split(',').map((s) => s.trim()) : null;
  const chosen = names ? names.map((n) => VARIANTS.find((v) => v.name === n) ?? fail(n)) : VARIANTS;
  const named = pairsFlag(f, 'lmdb-builds').map(([name, dir]) => {
    if (!dir) throw new Error(`--lmdb-builds: ${name} names no DIR`);
    return { name, dir: resolve(dir) };
  });
  const builds: Build[] = named.length > 0 ? named : [{ name: '' }];
  // Every variant under every build: one case each, named "variant @build".
  const cases = chosen.flatMap((v) => builds.map((b) => ({ v, b, name: b.dir ? `${v.name} @${b.name}` : v.name })));
  const work = mkdtempSync(join(typeof f.tmp === 'string' ? f.tmp : tmpdir(), 'segd-bench-catchup-'));
  const script = fileURLToPath(import.meta.url);
  const results: Result[][] = cases.map(() => []);
  say(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}; ${chosen.length} variants × ${builds.length} lmdb builds × ${rounds} rounds`,
  );
  try {
    for (let round = 0; round < rounds; round++) {
      // Builds in turn within a variant, their order reversed every other round.
      const order = cases.map((_, k) => k);
      if (round % 2 === 1 && builds.length > 1)
        for (let i = 0; i < order.length; i += builds.length)
          order.splice(i, builds.length, ...order.slice(i, i + builds.length).reverse());
      order.forEach((k) => {
        const { v, b, name } = cases[k]!;
        const dir = join(work, 'store');
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir);
        if (cold) copyDirect(join(base, 'data.mdb'), join(dir, 'data.mdb'));
        else cpSync(join(base, 'data.mdb'), join(dir, 'data.mdb'));
        const r = spawnSync(
          process.execPath,
          [
            script,
            '--child',
            dir,
            '--variant',
            JSON.stringify(v),
            '--changes',
            String(changes),
            '--round',
            String(round),
          ],
          {
            encoding: 'utf8',
            maxBuffer: 1 << 24,
            env: b.dir ? { ...process.env, LMDB_PREBUILD: b.dir } : process.env,
          },
        );
        if (r.status !== 0) throw new Error(`child for ${name} failed: ${r.stderr}`);
        const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as Result;
        if (b.dir && res.addon !== realpathSync(join(b.dir, 'build', 'Release', 'lmdb.node')))
          throw new Error(`child for ${name} mapped ${res.addon}, not the build in ${b.dir}`);
        results[k]!.push(res);
        // The same records under another build of the same variant: the same segments.
        const twin = cases.findIndex((c, j) => c.v === v && results[j]!.length === round + 1 && j !== k);
        if (twin >= 0 && results[twin]![round]!.answers !== res.answers)
          throw new Error(`${name}: answers ${res.answers}, ${cases[twin]!.name}: ${results[twin]![round]!.answers}`);
        const t = res.total;
        say(
          `round ${round + 1}, ${name}: ${f1(t.user + t.sys)} µs CPU/record (${f1(t.user)} user ${f1(t.sys)} sys; work ${f1(res.work.user)} + ${f1(res.work.sys)} sys, commit ${f1(res.commit.user)} + ${f1(res.commit.sys)} sys), ${f2(t.minflt)} minor faults/record, ${f2(t.wchar / 4096)} pages written/record, wall ${f1(t.wall)} µs${v.prefault ? `; prefault ${(res.prefault.user + res.prefault.sys) / 1000} ms CPU, ${res.prefault.minflt} faults` : ''}; map ${res.mapSize.join(' → ')}, last page ${res.lastPage.join(' → ')}; file ${res.fileMB.map((x) => x.toFixed(0)).join(' MB, on disk ')} MB; lmdb addon ${res.addon}, answers ${res.answers}; µs/record by group ${res.groups.map((g) => g.cpu).join(' ')} (wall ${res.groups.map((g) => g.wall).join(' ')}; faults ${res.groups.map((g) => g.minflt).join(' ')}); last page ${res.groups.map((g) => g.lastPage).join(' ')}; free-db entries ${res.groups.map((g) => g.free).join(' ')}`,
        );
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const users = results[0]![0]!.users;
  console.log(
    `\n${changes.toLocaleString('en-US')} push-shaped records on a restored store of ${users.toLocaleString('en-US')} users, median of ${rounds} alternating rounds, per record\n`,
  );
  console.log(
    `${'variant'.padEnd(32)}  cpu µs  user µs  sys µs  work µs  commit µs  minflt  work flt  commit flt  pages/rec  wall µs  prefault ms cpu`,
  );
  const summary = cases.map(({ v, name }, k) => {
    const rs = results[k]!;
    const m = (pick: (r: Result) => number) => median(rs.map(pick));
    const row = {
      variant: v,
      name,
      cpu: m((r) => r.total.user + r.total.sys),
      user: m((r) => r.total.user),
      sys: m((r) => r.total.sys),
      work: m((r) => r.work.user + r.work.sys),
      commit: m((r) => r.commit.user + r.commit.sys),
      minflt: m((r) => r.total.minflt),
      workFlt: m((r) => r.work.minflt),
      commitFlt: m((r) => r.commit.minflt),
      pages: m((r) => r.total.wchar / 4096),
      wall: m((r) => r.total.wall),
      prefaultMs: m((r) => (r.prefault.user + r.prefault.sys) / 1000),
      rounds: rs,
    };
    console.log(
      `${name.padEnd(32)} ${f1(row.cpu)}  ${f1(row.user)}  ${f1(row.sys)}  ${f1(row.work)}  ${f1(row.commit)}    ${f2(row.minflt)}  ${f2(row.workFlt)}    ${f2(row.commitFlt)}    ${f2(row.pages)}   ${f1(row.wall)}  ${row.prefaultMs.toFixed(0).padStart(8)}`,
    );
    return row;
  });
  say(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} (other processes share this machine)`,
  );
  if (typeof f.out === 'string') writeFileSync(f.out, JSON.stringify({ users, changes, rounds, summary }, null, 2));
}

/**
 * Copies with O_DIRECT (coreutils dd), as LMDB's own copy (`segd backup`)
 * writes: none of the copy is in the page cache, as on a volume restored
 * from a snapshot or a backup written on another machine.
 */
function copyDirect(from: string, to: string): void {
  const r = spawnSync('dd', [`if=${from}`, `of=${to}`, 'bs=4M', 'oflag=direct', 'status=none'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dd ${from} → ${to} failed: ${r.stderr}`);
}

function fail(name: string): never {
  throw new Error(`no variant ${JSON.stringify(name)}; variants: ${VARIANTS.map((v) => v.name).join(', ')}`);
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  const [, dir, , variant, , changes, , round] = argv;
  child(dir!, JSON.parse(variant!) as Variant, Number(changes), Number(round)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  const flags = parseFlags(
    'npm run bench:catchup --',
    argv,
    {
      base: 'a store as `segd backup` writes it (data.mdb of synthetic users, seed 1); copied afresh for every run',
      changes: 'records replayed per run (default 200000)',
      rounds: 'rounds; each runs every variant once, in turn (default 3)',
      variants: `comma-separated, of: ${VARIANTS.map((v) => v.name).join('; ')} (default all)`,
      tmp: 'where the copies go (default the OS temp directory)',
      cold: 'copy with O_DIRECT (as `segd backup` writes): the copy starts outside the page cache',
      out: 'write the results as JSON to this file',
      'lmdb-builds':
        'NAME=DIR,…: run every variant under each lmdb-js native build DIR/build/Release/lmdb.node, in turn',
    },
    ['cold'],
  );
  try {
    parent(flags);
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  }
}
