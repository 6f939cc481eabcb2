// wrk (C, from Debian) for throughput ceilings: autocannon is a Node program
// that saturates before segd does on 2 cores (docs/design.md, "Measuring on this
// kind of machine"). A Lua script cycles through whole requests written by
// `writeRequests` (so POST bodies work too) and prints wrk's summary, µs
// percentiles and a percentile curve as one JSON line.
import { run } from './processes.js';
import type { Bucket, Figures, Percentiles } from './recorder.js';

export function wrkScript(requestsFile: string): string {
  return `-- written by src/loadtest/wrk.ts
local reqs = {}
local n = 0
local idx = 0

function init(args)
  local f = assert(io.open(${JSON.stringify(requestsFile)}, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos + 3 <= #data do
    local b1, b2, b3, b4 = string.byte(data, pos, pos + 3)
    local len = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    n = n + 1
    reqs[n] = string.sub(data, pos + 4, pos + 3 + len)
    pos = pos + 4 + len
  end
end

function request()
  idx = idx + 1
  if idx > n then idx = 1 end
  return reqs[idx]
end

local curve = {1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 97.5, 99, 99.5, 99.9, 99.99, 100}

function done(summary, latency, requests)
  local e = summary.errors
  local pts = {}
  for i, p in ipairs(curve) do pts[i] = string.format("[%g,%.0f]", p, latency:percentile(p)) end
  io.write(string.format(
    'WRK_JSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,' ..
    '"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f,"max":%.0f,"mean":%.1f,"min":%.0f,"curve":[%s]}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, latency.min, table.concat(pts, ",")))
end
`;
}

/** wrk's own summary (latencies in µs), as the script's `done` hook prints it. */
export interface WrkJson extends Percentiles {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  /** Answers with a status ≥ 400. */
  status: number;
  timeout: number;
  min: number;
  /** [percentile, µs] points. */
  curve: Array<[number, number]>;
}

export async function runWrk(o: {
  host: string;
  port: number;
  script: string;
  connections: number;
  seconds: number;
  cpu?: number;
}): Promise<WrkJson> {
  const args = [
    '-t1',
    `-c${o.connections}`,
    `-d${o.seconds}s`,
    '--latency',
    '-s',
    o.script,
    `http://${o.host}:${o.port}/`,
  ];
  const [cmd, argv] = o.cpu !== undefined ? ['taskset', ['-c', String(o.cpu), 'wrk', ...args]] : ['wrk', args];
  const { stdout } = await run(cmd, argv as string[]);
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no WRK_JSON line:\n${stdout}`);
  return JSON.parse(line.slice('WRK_JSON '.length)) as WrkJson;
}

/**
 * wrk's summary as the harness's figures. wrk keeps no per-second series, so
 * the timeline is empty; the histogram is rebuilt from its percentile curve
 * (each step's share goes to the 10-per-decade bucket of its geometric middle).
 */
export function wrkFigures(w: WrkJson): Figures {
  const seconds = w.duration_us / 1e6;
  const transport = w.connect + w.read + w.write + w.timeout;
  const errorCount = w.status + transport;
  const buckets = new Map<number, number>();
  let prevP = 0;
  let prevV = Math.max(1, w.min);
  for (const [p, v] of w.curve) {
    const mid = Math.sqrt(Math.max(1, prevV) * Math.max(1, v));
    const b = Math.floor(Math.log10(mid) * 10);
    buckets.set(b, (buckets.get(b) ?? 0) + ((p - prevP) / 100) * w.requests);
    prevP = p;
    prevV = v;
  }
  const histogram: Bucket[] = [...buckets.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([b, count]) => ({ fromUs: 10 ** (b / 10), toUs: 10 ** ((b + 1) / 10), count: Math.round(count) }));
  return {
    requests: w.requests,
    ok: w.requests - w.status,
    seconds,
    rps: w.requests / seconds,
    errors: {
      status: w.status ? { '4xx/5xx': w.status } : {},
      timeouts: w.timeout,
      connection: w.connect + w.read + w.write,
      other: 0,
    },
    errorCount,
    errorRate: errorCount / Math.max(1, w.requests + transport),
    latencyUs: { p50: w.p50, p90: w.p90, p99: w.p99, p999: w.p999, max: w.max, mean: w.mean },
    timeline: [],
    histogram,
  };
}
