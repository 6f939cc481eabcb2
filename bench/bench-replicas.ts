// Freshness across replicas: `npm run bench:replicas [-- --rate 20000 --seconds 60 --nodes 3]`.
//
// A 3-node NATS JetStream cluster (stream SEGMENTS, replicas 3), N segd
// replicas (each its own data dir, durable consumer and one worker), and a
// sustained stream of `--rate` messages/s published from a thread of its own
// with bounded unacked publishes. Every `--probe-ms` a probe record for a
// fresh user is published and each node is polled until the probe is
// visible: the report gives publish → visible p50/p99/max per node, the rate
// the publisher reached, each node's JetStream lag over the run (is it
// keeping up?), and the CPU each process used, so a run that misses the rate
// says which process held the cores. Everything started here is stopped by
// pid, also on error or Ctrl-C; the figures go to a JSON file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { intFlag, parseFlags, type Flags } from '../src/terminal/flags.js';
import { installCleanupHandlers } from '../src/loadtest/processes.js';
import { runBench } from './run-bench.js';
import type { Server } from '../src/loadtest/processes.js';
import { startPublisher } from './stream-publisher.js';
import {
  benchDir,
  CpuMeter,
  FreshnessProbe,
  fmtMs,
  readiness,
  startBenchNats,
  startNode,
  type Readiness,
} from './scale-nodes.js';

const say = (msg: string) => console.log(`[bench:replicas ${new Date().toISOString().slice(11, 19)}] ${msg}`);

interface LagTrace {
  max: number;
  last: number | null;
  samples: number;
  /** Seconds with a backlog over the rate (a second of messages or more). */
  behindSeconds: number;
}

async function main(f: Flags): Promise<void> {
  const seconds = intFlag(f, 'seconds', { min: 5, max: 3600, def: 60 });
  const rate = intFlag(f, 'rate', { min: 1, max: 1_000_000, def: 20_000 });
  const records = intFlag(f, 'records', { min: 1, max: 1000, def: 1 });
  const nodeCount = intFlag(f, 'nodes', { min: 1, max: 8, def: 3 });
  const natsSize = intFlag(f, 'nats', { min: 1, max: 3, def: 3 });
  const probeMs = intFlag(f, 'probe-ms', { min: 5, max: 5000, def: 50 });
  const inflight = intFlag(f, 'inflight', { min: 1, max: 100_000, def: 2000 });
  const users = intFlag(f, 'users', { min: 1, max: 100_000_000, def: 1_000_000 });
  const batch = f.batch === undefined ? undefined : intFlag(f, 'batch', { min: 1, max: 100_000 });
  const out = typeof f.out === 'string' ? f.out : 'bench-out/bench-replicas.json';
  if (natsSize !== 1 && natsSize !== 3) throw new Error('--nats is 1 or 3');

  installCleanupHandlers(say);
  say(`starting a ${natsSize}-node NATS JetStream cluster`);
  const nats = await startBenchNats(natsSize);
  say(`nats: ${nats.urls.join(', ')}`);
  const nodes: Server[] = await Promise.all(
    Array.from({ length: nodeCount }, (_, i) =>
      startNode({
        name: `replica-${i}`,
        urls: nats.urls,
        dataDir: join(benchDir('segd-bench-replica-'), 'data'),
        workers: 1,
        env: batch === undefined ? {} : { SEGD_NATS_BATCH: String(batch) },
      }),
    ),
  );
  await Promise.all(nodes.map((n) => n.waitLog((l) => l.msg === 'ready', 60_000, 'ready')));
  say(`${nodeCount} segd replicas ready: ports ${nodes.map((n) => n.port).join(', ')}`);

  const pids = new Map<string, number>([['bench (publisher thread + probes)', process.pid]]);
  for (const [name, proc] of nats.nodes) pids.set(`nats-server ${name}`, proc.pid!);
  for (const n of nodes) pids.set(`segd ${n.name}`, n.proc.pid!);
  const cpu = new CpuMeter(pids);

  const lag = new Map<string, LagTrace>(
    nodes.map((n) => [n.name, { max: 0, last: null, samples: 0, behindSeconds: 0 }]),
  );
  const sampleLag = async () => {
    const rs = await Promise.all(nodes.map((n) => readiness(n).catch((): Readiness | null => null)));
    rs.forEach((r, i) => {
      const t = lag.get(nodes[i]!.name)!;
      t.last = r?.lag ?? null;
      if (r?.lag == null) return;
      t.samples++;
      t.max = Math.max(t.max, r.lag);
      if (r.lag > rate) t.behindSeconds++;
    });
  };

  say(
    `publishing ${rate.toLocaleString('en-US')} msgs/s × ${records} record(s) for ${seconds} s (≤ ${inflight} unacked), a probe every ${probeMs} ms`,
  );
  const publisher = await startPublisher({
    urls: nats.urls,
    subject: 'segments.stream',
    rate,
    records,
    users,
    seed: 1,
    taxonomy: 5000,
    inflight,
  });
  const probe = new FreshnessProbe(nats, nodes, probeMs);
  probe.start();
  cpu.mark();
  const t0 = performance.now();
  let lastCounts = publisher.counts();
  let lastAt = t0;
  for (let s = 1; s <= seconds; s++) {
    await new Promise((r) => setTimeout(r, t0 + s * 1000 - performance.now()));
    for (const n of nodes) n.check();
    await sampleLag();
    if (s % 5 === 0 || s === seconds) {
      const c = publisher.counts();
      const now = performance.now();
      const r = ((c.acked - lastCounts.acked) / (now - lastAt)) * 1000;
      lastCounts = c;
      lastAt = now;
      const st = probe.stats(Math.max(0, probe.published - Math.round(5000 / probeMs)));
      say(
        `${s} s: ${Math.round(r).toLocaleString('en-US')} msgs/s acked (${c.skipped.toLocaleString('en-US')} skipped, ${c.failed} failed); ` +
          nodes.map((n) => `${n.name} lag ${lag.get(n.name)!.last ?? '?'} p99 ${fmtMs(st[n.name]!.p99)}`).join('; '),
      );
    }
  }
  const usage = cpu.read();
  const counts = await publisher.stop();
  say('stream stopped; waiting for every node to see every probe');
  await probe.finish(30_000);
  const freshness = probe.stats();
  const finalLag = await Promise.all(nodes.map((n) => readiness(n).then((r) => r.lag)));

  const reached = counts.acked / counts.seconds;
  const result = {
    bench: 'replicas',
    at: new Date().toISOString(),
    settings: {
      seconds,
      rate,
      records,
      nodes: nodeCount,
      nats: natsSize,
      probeMs,
      inflight,
      users,
      batch: batch ?? 'default',
    },
    publisher: { ...counts, reachedMsgsPerS: Math.round(reached), reachedRecordsPerS: Math.round(reached * records) },
    freshnessMs: freshness,
    lag: Object.fromEntries([...lag].map(([name, t], i) => [name, { ...t, afterStop: finalLag[i] }])),
    cpuPct: usage.perProcess,
    machineBusyPct: usage.machineBusyPct,
    loadavg: usage.loadavg,
    probePublishErrors: probe.publishErrors,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');

  say(
    `publisher: ${Math.round(reached).toLocaleString('en-US')} msgs/s acked of ${rate.toLocaleString('en-US')} asked (${counts.skipped.toLocaleString('en-US')} skipped, ${counts.failed} failed)`,
  );
  for (const n of nodes) {
    const p = freshness[n.name]!;
    const t = lag.get(n.name)!;
    say(
      `${n.name}: publish → visible p50 ${fmtMs(p.p50)}, p99 ${fmtMs(p.p99)}, max ${fmtMs(p.max)} (${p.n} probes, ${p.unseen} unseen); lag max ${t.max}, behind > 1 s of stream in ${t.behindSeconds}/${t.samples} s`,
    );
  }
  say(
    `CPU (% of one core): ${Object.entries(usage.perProcess)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; machine ${usage.machineBusyPct}% busy; load average ${usage.loadavg.join(' ')}`,
  );
  if (typeof f.logs === 'string') {
    mkdirSync(f.logs, { recursive: true });
    for (const n of nodes)
      writeFileSync(join(f.logs, `${n.name}.ndjson`), n.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
  }
  for (const n of nodes) {
    const warnings = n.logs.filter((l) => typeof l.level === 'number' && l.level >= 40);
    if (warnings.length)
      say(
        `${n.name}: ${warnings.length} warnings, e.g. ${warnings
          .slice(0, 3)
          .map((l) => JSON.stringify(l))
          .join(' ')}`,
      );
  }
  say(`wrote ${out}`);
}

const flags = parseFlags('npm run bench:replicas --', process.argv.slice(2), {
  seconds: 'seconds of stream (default 60)',
  rate: 'messages/s asked of the publisher (default 20000)',
  records: 'feed records per message (default 1)',
  nodes: 'segd replicas (default 3)',
  nats: 'nats-servers: 3 (a cluster, stream replicas 3; default) or 1',
  'probe-ms': 'ms between freshness probes (default 50)',
  inflight: 'unacked publishes at most (default 2000)',
  users: 'distinct users the stream writes (default 1000000)',
  batch: 'SEGD_NATS_BATCH of the nodes (default: segd’s)',
  out: 'JSON result file (default bench-out/bench-replicas.json)',
  logs: 'a directory to write each node’s log lines into (<node>.ndjson)',
});
// The stream's connections and the publisher thread would keep the process alive after an error: runBench exits.
runBench(() => main(flags));
