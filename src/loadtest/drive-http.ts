// Drives HTTP load for one measured run, with one of three generators:
//   autocannon: closed loop, `connections` keep-alive connections each sending
//     its next request when the answer arrives (the max-throughput view); with
//     a rate, its own per-connection quota per second, sent in bursts;
//   wrk: closed loop, a C generator, for throughput ceilings;
//   client: an open-loop client (native/openloop or open-loop-client.ts, see
//     native-client.ts), requests due on a fixed schedule whatever the server
//     does, latency counted from when each was due (no coordinated omission),
//     so latency is also measured below saturation; at rate 0 the Node one
//     runs closed loop, which tells how much it can drive.
// All record into a Recorder with µs latencies. autocannon's own summary rounds to
// whole ms; its per-response event carries the hrtime duration, which is what
// the Recorder gets (its figures include the generator's own event-loop delay).
import autocannon from 'autocannon';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rawRequest, writeRequests, type LoopSummary } from './open-loop.js';
import { Recorder, type Figures, type Percentiles } from './recorder.js';
import { run, tempDirs } from './processes.js';
import { runWrk, wrkFigures, wrkScript } from './wrk.js';
import { clientCommand, type OpenLoopClient } from './native-client.js';
import type { HttpReq } from './scenarios.js';

/** What every driver takes: the load's shape, its window and what counts as success. */
export interface LoadShape {
  connections: number;
  /** Requests per second; 0 = closed loop. */
  rate: number;
  warmupS: number;
  durationS: number;
  timeoutS: number;
  /** Stop early after this many answers (closed loop; open loop is bounded by rate × duration). */
  maxRequests: number;
  /** Statuses from 200 up to this (exclusive) are successes: 300, or 400 where redirects are answers. */
  okBelow: number;
  /**
   * Called when the warm-up ends (the runner scrapes /metrics then). Closed
   * loops wait for it before measuring, so the server's counts cover exactly the
   * measured requests; the open-loop client's schedule cannot wait.
   */
  onMeasureStart?: () => Promise<void> | void;
}

export interface HttpDriveOptions extends LoadShape {
  host: string;
  port: number;
  requests: HttpReq[];
  /** wrk runs closed loop only; the harness drives every open loop with the client. */
  generator: 'autocannon' | 'wrk' | 'client';
  /** Which open-loop client (generator 'client'); the native one runs open loop only. Default node. */
  client?: OpenLoopClient;
  /** The native client at SCHED_FIFO, sleeping between sends (native-client.ts). */
  realtime?: boolean;
  /** Pin the generator's own process (wrk, the client) to this CPU with taskset. */
  cpu?: number;
  /** A replay: request k is due this many µs after the start (non-decreasing), instead of every 1/rate. Native client only. */
  schedule?: Uint32Array;
}

export interface DriveResult {
  info: DriveInfo;
  figures: Figures;
}

export interface DriveInfo {
  generator: string;
  /** Where the latency figures come from and what they can resolve. */
  latencySource: string;
  /** autocannon's own whole-ms summary, for reference. */
  autocannonMs?: Percentiles;
  /** The client: how late it sent requests against its schedule (its own health), µs. */
  sendLagUs?: Percentiles;
  /** The client: latency from the actual send, µs (without the wait for a free connection). */
  serviceUs?: Percentiles;
  /** The native client: send lag of requests that had a free connection (the generator's own lateness), µs. */
  ownLagUs?: Percentiles;
  /** The native client: requests that waited for a free connection (every one busy with the server). */
  connWaits?: number;
}

/**
 * Each autocannon connection cycles through its own slice of the requests,
 * encoded once when the connection is set up (bench-lookup.ts measured that a
 * per-request `setupRequest` halves what autocannon can drive, and that long
 * slices delay the first answers).
 */
export const AUTOCANNON_REQUESTS_PER_CONNECTION = 200;

function autocannonRun(o: HttpDriveOptions, seconds: number, rec: Recorder | null) {
  const per = Math.max(1, Math.min(AUTOCANNON_REQUESTS_PER_CONNECTION, Math.floor(o.requests.length / o.connections)));
  let client = 0;
  const inst = autocannon({
    url: `http://${o.host}:${o.port}`,
    connections: o.connections,
    pipelining: 1,
    duration: seconds,
    timeout: o.timeoutS,
    // Its rate limit is a per-connection quota per second, sent in bursts;
    // "correcting" latencies against an even schedule it never kept invents
    // up to a second of delay. Report the response times it saw instead.
    ...(o.rate > 0 ? { overallRate: o.rate, ignoreCoordinatedOmission: true } : {}),
    setupClient: (c) => {
      const from = (client++ * per) % o.requests.length;
      let slice = o.requests.slice(from, from + per);
      if (slice.length < per) slice = slice.concat(o.requests.slice(0, per - slice.length));
      c.setRequests(
        slice.map((r) => ({
          method: r.method,
          path: r.path,
          headers: r.headers,
          ...(r.body !== undefined ? { body: r.body } : {}),
        })),
      );
    },
  });
  if (rec) {
    let n = 0;
    inst.on('response', (_c: unknown, status: number, _bytes: number, ms: number) => {
      rec.answer(ms * 1000, status);
      if (++n === o.maxRequests) inst.stop();
    });
    inst.on('reqError', (err: Error) => rec.failure(/timed out/.test(err.message) ? 'timeouts' : 'connection'));
  }
  return inst;
}

async function autocannonLoop(o: HttpDriveOptions): Promise<DriveResult> {
  const rec = new Recorder((s) => s >= 200 && s < o.okBelow);
  if (o.warmupS > 0) await autocannonRun(o, o.warmupS, null);
  await o.onMeasureStart?.();
  rec.start();
  const r = await autocannonRun(o, o.durationS, rec);
  rec.stop();
  const ms = (v: number) => v * 1000;
  const info: DriveInfo = {
    generator: `autocannon, ${o.rate > 0 ? `overallRate ${o.rate}` : 'closed loop'}, ${o.connections} connections`,
    latencySource: 'autocannon per-response hrtime (µs resolution, includes the generator’s event-loop delay)',
    autocannonMs: {
      p50: ms(r.latency.p50),
      p90: ms(r.latency.p90),
      p99: ms(r.latency.p99),
      p999: ms(r.latency.p99_9),
      max: ms(r.latency.max),
      mean: ms(r.latency.mean),
    },
  };
  return { info, figures: rec.figures() };
}

/** A temp dir holding the requests as `writeRequests` lays them out; removed after `fn`. */
async function withRequestsFile<T>(o: HttpDriveOptions, fn: (dir: string, file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'segd-loadtest-'));
  tempDirs.add(dir);
  try {
    const file = join(dir, 'requests.bin');
    writeRequests(
      file,
      o.requests.map((r) => rawRequest(o.host, r.method, r.path, r.headers, r.body)),
    );
    return await fn(dir, file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

async function wrkClosedLoop(o: HttpDriveOptions): Promise<DriveResult> {
  return withRequestsFile(o, async (dir, file) => {
    const script = join(dir, 'requests.lua');
    writeFileSync(script, wrkScript(file));
    const run = (seconds: number) =>
      runWrk({
        host: o.host,
        port: o.port,
        script,
        connections: o.connections,
        seconds,
        ...(o.cpu !== undefined ? { cpu: o.cpu } : {}),
      });
    if (o.warmupS > 0) await run(Math.max(1, Math.round(o.warmupS)));
    await o.onMeasureStart?.();
    const w = await run(Math.max(1, Math.round(o.durationS)));
    return {
      info: {
        generator: `wrk -t1, closed loop, ${o.connections} connections`,
        latencySource:
          'wrk (C), µs percentiles; it keeps no per-second series, and its histogram is rebuilt from its percentile curve',
      },
      figures: wrkFigures(w),
    };
  });
}

/**
 * The open-loop client runs as its own process (pinned like this one when
 * --pin is given): in this process the harness's heap (keys, requests) made
 * GC pauses show up as client send lag of tens of ms at 5k req/s.
 */
async function clientLoop(o: HttpDriveOptions): Promise<DriveResult> {
  return withRequestsFile(o, async (dir, file) => {
    const client = o.schedule ? 'native' : o.rate > 0 ? (o.client ?? 'node') : 'node';
    let scheduleArgs: string[] = [];
    if (o.schedule) {
      const path = join(dir, 'schedule.bin');
      const b = Buffer.alloc(o.schedule.length * 4);
      o.schedule.forEach((us, i) => b.writeUInt32BE(us, i * 4));
      writeFileSync(path, b);
      scheduleArgs = ['--schedule', path];
    }
    const command = clientCommand(client, o.realtime === true);
    const args = [
      ...command.head,
      '--host',
      o.host,
      '--port',
      String(o.port),
      '--requests',
      file,
      '--ok-below',
      String(o.okBelow),
      ...(o.schedule ? scheduleArgs : ['--rate', String(o.rate)]),
      '--connections',
      String(o.connections),
      '--warmup-ms',
      String(o.warmupS * 1000),
      '--duration-ms',
      String(o.durationS * 1000),
      ...(client === 'native' ? ['--timeout-ms', String(o.timeoutS * 1000)] : []),
      ...command.tail,
    ];
    // The client warms up inside its own process; its measured window starts warmupS after it does.
    const mark = o.onMeasureStart ? setTimeout(() => void o.onMeasureStart!(), o.warmupS * 1000) : undefined;
    const [cmd, ...argv] = [...(o.cpu !== undefined ? ['taskset', '-c', String(o.cpu)] : []), ...args];
    const { stdout } = await run(cmd!, argv).finally(() => clearTimeout(mark));
    const r = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as LoopSummary & {
      figures: Figures;
      ownLagUs?: Percentiles;
      connWaits?: number;
    };
    return {
      info: {
        generator: `${o.schedule ? `replay (open loop, captured timing, ${Math.round(r.rps ?? 0)} req/s)` : o.rate > 0 ? `open loop at ${o.rate} req/s` : 'closed loop'} over ${o.connections} connections (${client === 'native' ? `native/openloop${o.realtime ? ' at SCHED_FIFO' : ''}` : 'src/loadtest/open-loop-client.ts'})`,
        latencySource: 'open-loop client, µs, from each request’s scheduled send time (no coordinated omission)',
        sendLagUs: r.sendLagUs,
        serviceUs: r.serviceUs,
        ...(r.ownLagUs ? { ownLagUs: r.ownLagUs, connWaits: r.connWaits ?? 0 } : {}),
      },
      figures: r.figures,
    };
  });
}

export function driveHttp(o: HttpDriveOptions): Promise<DriveResult> {
  if (o.generator === 'wrk' && o.rate > 0) throw new Error('wrk runs closed loop only: drive a rate with the client');
  return o.generator === 'client' ? clientLoop(o) : o.generator === 'wrk' ? wrkClosedLoop(o) : autocannonLoop(o);
}
