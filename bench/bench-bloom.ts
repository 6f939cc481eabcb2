// Why the known-users filter is worth having, measured: `npm run bench:bloom
// [-- --users N --probes P]`.
//
//   warm: store in the page cache — lookup latency for hits and misses with
//         and without the filter (the filter must not slow hits down);
//   cold: the data set larger than the memory the process is given — each run
//         in a fresh process inside a memory cgroup limited to the process's
//         own needs plus a quarter of the data file, with the page cache
//         dropped first — latency of misses and hits with and without the filter.
// Cold runs need root (cgroup v1 memory controller, /proc/sys/vm/drop_caches);
// they are skipped, with a note, where that is not allowed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hdr from 'hdr-histogram-js';
import { intFlag, numFlag, parseFlags } from '../src/terminal/flags.js';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { SegmentLookup, nowSeconds } from '../src/lookup/segments.js';
import { uidFor, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { seedSynthetic } from './seed-writer.js';
import { BlockedBloom, sizeFor } from '../src/filters/blocked-bloom.js';
import { saveFilter, loadFilter } from '../src/filters/persist.js';

const flags = parseFlags(
  'npm run bench:bloom --',
  process.argv.slice(2),
  {
    users: 'users in the store (default 1M)',
    probes: 'lookups per measurement (default 20000)',
    'base-mb': 'memory a cold child needs besides the data, MB (default 96)',
    child: '(internal) one cold measurement: --dir, --filter yes|no, --kind hit|miss, --offset',
    dir: '(internal)',
    filter: '(internal)',
    kind: '(internal)',
    offset: '(internal)',
  },
  ['child'],
);
const str = (name: string, def: string) => (typeof flags[name] === 'string' ? (flags[name] as string) : def);
const USERS = intFlag(flags, 'users', { min: 1000, max: 100_000_000, def: 1_000_000 });
const PROBES = intFlag(flags, 'probes', { min: 1, max: 10_000_000, def: 20_000 });
const SEED = DEFAULT_SYNTHETIC.seed;
/** What the child needs besides the data: Node, the filter, the keys. */
const BASE_MEMORY = numFlag(flags, 'base-mb', { min: 1, max: 1_000_000, def: 96 }) * 1048576;

interface Stats {
  n: number;
  mean: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

/** Times each call with µs resolution. */
function measure(keys: string[], fn: (k: string) => unknown): Stats {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let total = 0;
  for (const k of keys) {
    const t0 = process.hrtime.bigint();
    fn(k);
    const ns = Number(process.hrtime.bigint() - t0);
    total += ns;
    h.recordValue(Math.max(1, Math.round(ns / 100))); // units of 0.1 µs
  }
  const q = (p: number) => h.getValueAtPercentile(p) / 10;
  return {
    n: keys.length,
    mean: total / keys.length / 1000,
    p50: q(50),
    p99: q(99),
    p999: q(99.9),
    max: h.maxValue / 10,
  };
}

// Flat strings, as uWS hands them over: uidFor builds ropes, and flattening a
// rope on first use would be charged to whichever lookup step reads it first.
const flat = (s: string) => Buffer.from(s, 'latin1').toString('latin1');
const missKeys = (offset: number) => Array.from({ length: PROBES }, (_, i) => flat(uidFor(SEED, USERS + offset + i)));
const hitKeys = (offset: number) =>
  Array.from({ length: PROBES }, (_, i) => flat(uidFor(SEED, (offset + i * 7919) % USERS)));

// Child mode: one cold measurement in a fresh process.
if (flags.child) {
  const dir = str('dir', '');
  const withFilter = str('filter', 'no') === 'yes';
  const kind = str('kind', 'miss');
  const store = openStore(dir);
  const lookup = new SegmentLookup(store);
  if (withFilter) lookup.filter = (await loadFilter(join(dir, 'bench.bloom'))).filter;
  const now = nowSeconds();
  const offset = intFlag(flags, 'offset', { min: 0, max: 1_000_000_000, def: 0 });
  const keys = kind === 'miss' ? missKeys(offset) : hitKeys(offset);
  const stats = measure(keys, (k) => lookup.find(k, now));
  process.stdout.write(JSON.stringify(stats));
  await store.close();
  process.exit(0);
}

const fmt = (s: Stats) =>
  `mean ${s.mean.toFixed(2).padStart(8)} µs  p50 ${s.p50.toFixed(1).padStart(7)}  p99 ${s.p99.toFixed(1).padStart(8)}  p99.9 ${s.p999.toFixed(1).padStart(8)}  max ${s.max.toFixed(0).padStart(7)}`;

const dir = mkdtempSync(join(tmpdir(), 'segd-bench-bloom-'));
try {
  const store = openStore(dir);
  const writer = new Writer(store);
  const filter = new BlockedBloom(sizeFor(USERS, 0.01));
  const now = nowSeconds();
  const t0 = performance.now();
  seedSynthetic(writer, USERS, {
    onUser: (uid) => filter.add(uid),
    onBatch: (done) => {
      if (done % 200_000 === 20_000) process.stderr.write(`\rloading ${done}/${USERS} users…`);
    },
  });
  process.stderr.write(`\rloaded ${USERS} users in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  await saveFilter(join(dir, 'bench.bloom'), filter, USERS, 0);

  console.log(`\nknown-users filter: ${USERS} users, ${PROBES} probes per row, latency per lookup (in-process)\n`);
  console.log('warm (store in the page cache)');
  const lookup = new SegmentLookup(store);
  // Warm everything first so the rows compare like with like.
  measure(hitKeys(1), (k) => lookup.find(k, now));
  measure(missKeys(PROBES * 10), (k) => lookup.find(k, now));
  const rows: Array<[string, Stats]> = [];
  for (const withFilter of [false, true, false, true]) {
    lookup.filter = withFilter ? filter : null;
    const tag = withFilter ? 'with filter   ' : 'without filter';
    rows.push([`  hits   ${tag}`, measure(hitKeys(7), (k) => lookup.find(k, now))]);
    rows.push([`  misses ${tag}`, measure(missKeys(PROBES * 20), (k) => lookup.find(k, now))]);
  }
  for (const [name, s] of rows.slice(4)) console.log(`${name}  ${fmt(s)}`); // second round: warmed JIT
  await store.close();

  console.log(
    '\ncold (data set larger than the memory given: fresh process in a memory cgroup, page cache dropped first)',
  );
  let canDrop = true;
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1');
  } catch (err) {
    canDrop = false;
    console.log(`  skipped: cannot drop the page cache here (${(err as Error).message}); run as root`);
  }
  let cgroup: string | null = null;
  const dataBytes = statSync(join(dir, 'data.mdb')).size;
  const limit = BASE_MEMORY + Math.floor(dataBytes / 4);
  if (canDrop) {
    try {
      const cg = `/sys/fs/cgroup/memory/segd-bench-${process.pid}`;
      mkdirSync(cg);
      writeFileSync(join(cg, 'memory.limit_in_bytes'), String(limit));
      cgroup = cg;
      console.log(
        `  memory limit ${(limit / 1048576).toFixed(0)} MiB (process ≈ ${(BASE_MEMORY / 1048576).toFixed(0)} MiB + ¼ of the ${(dataBytes / 1048576).toFixed(0)} MiB data file)`,
      );
    } catch (err) {
      console.log(`  no memory cgroup (${(err as Error).message}): page cache dropped only`);
    }
  }
  if (canDrop) {
    const cold: Record<string, Stats> = {};
    for (const [kind, withFilter] of [
      ['miss', 'no'],
      ['miss', 'yes'],
      ['hit', 'no'],
      ['hit', 'yes'],
    ] as const) {
      spawnSync('sync');
      writeFileSync('/proc/sys/vm/drop_caches', '1');
      const child = [
        process.execPath,
        process.argv[1]!,
        '--child',
        '--dir',
        dir,
        '--filter',
        withFilter,
        '--kind',
        kind,
        '--offset',
        String(PROBES * 40),
        '--probes',
        String(PROBES),
        '--users',
        String(USERS),
      ];
      // Join the memory cgroup, then become the child: its page cache is charged there.
      const r = cgroup
        ? spawnSync('sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`, 'sh', ...child], { encoding: 'utf8' })
        : spawnSync(child[0]!, child.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
      const s = JSON.parse(r.stdout) as Stats;
      cold[`${kind}-${withFilter}`] = s;
      console.log(
        `  ${kind === 'miss' ? 'misses' : 'hits  '} ${withFilter === 'yes' ? 'with filter   ' : 'without filter'}  ${fmt(s)}`,
      );
    }
    const a = cold['miss-no']!;
    const b = cold['miss-yes']!;
    console.log(
      `\ncold misses: the filter cuts mean latency ${(a.mean / b.mean).toFixed(1)}×, p50 ${(a.p50 / Math.max(b.p50, 0.1)).toFixed(1)}×, p99 ${(a.p99 / Math.max(b.p99, 0.1)).toFixed(1)}×`,
    );
  }
  if (cgroup) rmdirSync(cgroup);
  const wn = rows[4]!;
  const wf = rows[6]!;
  console.log(`warm hits: with filter / without = ${(wf[1].mean / wn[1].mean).toFixed(2)} (mean)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
