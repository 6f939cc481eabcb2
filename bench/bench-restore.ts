// Ready after restore: `npm run bench:restore [-- --users 1000000 --stream-seconds 60 --rate 2000]`.
//
// A NATS JetStream cluster and node A holding `--users` users (`segd gen`,
// imported as its seed) and consuming the stream. Under a sustained stream
// (a thread of its own, updating A's users), `segd backup` copies A; the
// stream goes on for `--stream-seconds`; then node B starts on the copy with
// its own durable consumer and SEGD_NATS_READY_LAG, while the stream still
// runs. Measured: the backup's duration, B's start → listening → loaded →
// /readyz 200, the backlog B had to replay; then, the stream stopped and both
// nodes caught up, B's answers are compared with A's for a sample of users.
// Everything started here is stopped by pid, also on error or Ctrl-C.
//
// --store DIR: A starts on a copy of a store already holding `--users` users
// of seed 1 (`segd gen --seed 1 --ts 0` imported, or a `segd backup` of
// one) instead of generating and importing them (10M: minutes saved a run).
// --pin: node B gets CPU 0 to itself, and the NATS servers, node A and the
// publisher (this process) share CPU 1: B's time to ready as on a node with a
// core of its own, which a 2-core machine cannot otherwise show.
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { intFlag, pairsFlag, parseFlags, type Flags } from '../src/terminal/flags.js';
import { spawn } from 'node:child_process';
import {
  hasCommand,
  installCleanupHandlers,
  pin,
  planPinning,
  run,
  track,
  type Server,
} from '../src/loadtest/processes.js';
import { runBench } from './run-bench.js';
import { uidFor } from '../src/gen/synthetic.js';
import { prng } from '../src/loadtest/key-mix.js';
import { startPublisher } from './stream-publisher.js';
import { SEGD_BIN, envWithoutSegd, startSeededSegd } from './seeded-segd.js';
import { benchDir, CpuMeter, readiness, segmentsOf, startBenchNats, startNode, ThreadCpu } from './scale-nodes.js';

const say = (msg: string) => console.log(`[bench:restore ${new Date().toISOString().slice(11, 19)}] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => Math.round(ms) / 1000;

async function waitCaughtUp(nodes: Server[], ms: number): Promise<boolean> {
  for (const end = performance.now() + ms; performance.now() < end; await sleep(200)) {
    const lags = await Promise.all(nodes.map((n) => readiness(n).then((r) => r.lag)));
    if (lags.every((l) => l === 0)) return true;
  }
  return false;
}

async function main(f: Flags): Promise<void> {
  const users = intFlag(f, 'users', { min: 1000, max: 100_000_000, def: 1_000_000 });
  const streamSeconds = intFlag(f, 'stream-seconds', { min: 0, max: 3600, def: 60 });
  const rate = intFlag(f, 'rate', { min: 1, max: 1_000_000, def: 2000 });
  const records = intFlag(f, 'records', { min: 1, max: 1000, def: 1 });
  const readyLag = intFlag(f, 'ready-lag', { min: 1, max: 1_000_000_000, def: 1000 });
  const sample = intFlag(f, 'sample', { min: 1, max: 1_000_000, def: 2000 });
  const workers = intFlag(f, 'workers', { min: 1, max: 16, def: 1 });
  const natsSize = intFlag(f, 'nats', { min: 1, max: 3, def: 3 });
  const out = typeof f.out === 'string' ? f.out : 'bench-out/bench-restore.json';
  const store = typeof f.store === 'string' ? f.store : null;
  const bPriority = typeof f['b-priority'] === 'string' ? f['b-priority'] : null;
  const bLogs = typeof f['b-logs'] === 'string' ? f['b-logs'] : null;
  const perfOut = typeof f.perf === 'string' ? f.perf : null;
  // Node B's own settings (SEGD_X=v,SEGD_Y=w): one setting compared run by run on the same machine.
  const bEnv = Object.fromEntries(pairsFlag(f, 'b-env'));
  if (natsSize !== 1 && natsSize !== 3) throw new Error('--nats is 1 or 3');
  const pinning = planPinning(f.pin === true, 'unpinned (no --pin): every process shares the cores');
  if (f.pin === true && !pinning.pinned) throw new Error(`--pin: ${pinning.why}`);
  if (perfOut !== null && !pinning.pinned) throw new Error('--perf records node B’s CPU: it needs --pin');
  if (perfOut !== null && !hasCommand('perf')) throw new Error('--perf: no perf here (Debian: linux-perf)');
  // B alone on the server CPU; everything else on the other one.
  const cpus = pinning.pinned ? { b: pinning.serverCpu ?? 0, rest: pinning.generatorCpu ?? 1 } : null;
  const pinRest = (pid: number) => {
    if (cpus !== null) pin(pid, cpus.rest);
  };
  say(
    pinning.pinned
      ? `node B on CPU ${pinning.serverCpu}; NATS, node A and the publisher on CPU ${pinning.generatorCpu}`
      : pinning.why,
  );
  pinRest(process.pid);

  installCleanupHandlers(say);
  say(`starting a ${natsSize}-node NATS JetStream cluster`);
  const nats = await startBenchNats(natsSize);
  for (const proc of nats.nodes.values()) pinRest(proc.pid!);
  const natsEnv = { SEGD_NATS_URL: nats.urls.join(','), SEGD_BLOOM_SAVE_MS: '2000' };
  const dirA = benchDir('segd-bench-restore-a-');
  const startOnCopy = async (from: string, dataDir: string): Promise<Server> => {
    say(`node A on a copy of ${from}`);
    cpSync(from, dataDir, { recursive: true });
    const node = await startNode({ name: 'node-a', urls: nats.urls, dataDir, workers, env: natsEnv });
    await node.waitLog((l) => l.msg === 'ready', 120_000, 'ready');
    return node;
  };
  const { segd: a, imp } =
    store === null
      ? await startSeededSegd({
          dir: dirA,
          users,
          seed: 1,
          workers,
          host: '127.0.0.1',
          env: { ...natsEnv, SEGD_NATS_DURABLE: 'node-a' },
          say,
        })
      : { segd: await startOnCopy(store, join(dirA, 'data')), imp: null };
  pinRest(a.proc.pid!);

  say(`streaming ${rate.toLocaleString('en-US')} msgs/s × ${records} record(s) of A's users`);
  const publisher = await startPublisher({
    urls: nats.urls,
    subject: 'segments.stream',
    rate,
    records,
    users,
    seed: 1,
    taxonomy: 5000,
    inflight: 2000,
  });
  await sleep(5000);
  a.check();
  // A node backed up after it has run a while holds a saved known-users filter,
  // and the copy carries it. A started on a --store copy without one rebuilds it
  // first (10M keys); a backup before that leaves it out, and B would rebuild it
  // on its own thread while it replays (a third of its CPU at 10M).
  const filterMsgs = ['known-users filter built', 'known-users filter loaded'];
  const tFilter = performance.now();
  await a.waitLog((l) => filterMsgs.includes(l.msg as string), 600_000, 'its known-users filter');
  say(`A's known-users filter ready (waited ${secs(performance.now() - tFilter)} s)`);

  const copy = join(benchDir('segd-bench-restore-b-'), 'data');
  say(`segd backup --out ${copy} (under the stream)`);
  const tBackup = performance.now();
  // The wait for A's filter save is production's (2 × SEGD_BLOOM_SAVE_MS, a
  // minute by default), not 2 × the bench's 2 s: under the copy's writeback a
  // save's fsync can take longer than 4 s, the backup then left the filter out,
  // and B rebuilt 10M keys on its catch-up core (ready 14.6 s against 10.8 s).
  const backup = run(process.execPath, [SEGD_BIN, 'backup', '--out', copy, '--filter-wait', '60000'], {
    env: { ...envWithoutSegd(), SEGD_DATA_DIR: join(dirA, 'data'), SEGD_BLOOM_SAVE_MS: '2000' },
  });
  // The backup carries a filter A saved at or after its copy (A checkpoints it
  // every SEGD_BLOOM_SAVE_MS, its sequence alone when no user was added). One
  // new user while the copy runs (it takes 2–9 s at 10M), as a live feed brings them.
  await sleep(3000);
  await jetstream(nats.nc).publish(
    'segments.stream',
    JSON.stringify({ op: 'add', uid: 'restore-new-user', segments: [1] }) + '\n',
  );
  await backup;
  const backupS = secs(performance.now() - tBackup);
  const manifest = JSON.parse(readFileSync(join(copy, 'backup.json'), 'utf8')) as {
    seconds: number;
    users: number;
    filter: string;
    checkpoints: Record<string, { seq: number }>;
  };
  // The stream's checkpoint (the seed import has one of its own).
  const copiedSeq = Object.entries(manifest.checkpoints).find(([k]) => k.startsWith('ckpt:nats:'))?.[1].seq ?? NaN;
  say(
    `backup: ${backupS} s (copy ${manifest.seconds} s), ${manifest.users.toLocaleString('en-US')} users, filter ${manifest.filter}, stream seq ${copiedSeq}`,
  );

  for (let s = 5; s <= streamSeconds; s += 5) {
    await sleep(5000);
    a.check();
    const c = publisher.counts();
    say(
      `${s}/${streamSeconds} s of stream after the backup: ${c.acked.toLocaleString('en-US')} acked, A lag ${(await readiness(a)).lag}`,
    );
  }

  // The copies this bench made (A's store, the backup: 2.6 GB at 10M) can still be
  // in the kernel's writeback, and B's first commits would wait for them in their
  // fsync (a second or more). A node restored in service starts on a copy made
  // well before; so the machine's dirty pages are flushed first, and timed.
  const tSync = performance.now();
  await run('sync', []);
  say(`flushed the machine's dirty pages before B's start (${secs(performance.now() - tSync)} s)`);

  const jsm = await jetstreamManager(nats.nc);
  const lastSeq = (await jsm.streams.info('SEGMENTS')).state.last_seq;
  const backlog = lastSeq - copiedSeq;
  say(`starting node B on the copy (SEGD_NATS_READY_LAG=${readyLag}); the stream is ${backlog} messages past the copy`);
  // B's core from its start, by the wall clock (bench/catchup-timeline.ts lines it up with B's log).
  const perf =
    perfOut !== null && cpus !== null
      ? track(
          spawn('perf', ['record', '-q', '-C', String(cpus.b), '-F', '499', '-k', 'CLOCK_REALTIME', '-o', perfOut], {
            stdio: 'ignore',
          }),
        )
      : null;
  const tStart = performance.now();
  const wallStart = Date.now();
  const b = await startNode({
    name: 'node-b',
    urls: nats.urls,
    dataDir: copy,
    workers,
    env: {
      SEGD_BLOOM_SAVE_MS: '2000',
      SEGD_NATS_READY_LAG: String(readyLag),
      ...(bPriority !== null ? { SEGD_LOADER_PRIORITY: bPriority } : {}),
      ...(bLogs !== null ? { SEGD_LOG_LEVEL: 'debug' } : {}),
      ...bEnv,
    },
    ...(cpus !== null ? { cpu: cpus.b } : {}),
  });
  const listeningS = secs(performance.now() - tStart);
  const cpu = new CpuMeter(
    new Map([
      ['segd A', a.proc.pid!],
      ['segd B', b.proc.pid!],
    ]),
  );
  // B's threads from its consumer's attach (the replay alone, not the start-up) to ready.
  const threadsB = new ThreadCpu(b.proc.pid!);
  let replaying = false;
  cpu.mark();
  let firstLag: number | null = null;
  let readyS = NaN;
  let lagAtReady = 0;
  for (const end = tStart + 300_000; performance.now() < end; await sleep(50)) {
    b.check();
    if (!replaying && b.logs.some((l) => l.msg === 'jetstream source attached')) {
      threadsB.mark();
      replaying = true;
    }
    const r = await readiness(b).catch(() => null);
    if (r?.state === 'catching up' && firstLag === null) firstLag = r.lag;
    if (r?.status === 200) {
      readyS = secs(performance.now() - tStart);
      lagAtReady = r.lag ?? 0;
      break;
    }
  }
  // Loaded: the store opened and the filter loaded or rebuilt; /readyz then waits for the backlog.
  const loaded = b.logs.find((l) => l.msg === 'ready');
  const loadedS = typeof loaded?.time === 'number' ? secs(loaded.time - wallStart) : NaN;
  const attached = b.logs.find((l) => l.msg === 'jetstream source attached');
  const attachedS = typeof attached?.time === 'number' ? secs(attached.time - wallStart) : NaN;
  const adopted = b.logs.some((l) => l.msg === 'jetstream checkpoint adopted from the copied store');
  const filterLine = b.logs.find((l) => typeof l.msg === 'string' && /filter/.test(l.msg));
  const filterBuilt = b.logs.find((l) => l.msg === 'known-users filter built');
  say(
    `node B: listening after ${listeningS} s, loaded after ${loadedS} s, consumer attached after ${attachedS} s, /readyz 200 after ${readyS} s (first backlog seen ${firstLag ?? '?'}; checkpoint adopted: ${adopted})`,
  );
  // Messages B applied between loading and ready: the stream's end then, less its lag, less the copy's end.
  const seqAtReady = (await jsm.streams.info('SEGMENTS')).state.last_seq;
  const replayed = seqAtReady - lagAtReady - copiedSeq;
  const replayPerS = Math.round(replayed / (readyS - loadedS));
  say(
    `node B's known-users filter: ${filterLine?.msg ?? '?'}${filterBuilt ? ` (built in ${String(filterBuilt.ms)} ms)` : ''}`,
  );
  say(`node B replayed ${replayed} messages in ${secs((readyS - loadedS) * 1000)} s: ${replayPerS} msgs/s`);
  const usage = cpu.read();
  if (perf !== null) {
    const exited = new Promise((r) => perf.once('exit', r));
    perf.kill('SIGINT');
    await exited;
    say(
      `perf record of B's CPU from its start to ready: ${perfOut} (node dist/bench/catchup-timeline.js --perf ${perfOut} --logs …)`,
    );
  }
  const bThreads = replaying ? threadsB.read() : [];
  const counts = await publisher.stop();
  // B's CPU per message while it caught up (its lookups idle): what bounds the replay on a core of its own.
  const cpuUsPerMsg = Math.round(((usage.perProcess['segd B']! / 100) * (readyS - listeningS) * 1e6) / replayed);
  say(
    `node B used ${usage.perProcess['segd B']}% of a core meanwhile: ≈ ${cpuUsPerMsg} µs CPU per message (machine ${usage.machineBusyPct}% busy)`,
  );
  // On a shared machine B's wall clock is the other processes' too: asleep is what B waited on (the servers).
  for (const t of bThreads)
    say(
      `node B thread ${t.thread}: on a CPU ${t.runPct}%, waiting for a CPU ${t.queuedPct}%, asleep ${t.asleepPct}% from attached to ready`,
    );

  say('stream stopped; waiting for A and B to catch up');
  const caughtUp = await waitCaughtUp([a, b], 180_000);
  const rnd = prng(7);
  const mismatches: { uid: string; a: number[]; b: number[] }[] = [];
  for (let i = 0; i < sample; i++) {
    const uid = uidFor(1, Math.floor(rnd() * users));
    const [sa, sb] = await Promise.all([segmentsOf(a, uid), segmentsOf(b, uid)]);
    if (JSON.stringify(sa) !== JSON.stringify(sb)) mismatches.push({ uid, a: sa, b: sb });
  }
  say(`answers: ${sample - mismatches.length}/${sample} sampled users identical on A and B (caught up: ${caughtUp})`);

  const result = {
    bench: 'restore',
    at: new Date().toISOString(),
    settings: {
      users,
      streamSeconds,
      rate,
      records,
      readyLag,
      sample,
      workers,
      nats: natsSize,
      store,
      bPriority: bPriority ?? 'default',
      bEnv,
      pinned: pinning.why,
    },
    seedImport: imp,
    backup: {
      commandS: backupS,
      copyS: manifest.seconds,
      users: manifest.users,
      filter: manifest.filter,
      seq: copiedSeq,
    },
    publisher: { ...counts, reachedMsgsPerS: Math.round(counts.acked / counts.seconds) },
    nodeB: {
      backlogAtStart: backlog,
      listeningS,
      loadedS,
      attachedS,
      readyS,
      replayed,
      replayPerS,
      cpuUsPerMsg,
      firstLag,
      adopted,
      filterLog: filterLine?.msg ?? null,
      filterBuiltMs: typeof filterBuilt?.ms === 'number' ? filterBuilt.ms : null,
    },
    cpuPctDuringCatchUp: usage.perProcess,
    nodeBThreadsPct: bThreads,
    machineBusyPct: usage.machineBusyPct,
    loadavg: usage.loadavg,
    caughtUp,
    sample: { size: sample, mismatches: mismatches.length, first: mismatches.slice(0, 5) },
  };
  if (bLogs !== null) writeFileSync(bLogs, b.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  say(`load average ${usage.loadavg.join(' ')}, machine ${usage.machineBusyPct}% busy while B caught up; wrote ${out}`);
  if (mismatches.length || !caughtUp || !Number.isFinite(readyS)) process.exitCode = 1;
}

const flags = parseFlags(
  'npm run bench:restore --',
  process.argv.slice(2),
  {
    users: 'users on the node backed up (default 1000000)',
    'b-env': 'KEY=VALUE[,KEY=VALUE]: settings of node B alone (e.g. SEGD_LOADER_BATCH=10000)',
    perf: 'FILE: perf record of node B’s CPU (needs --pin) from its start to ready, by the wall clock, for bench/catchup-timeline.ts',
    'b-logs': 'FILE: node B logs at debug level (each pull, each commit and ack, with their times), written to FILE',
    'stream-seconds': 'seconds the stream runs between the backup and the restored node’s start (default 60)',
    rate: 'messages/s of the stream (default 2000)',
    records: 'feed records per message (default 1)',
    'ready-lag': 'SEGD_NATS_READY_LAG of the restored node (default 1000)',
    sample: 'users compared between the nodes (default 2000)',
    workers: 'SEGD_WORKERS per node (default 1)',
    nats: 'nats-servers: 3 (a cluster, stream replicas 3; default) or 1',
    out: 'JSON result file (default bench-out/bench-restore.json)',
    store:
      'a store holding --users users of seed 1 (imported, or a `segd backup` of one): node A starts on a copy of it instead of an import',
    pin: 'node B on a CPU of its own; NATS, node A and the publisher on the other (taskset)',
    'b-priority': 'SEGD_LOADER_PRIORITY of node B (normal, nice or idle; default: segd’s)',
  },
  ['pin'],
);
// The stream's connections and the publisher thread would keep the process alive after an error: runBench exits.
runBench(() => main(flags));
