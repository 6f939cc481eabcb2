// The insights index, in process on real LMDB: `npm run bench:insights
// [-- --users N --rounds R --batch B --snapshot-only]`, or `-- --at-scale --users 10000000
// [--store DIR]` for the queries, memory and restart alone at a size the
// ingest comparison would take hours at.
//
//   ingest   the same synthetic deltas (adds, then re-adds with other segments)
//            applied by the writer into two fresh stores, index off and on
//            (both watched by the outbox, as every server's store is:
//            store/member-watch.ts; `--outbox off` leaves the writer bare
//            with the index off, so the "on" rounds also pay for the watch),
//            a transaction of each mode in turn, R rounds of fresh stores
//            after an unmeasured warm-up round on a tenth of the users (each
//            mode's code compiled, as in a server that has run a while):
//            records/s and the on/off ratio, by the clock and by CPU time (the
//            process's user + system time: on a machine shared with other jobs
//            the steadier of the two), with the median of each round's own
//            on/off (its transactions interleaved, under the same load);
//            likewise, in alternating rounds after
//            an unmeasured warm-up load of each mode, a snapshot file of every
//            user loaded into an empty store (`--snapshot-only`: that
//            comparison alone), with the median of each round's own on/off
//            (the two loads of a round run back to back, under the same load).
//   queries  overlap of the two largest segments, affinity of the largest
//            against every segment, reach of a 5-term expression (medians).
//   restart  the index saved, loaded again, and rebuilt from a scan.
//   memory   bitmap bytes per membership.
//
// --at-scale writes the users once, index on (kept in --store DIR when given,
// and used again by the next run there), then measures queries, memory and
// restart: overlap and affinity of the two largest segments and of the two
// nearest 1M members, and the rebuild by the clock and by CPU time.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { intFlag, parseFlags } from '../src/terminal/flags.js';
import { Synthetic, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { openStore, type Store } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { SnapshotLoader } from '../src/loader/snapshot.js';
import type { Change } from '../src/loader/records.js';
import { InsightsIndex } from '../src/insights/insights-index.js';
import { InsightsQueries } from '../src/insights/queries.js';
import { loadIndex, saveIndex } from '../src/insights/persist.js';
import { OutboxWriter } from '../src/outbound/outbox.js';
import { DestinationRules } from '../src/outbound/deltas.js';
import { Registry } from '../src/partners/registry.js';
import { runBench } from './run-bench.js';
import { seedSynthetic } from './seed-writer.js';
import type { Bitmap } from '../src/insights/generation-index.js';

const flags = parseFlags(
  'npm run bench:insights --',
  process.argv.slice(2),
  {
    users: 'users in the data set (default 200000)',
    rounds: 'ingest rounds per mode, alternating (default 3)',
    batch: 'changes per writer transaction (default 5000)',
    'at-scale': 'only queries, memory and restart, on one store written once (no ingest or snapshot comparison)',
    store: 'with --at-scale: the store directory, written when empty and kept (default: a temp dir, removed)',
    outbox: 'on | off: the outbox watches the stores of both modes, as in every server (default on)',
    'snapshot-only': 'only the snapshot load comparison',
  },
  ['at-scale', 'snapshot-only'],
);
const USERS = intFlag(flags, 'users', { min: 1000, max: 50_000_000, def: 200_000 });
const ROUNDS = intFlag(flags, 'rounds', { min: 1, max: 20, def: 3 });
const BATCH = intFlag(flags, 'batch', { min: 1, max: 1_000_000, def: 5000 });
if (flags.outbox !== undefined && flags.outbox !== 'on' && flags.outbox !== 'off')
  throw new Error('--outbox is on or off');
const OUTBOX = flags.outbox !== 'off';

/** A store opened as a server opens it: the index (when on) and the outbox watch it before the writer's first write. */
function open(dir: string, indexOn: boolean): { store: Store; index: InsightsIndex | null } {
  const store = openStore(dir);
  const index = indexOn ? new InsightsIndex(store) : null;
  if (OUTBOX) new OutboxWriter(store, new DestinationRules(Registry.load(store)), () => undefined);
  return { store, index };
}

const gen = new Synthetic({ ...DEFAULT_SYNTHETIC, ttlShare: 0 });
const NOW = Math.floor(Date.now() / 1000);

/**
 * Pass 0 adds every user; pass 1 adds each user to other segments (a delta
 * touching every user): users [from, to) of `pass`. Made a batch at a time,
 * outside the time measured, so the process's heap holds one batch rather
 * than every change of the run: a major GC walks the live heap, and with a
 * 400k-change fixture held each took 0.1–0.3 s (--trace-gc), 2–6% of a
 * mode's CPU in a round, landing in whichever mode's transaction ran.
 * Scavenging the fresh batch lands in both modes instead, as a server's
 * freshly decoded batches do: "off" costs ~2 µs a change more than with
 * the changes held, which pulls the on/off ratio toward 1 (docs/insights.md).
 */
function changes(pass: number, from: number, to: number): Change[] {
  const out: Change[] = [];
  for (let i = from; i < to; i++) {
    const u = gen.user(pass === 0 ? i : (i * 7919) % USERS);
    const ids = u.segments.map((s) => (typeof s === 'number' ? s : s.id)).map((id) => id + pass * 3);
    out.push({ op: 'add', uid: gen.user(i).uid, ids, ttls: ids.map(() => 0), ts: NOW - 100 + pass });
  }
  return out;
}

/** Seconds of CPU (user + system) since `from`. */
const cpuSince = (from: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(from);
  return (c.user + c.system) / 1e6;
};

type Mode = 'off' | 'on';

/**
 * One ingest round: both passes over the first `users` users applied to a
 * fresh store per mode, a transaction of each in turn (the first of each pair alternating), so both modes run
 * under the same load of the shared machine rather than minutes apart.
 * Changes per second of each mode, by the clock and per CPU second.
 */
function ingestRound(
  opened: Record<Mode, { store: Store; index: InsightsIndex | null }>,
  users: number,
): Record<Mode, { wall: number; cpu: number }> {
  const writers = { off: new Writer(opened.off.store), on: new Writer(opened.on.store) };
  const ms = { off: 0, on: 0 };
  const cpu = { off: 0, on: 0 };
  let n = 0;
  let k = 0;
  for (const pass of [0, 1])
    for (let i = 0; i < users; i += BATCH, k++) {
      const batch = changes(pass, i, Math.min(i + BATCH, users));
      n += batch.length;
      for (const mode of k % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        writers[mode].apply(batch, NOW);
        cpu[mode] += cpuSince(c0);
        ms[mode] += performance.now() - t0;
      }
    }
  // The changes still queued for the bitmaps are applied in the time measured, as a query would have them applied.
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  void opened.on.index!.active;
  cpu.on += cpuSince(c0);
  ms.on += performance.now() - t0;
  const rate = (mode: Mode) => ({ wall: n / (ms[mode] / 1000), cpu: n / cpu[mode] });
  return { off: rate('off'), on: rate('on') };
}

/** A fresh temp dir, listed in `dirs` for removal. */
function temp(dirs: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-insights-'));
  dirs.push(dir);
  return dir;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
function time(fn: () => unknown, runs: number): number {
  const ms: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function main(): Promise<void> {
  const dirs: string[] = [];
  try {
    const kept = flags['snapshot-only'] === true ? null : await ingest(dirs);
    await snapshots(dirs);
    if (kept !== null) await measure(kept.store, kept.index, kept.dir);
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** The ingest comparison; returns one "on" store, open, for the queries. */
async function ingest(dirs: string[]): Promise<{ store: Store; index: InsightsIndex; dir: string }> {
  const rates: Record<'off' | 'on', number[]> = { off: [], on: [] };
  const cpuRates: Record<'off' | 'on', number[]> = { off: [], on: [] };
  let kept: { store: Store; index: InsightsIndex; dir: string } | null = null;
  // Round -1 compiles each mode's code on a tenth of the users and is not counted.
  for (let r = -1; r < ROUNDS; r++) {
    const opened = { off: open(temp(dirs), false), on: open(temp(dirs), true) };
    const round = ingestRound(opened, r < 0 ? Math.ceil(USERS / 10) : USERS);
    if (r < 0) {
      await opened.off.store.close();
      await opened.on.store.close();
      continue;
    }
    for (const mode of ['off', 'on'] as const) {
      rates[mode].push(round[mode].wall);
      cpuRates[mode].push(round[mode].cpu);
    }
    await opened.off.store.close();
    if (kept === null) kept = { store: opened.on.store, index: opened.on.index!, dir: dirs.at(-1)! };
    else await opened.on.store.close();
  }
  const on = median(rates.on);
  const off = median(rates.off);
  console.log(
    `ingest: ${USERS} users × 2 passes, batch ${BATCH}, outbox ${OUTBOX ? 'on' : 'off'}: index off ${Math.round(off)} changes/s, on ${Math.round(on)} changes/s ` +
      `(on/off ${(on / off).toFixed(3)}; rounds off ${rates.off.map(Math.round).join(', ')}, on ${rates.on.map(Math.round).join(', ')}); ` +
      `per CPU second: off ${Math.round(median(cpuRates.off))}, on ${Math.round(median(cpuRates.on))} (on/off ${(median(cpuRates.on) / median(cpuRates.off)).toFixed(3)}; ` +
      `rounds off ${cpuRates.off.map(Math.round).join(', ')}, on ${cpuRates.on.map(Math.round).join(', ')}; ` +
      `median of the rounds' own on/off ${median(cpuRates.on.map((x, i) => x / cpuRates.off[i]!)).toFixed(3)} by CPU, ` +
      `${median(rates.on.map((x, i) => x / rates.off[i]!)).toFixed(3)} by the clock); load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
  );
  return kept!;
}

/** Snapshot loads of every user into an empty store, index off and on in alternating rounds. */
async function snapshots(dirs: string[]): Promise<void> {
  const snapDir = mkdtempSync(join(tmpdir(), 'segd-bench-insights-'));
  dirs.push(snapDir);
  const file = join(snapDir, 'all.snapshot.ndjson');
  writeFileSync(file, Array.from({ length: USERS }, (_, i) => gen.line(i, NOW - 50)).join(''));
  const snap: Record<'off' | 'on', number[]> = { off: [], on: [] };
  const snapCpu: Record<'off' | 'on', number[]> = { off: [], on: [] };
  // Round -1 warms up each mode's code (the index's append path is cold until an "on" load ran) and is not counted.
  for (let r = -1; r < ROUNDS; r++) {
    for (const mode of r % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      const d = mkdtempSync(join(tmpdir(), 'segd-bench-insights-'));
      dirs.push(d);
      const { store: s, index } = open(d, mode === 'on');
      const loader = new SnapshotLoader(s, new Writer(s));
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const sum = await loader.load(file, {
        checkpointKey: 'ckpt',
        batchSize: 5000,
        maxUidBytes: 128,
        maxLineBytes: 1 << 20,
      });
      if (index !== null) void index.active;
      const cpu = cpuSince(c0);
      if (r >= 0) {
        snap[mode].push(sum.memberships / ((performance.now() - t0) / 1000));
        snapCpu[mode].push(sum.memberships / cpu);
      }
      loader.stop();
      await s.close();
    }
  }
  const sOn = median(snap.on);
  const sOff = median(snap.off);
  console.log(
    `snapshot load: index off ${Math.round(sOff)} memberships/s, on ${Math.round(sOn)} (on/off ${(sOn / sOff).toFixed(3)}; ` +
      `rounds off ${snap.off.map(Math.round).join(', ')}, on ${snap.on.map(Math.round).join(', ')}); ` +
      `per CPU second: off ${Math.round(median(snapCpu.off))}, on ${Math.round(median(snapCpu.on))} (on/off ${(median(snapCpu.on) / median(snapCpu.off)).toFixed(3)}; ` +
      `rounds off ${snapCpu.off.map(Math.round).join(', ')}, on ${snapCpu.on.map(Math.round).join(', ')}; ` +
      `median of the rounds' own on/off ${median(snapCpu.on.map((x, i) => x / snapCpu.off[i]!)).toFixed(3)})`,
  );
}

/** Queries, memory, then save, load and rebuild (closes `store`). */
async function measure(store: Store, index: InsightsIndex, dir: string): Promise<void> {
  const gi = index.active;
  const q = new InsightsQueries(() => index.active);
  const bySize = [...gi.segments].sort((a, b) => b[1].size - a[1].size);
  const memberships = bySize.reduce((n, [, bm]) => n + bm.size, 0);
  const [a, b] = [bySize[0]![0], bySize[1]![0]];
  console.log(
    `data: ${gi.users.size} users, ${memberships} memberships, ${gi.segments.size} segments; largest ${bySize[0]![1].size} and ${bySize[1]![1].size}`,
  );
  console.log(`memory: ${(gi.bytes() / memberships).toFixed(2)} bytes per membership (${gi.bytes()} bytes)`);
  console.log(`overlap of the two largest: ${time(() => q.overlap([a, b]), 51).toFixed(3)} ms (median of 51)`);
  const near = nearest(bySize, 1_000_000);
  console.log(
    `overlap of the two nearest 1M (${near.map(([, bm]) => bm.size).join(', ')} members): ` +
      `${time(() => q.overlap(near.map(([id]) => id)), 51).toFixed(3)} ms (median of 51)`,
  );
  console.log(
    `affinity of the largest against ${gi.segments.size} segments: ${time(() => q.affinity(a, 50, 100, null), 11).toFixed(2)} ms (median of 11)`,
  );
  console.log(
    `affinity of a ${near[0]![1].size}-member segment against ${gi.segments.size} segments: ` +
      `${time(() => q.affinity(near[0]![0], 50, 100, null), 11).toFixed(2)} ms (median of 11)`,
  );
  const five = bySize.slice(0, 8).map(([id]) => id);
  const expr = { all: [five[0]!], any: [five[1]!, five[2]!, five[3]!], none: [five[4]!] };
  console.log(`reach of a 5-term expression: ${time(() => q.reach(expr), 21).toFixed(3)} ms (median of 21)`);

  const path = join(dir, 'insights.bin');
  let t0 = performance.now();
  const bytes = await saveIndex(path, index.state());
  const saveMs = performance.now() - t0;
  await store.close();
  const reopened = openStore(dir);
  t0 = performance.now();
  const loaded = new InsightsIndex(reopened, await loadIndex(path));
  const loadMs = performance.now() - t0;
  await reopened.close();
  const again = openStore(dir);
  t0 = performance.now();
  const c0 = process.cpuUsage();
  const rebuilt = new InsightsIndex(again, null);
  const rebuildMs = performance.now() - t0;
  const rebuildCpu = cpuSince(c0);
  console.log(
    `restart: saved ${bytes} bytes in ${saveMs.toFixed(0)} ms; loaded in ${loadMs.toFixed(0)} ms (rebuilt: ${loaded.rebuilt}); ` +
      `rebuilt from a scan in ${rebuildMs.toFixed(0)} ms, ${(rebuildCpu * 1000).toFixed(0)} ms CPU ` +
      `(${rebuilt.active.users.size} users, ${((rebuildMs * 1000) / rebuilt.active.users.size).toFixed(2)} µs a user by the clock, ` +
      `${((rebuildCpu * 1e6) / rebuilt.active.users.size).toFixed(2)} µs of CPU)`,
  );
  // The rebuild saved nothing: the next run finds the file current again.
  await saveIndex(path, rebuilt.state());
  await again.close();
}

/** The two segments whose sizes are nearest `size`. */
function nearest(bySize: Array<[number, Bitmap]>, size: number): Array<[number, Bitmap]> {
  return [...bySize].sort((x, y) => Math.abs(x[1].size - size) - Math.abs(y[1].size - size)).slice(0, 2);
}

/** --at-scale: one store written once with the index on (or found written in --store), then measured. */
async function atScale(): Promise<void> {
  const given = typeof flags.store === 'string' ? flags.store : null;
  const dir = given ?? mkdtempSync(join(tmpdir(), 'segd-bench-insights-'));
  const path = join(dir, 'insights.bin');
  const written = existsSync(path);
  const store = openStore(dir);
  let index: InsightsIndex;
  if (written) {
    const t0 = performance.now();
    index = new InsightsIndex(store, await loadIndex(path));
    console.log(
      `store: ${dir}, written before; index loaded in ${(performance.now() - t0).toFixed(0)} ms (rebuilt: ${index.rebuilt})`,
    );
  } else {
    index = new InsightsIndex(store);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    seedSynthetic(new Writer(store), USERS, {
      onBatch: (done) => {
        if (done % 1_000_000 === 0)
          console.log(`  written ${done} users, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      },
    });
    void index.active;
    console.log(
      `store: ${dir}: ${USERS} users written, index on, in ${((performance.now() - t0) / 1000).toFixed(0)} s (${cpuSince(c0).toFixed(0)} s CPU)`,
    );
  }
  await measure(store, index, dir);
  if (given === null) rmSync(dir, { recursive: true, force: true });
}

runBench(flags['at-scale'] === true ? atScale : main);
