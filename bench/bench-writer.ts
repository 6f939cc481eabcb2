// The writer's cost per record and the JetStream replay rate:
// `npm run bench:writer [-- --users 1000000 --section writer|nats|all]`.
//
// In process, on a store of `--users` synthetic users (kept in `--store` and
// reused by the next run when given), with push-shaped records (an `add` of
// two random segments for a random existing user):
//
// - writer: `Writer.apply` in batches, variants alternating round by round
//   (other processes share the machine; a round's figures are taken
//   together). CPU from process.cpuUsage, user and system apart, so another
//   process's load shows as wall time, not as this process's CPU.
// - nats: a real local nats-server holding a backlog of one-record messages,
//   drained by a JetStreamSource (the server's own source class) from its
//   start: messages/s, and CPU per message of this process and of
//   nats-server. The replay rate is what bounds a restored node's time to
//   ready (docs/scale-out.md). `--before FILE`: another build's
//   jetstream.js drains every other round, for a before/after under the
//   same load.
//
// The store is watched as a server watches it (server/supervisor.ts): the
// outbox observes every membership write (store/member-watch.ts), and with
// `--insights on` the insights index keeps its bitmaps and ordinals too;
// `--insights both` runs each writer variant on the store with the index and
// on a copy without it in turn, the same records to each, so the on/off
// comparison is made under one load of the shared machine.
// `--outbox off` leaves the writer bare (no watch at all), as the runs of
// docs/benchmarks/2026-12-03-writer.md's first pass measured it.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { jetstreamManager } from '@nats-io/jetstream';
import { openStore, userCount, type Store } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { JetStreamSource, type JetStreamStats } from '../src/loader/jetstream.js';
import { uidFor, DEFAULT_SYNTHETIC, FIRST_SEGMENT_ID } from '../src/gen/synthetic.js';
import { seedSynthetic, pushShapedRecords, TAXONOMY } from './seed-writer.js';
import { prng } from '../src/loadtest/key-mix.js';
import { nowSeconds } from '../src/lookup/segments.js';
import { intFlag, parseFlags, type Flags } from '../src/terminal/flags.js';
import { installCleanupHandlers } from '../src/loadtest/processes.js';
import { runBench } from './run-bench.js';
import { startBenchNats } from './scale-nodes.js';
import { InsightsIndex } from '../src/insights/insights-index.js';
import { OutboxWriter } from '../src/outbound/outbox.js';
import { DestinationRules } from '../src/outbound/deltas.js';
import { Registry } from '../src/partners/registry.js';
import { cpuSecondsOfStat } from './proc-stat.js';

const say = (msg: string) => console.log(`[bench:writer ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const SEED = DEFAULT_SYNTHETIC.seed;

/** Fills an empty store with `users` synthetic users (as bench:micro does). */
function seed(store: Store, writer: Writer, users: number): void {
  const t0 = performance.now();
  seedSynthetic(writer, users);
  say(`seeded ${users.toLocaleString('en-US')} users in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

interface Cost {
  /** µs of CPU per record (or message), user and system. */
  user: number;
  sys: number;
  /** µs of wall time per record. */
  wall: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => x.toFixed(2).padStart(7);

function measure(n: number, fn: () => void): Cost {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { user: c.user / n, sys: c.system / n, wall: (wall * 1000) / n };
}

/**
 * A transaction flag set for every commit of the store while `fn` runs (the
 * lmdb-js beginTxn flags: 1 abortable, 2 synchronous commit, 0x10000 flush
 * after the write lock is released (overlappingSync), 0x40000 no meta sync).
 */
function withTxnFlags<T>(store: Store, flags: number | undefined, fn: () => T): T {
  const env = store.env;
  const own = Object.getOwnPropertyDescriptor(env, 'transactionSync')!;
  const commit = env.transactionSync.bind(env);
  if (flags !== undefined)
    env.transactionSync = ((cb: () => unknown, f?: number) => commit(cb, f ?? flags)) as typeof env.transactionSync;
  try {
    return fn();
  } finally {
    Object.defineProperty(env, 'transactionSync', own);
  }
}

interface Variant {
  name: string;
  batch: number;
  flags?: number;
}

const ALL_VARIANTS: Variant[] = [
  { name: 'batch 1,200, default commit', batch: 1200 },
  { name: 'batch 1,200, flags 0x10003 (sync after unlock)', batch: 1200, flags: 0x10003 },
  { name: 'batch 1,200, flags 0x40003 (no meta sync)', batch: 1200, flags: 0x40003 },
  { name: 'batch 100', batch: 100 },
  { name: 'batch 5,000', batch: 5000 },
  { name: 'batch 10,000', batch: 10_000 },
  { name: 'batch 20,000', batch: 20_000 },
  { name: 'batch 50,000', batch: 50_000 },
];

/** A store the writer section writes: with `--insights both`, one with the index and a copy without it. */
interface Target {
  name: string;
  store: Store;
  writer: Writer;
}

function writerSection(
  targets: Target[],
  users: number,
  perRound: number,
  rounds: number,
  variants: Variant[],
): object {
  const rnd = prng(42);
  const runs = variants.flatMap((v) =>
    targets.map((t) => ({ v, t, name: targets.length > 1 ? `${v.name}, ${t.name}` : v.name })),
  );
  const costs: Cost[][] = runs.map(() => []);
  for (let round = 0; round <= rounds; round++) {
    variants.forEach((v) => {
      const recs = pushShapedRecords(perRound, users, rnd);
      const now = nowSeconds();
      // With two stores, the same records to each, the first of the pair alternating round by round.
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const k = runs.findIndex((r) => r.v === v && r.t === t);
        const cost = measure(perRound, () =>
          withTxnFlags(t.store, v.flags, () => {
            for (let i = 0; i < recs.length; i += v.batch) t.writer.apply(recs.slice(i, i + v.batch), now);
          }),
        );
        if (round > 0) costs[k]!.push(cost); // round 0 warms up
      }
    });
  }
  console.log(
    `\nWriter.apply, ${users.toLocaleString('en-US')} users, ${perRound.toLocaleString('en-US')} push-shaped records per variant per round, median of ${rounds} alternating rounds (µs per record)\n`,
  );
  console.log(`${'variant'.padEnd(60)}    user     sys     cpu    wall`);
  return runs.map(({ v, name }, k) => {
    const cs = costs[k]!;
    const cpu = median(cs.map((c) => c.user + c.sys));
    const mid = cs.find((c) => c.user + c.sys === cpu)!;
    console.log(
      `${name.padEnd(60)} ${fmt(mid.user)} ${fmt(mid.sys)} ${fmt(cpu)} ${fmt(median(cs.map((c) => c.wall)))}`,
    );
    return { ...v, name, user: mid.user, sys: mid.sys, cpu, wall: median(cs.map((c) => c.wall)), rounds: cs };
  });
}

/** utime + stime of a process, in seconds (/proc). */
function cpuSecondsOf(pid: number): number {
  return cpuSecondsOfStat(`/proc/${pid}/stat`);
}

async function natsSection(
  store: Store,
  writer: Writer,
  users: number,
  msgs: number,
  rounds: number,
  before: string | null,
): Promise<object> {
  say('starting a nats-server (JetStream, one node)');
  const nats = await startBenchNats(1);
  const server = [...nats.nodes.values()][0]!;
  const rnd = prng(7);
  say(`publishing a backlog of ${msgs.toLocaleString('en-US')} one-record messages`);
  const t0 = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < msgs; i++) {
    const uid = uidFor(SEED, Math.floor(rnd() * users));
    const a = FIRST_SEGMENT_ID + Math.floor(rnd() * TAXONOMY);
    const b = FIRST_SEGMENT_ID + Math.floor(rnd() * TAXONOMY);
    inflight.push(nats.js.publish('segments.stream', `{"op":"add","uid":"${uid}","segments":[${a},${b}]}\n`));
    if (inflight.length >= 2000) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  say(`published in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const jsm = await jetstreamManager(nats.nc);
  const lastSeq = (await jsm.streams.info('SEGMENTS')).state.last_seq;
  const log = pino({ level: 'warn' });
  const runs: Array<{
    before: boolean;
    msgsPerS: number;
    segd: Cost;
    natsServerUsPerMsg: number;
    transactions: number;
  }> = [];
  for (let round = 0; round < rounds; round++) {
    // Each round drains the whole stream from its start: a new durable, and no checkpoint to adopt.
    for (const key of store.meta.getKeys({ start: 'ckpt:nats:', end: 'ckpt:nats:\uffff' }))
      await store.meta.remove(key as string);
    const durable = `bench-${round}`;
    let seen = 0;
    let done: () => void = () => undefined;
    const drained = new Promise<void>((r) => (done = r));
    // Odd rounds run the other build's source, if one is given: before and after under the same load.
    const Source =
      before !== null && round % 2 === 1
        ? ((await import(before)) as { JetStreamSource: typeof JetStreamSource }).JetStreamSource
        : JetStreamSource;
    const src = new Source(
      store,
      writer,
      {
        servers: nats.urls,
        stream: 'SEGMENTS',
        subject: 'segments.>',
        durable,
        batch: 1000,
        maxRecords: 50_000,
        maxUidBytes: 128,
        shard: null,
      },
      log,
      (s: JetStreamStats) => {
        seen += s.applied + s.stale + s.rejected + s.skipped;
        if (seen >= lastSeq) done();
      },
    );
    // Records per transaction: how the source cut the backlog.
    const txns: number[] = [];
    const apply = writer.apply.bind(writer);
    writer.apply = (changes, nowSec, checkpoint) => (txns.push(changes.length), apply(changes, nowSec, checkpoint));
    const n0 = cpuSecondsOf(server.pid!);
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    src.start();
    await drained;
    const wall = performance.now() - w0;
    const c = process.cpuUsage(c0);
    const natsCpu = cpuSecondsOf(server.pid!) - n0;
    await src.stop();
    writer.apply = apply;
    await jsm.consumers.delete('SEGMENTS', durable);
    const run = {
      before: Source !== JetStreamSource,
      msgsPerS: Math.round(lastSeq / (wall / 1000)),
      segd: { user: c.user / lastSeq, sys: c.system / lastSeq, wall: (wall * 1000) / lastSeq },
      natsServerUsPerMsg: (natsCpu * 1e6) / lastSeq,
      transactions: txns.length,
      recordsPerTxn: { median: median(txns), max: Math.max(...txns) },
    };
    runs.push(run);
    say(
      `drain ${round + 1}/${rounds}${Source === JetStreamSource ? '' : ' (before)'}: ${run.msgsPerS.toLocaleString('en-US')} msgs/s; this process ${fmt(run.segd.user)} user + ${fmt(run.segd.sys)} sys µs/msg; nats-server ${run.natsServerUsPerMsg.toFixed(1)} µs/msg; ${txns.length} transactions (records: median ${run.recordsPerTxn.median}, max ${run.recordsPerTxn.max})`,
    );
  }
  await nats.stop();
  const summary = (name: string, rs: typeof runs) =>
    rs.length &&
    console.log(
      `JetStream replay of ${lastSeq.toLocaleString('en-US')} one-record messages, ${name}: median ${median(rs.map((r) => r.msgsPerS)).toLocaleString('en-US')} msgs/s; CPU per message (median): segd ${median(rs.map((r) => r.segd.user)).toFixed(1)} user + ${median(rs.map((r) => r.segd.sys)).toFixed(1)} sys µs, nats-server ${median(rs.map((r) => r.natsServerUsPerMsg)).toFixed(1)} µs`,
    );
  console.log('');
  summary(
    'this build',
    runs.filter((r) => !r.before),
  );
  summary(
    '--before',
    runs.filter((r) => r.before),
  );
  return { messages: lastSeq, runs };
}

async function main(f: Flags): Promise<void> {
  const users = intFlag(f, 'users', { min: 1000, max: 100_000_000, def: 1_000_000 });
  const perRound = intFlag(f, 'records', { min: 1000, max: 10_000_000, def: 100_000 });
  const rounds = intFlag(f, 'rounds', { min: 1, max: 50, def: 3 });
  const msgs = intFlag(f, 'msgs', { min: 1000, max: 10_000_000, def: 50_000 });
  const section = typeof f.section === 'string' ? f.section : 'all';
  if (!['writer', 'nats', 'all'].includes(section)) throw new Error('--section is writer, nats or all');
  // both: the writer section alternates between the store with the index and a copy of it without.
  const both = f.insights === 'both';
  if (both && section !== 'writer') throw new Error('--insights both is for --section writer');
  const insights = both || onOff(f, 'insights', false);
  const outbox = onOff(f, 'outbox', true);
  if (insights && !outbox) throw new Error('--insights on watches the store: it needs --outbox on');
  const variants =
    typeof f.batches === 'string'
      ? f.batches.split(',').map((b) => {
          const batch = intFlag({ batches: b.trim() }, 'batches', { min: 1, max: 1_000_000 });
          return { name: `batch ${batch.toLocaleString('en-US')}`, batch };
        })
      : ALL_VARIANTS;
  installCleanupHandlers(say);
  const keep = typeof f.store === 'string' ? f.store : null;
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'segd-bench-writer-'));
  if (keep && !existsSync(keep)) mkdirSync(keep, { recursive: true });
  const store = openStore(dir);
  const copy = `${dir}-noindex`;
  let bare: Store | null = null;
  try {
    // As the server: the index and the outbox watch the store before the writer's first write.
    if (insights) {
      const t0 = performance.now();
      const index = new InsightsIndex(store);
      say(
        `insights index ${index.rebuilt ? 'rebuilt' : 'opened'} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    }
    if (outbox) new OutboxWriter(store, new DestinationRules(Registry.load(store)), () => undefined);
    const writer = new Writer(store);
    const have = userCount(store);
    if (have === 0) seed(store, writer, users);
    else if (have !== users) throw new Error(`${dir} holds ${have} users, not ${users}: give another --store`);
    else say(`reusing ${dir} (${have.toLocaleString('en-US')} users)`);
    const targets: Target[] = [{ name: insights ? 'index on' : 'index off', store, writer }];
    if (both) {
      // A copy of the seeded store (no transaction open: the files are consistent), watched as a server without the index.
      rmSync(copy, { recursive: true, force: true });
      cpSync(dir, copy, { recursive: true });
      bare = openStore(copy);
      new OutboxWriter(bare, new DestinationRules(Registry.load(bare)), () => undefined);
      targets.push({ name: 'index off', store: bare, writer: new Writer(bare) });
    }
    const result: Record<string, unknown> = {
      users,
      insights: both ? 'both' : insights,
      outbox,
      loadavgBefore: loadavg(),
    };
    if (section !== 'nats') result.writer = writerSection(targets, users, perRound, rounds, variants);
    if (section !== 'writer')
      result.nats = await natsSection(
        store,
        writer,
        users,
        msgs,
        rounds,
        typeof f.before === 'string' ? resolve(f.before) : null,
      );
    say(
      `load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} (other processes share this machine)`,
    );
    if (typeof f.out === 'string') writeFileSync(f.out, JSON.stringify(result, null, 2));
  } finally {
    await store.close();
    if (bare !== null) await bare.close();
    rmSync(copy, { recursive: true, force: true });
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

function onOff(f: Flags, name: string, def: boolean): boolean {
  const v = f[name];
  if (v === undefined) return def;
  if (v !== 'on' && v !== 'off') throw new Error(`--${name} is on or off`);
  return v === 'on';
}

const flags = parseFlags('npm run bench:writer --', process.argv.slice(2), {
  users: 'users in the store (default 1000000)',
  records: 'records per writer variant per round (default 100000)',
  rounds: 'measured rounds (default 3; the writer section also warms up one)',
  msgs: 'one-record messages in the JetStream backlog (default 50000)',
  section: 'writer | nats | all (default all)',
  // Not --dir: roaring's loader (node-pre-gyp) reads process.argv and takes --dir for its own --directory.
  store: 'keep the seeded store in this directory and reuse it next time (default: a temporary directory)',
  before: 'nats: another build of dist/src/loader/jetstream.js, run in every other round (an A/B under the same load)',
  insights:
    'on | off: the insights index watches the store, as a server with SEGD_INSIGHTS=on (default off); both: --section writer alternates between the store with the index and a copy without it',
  outbox: 'on | off: the outbox watches the store, as in every server (default on)',
  batches: 'writer: only plain variants of these transaction sizes, e.g. 1200,20000 (default: every variant)',
  out: 'write the results as JSON to this file',
});
runBench(() => main(flags));
