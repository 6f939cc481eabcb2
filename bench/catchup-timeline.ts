// Where a restored node's catch-up spends its core, from a `perf record` of
// that core and the node's own log: `node dist/bench/catchup-timeline.js
// --perf FILE --logs FILE [--span FROM-TO] [--steady FROM-TO] [--first FROM-TO]`.
//
// Recorded by `npm run bench:restore -- --pin --perf FILE --b-logs LOGS …`:
// `perf record -C <B's CPU> -F 499 -k CLOCK_REALTIME` from B's start to its
// ready (no call graphs: a sample is its thread and its symbol). The clock is the wall clock, so samples line up with the log's
// times. Printed: per 250 ms from B's listening, the core's share spent by
// B's loader thread (its main thread: the writer and the JetStream source), by
// B's other threads (V8's GC and compiler helpers, the lookup worker), by
// other processes (kernel threads) and idle (B asleep: its fsyncs, its waits
// on the servers), with B's pulls and commits as they happened. With
// `--steady` and `--first` (seconds from the timeline's start), the loader's
// symbols in the two windows, as shares of the wall clock: what the first
// commits pay that the steady ones do not, and the reverse.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseFlags, type Flags } from '../src/terminal/flags.js';

interface Line {
  time: number;
  msg: string;
  pid: number;
  [k: string]: unknown;
}

const BUCKET_S = 0.25;
/** The timeline starts this long before B's "listening" (the load is part of the story). */
const LEAD_S = 1.5;

function window(spec: unknown, name: string): [number, number] | null {
  if (typeof spec !== 'string') return null;
  const m = /^([\d.]+)-([\d.]+)$/.exec(spec);
  if (!m) throw new Error(`--${name} FROM-TO (seconds), not ${spec}`);
  return [Number(m[1]), Number(m[2])];
}

function main(f: Flags): void {
  if (typeof f.perf !== 'string' || typeof f.logs !== 'string') throw new Error('--perf FILE and --logs FILE');
  const logs = readFileSync(f.logs, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
  const listening = logs.find((l) => l.msg === 'listening');
  if (!listening) throw new Error(`${f.logs}: no "listening" line`);
  const pid = listening.pid;
  const t0 = listening.time / 1000 - LEAD_S;
  const windows = [window(f.first, 'first'), window(f.steady, 'steady')];
  const span = window(f.span, 'span') ?? [0, Infinity];
  const script = execFileSync('perf', ['script', '-i', f.perf, '-F', 'pid,tid,time,ip,sym'], {
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();

  const buckets = new Map<number, { loader: number; threads: number; other: number; idle: number }>();
  const symbols = windows.map(() => new Map<string, number>());
  const rate = { samples: 0, first: Infinity, last: -Infinity };
  for (const row of script.split('\n')) {
    const m = /^\s*(\d+)\/(\d+)\s+([\d.]+):\s+\S+\s+(.*)$/.exec(row);
    if (!m) continue;
    const p = Number(m[1]);
    const t = Number(m[2]);
    const at = Number(m[3]) - t0;
    rate.samples++;
    rate.first = Math.min(rate.first, at);
    rate.last = Math.max(rate.last, at);
    if (at < 0) continue;
    const k = Math.floor(at / BUCKET_S);
    const b = buckets.get(k) ?? { loader: 0, threads: 0, other: 0, idle: 0 };
    const loader = p === pid && t === pid;
    if (p === 0) b.idle++;
    else if (loader) b.loader++;
    else if (p === pid) b.threads++;
    else b.other++;
    buckets.set(k, b);
    if (!loader) continue;
    const sym = m[4]!
      .replace(/\+0x[0-9a-f]+/, '')
      .replace(/\s*\(.*\)$/, '')
      .trim();
    windows.forEach((w, i) => {
      if (w && at >= w[0] && at < w[1]) symbols[i]!.set(sym, (symbols[i]!.get(sym) ?? 0) + 1);
    });
  }
  const hz = rate.samples / (rate.last - rate.first);

  const events = logs.filter((l) =>
    /^jetstream (pull|batch committed)|^listening$|^ready$|source attached/.test(l.msg),
  );
  const pct = (x: number, all: number) => String(Math.round((100 * x) / all)).padStart(4);
  console.log('     s  loader threads other idle  (% of the core)  B’s log');
  const totals = { loader: 0, threads: 0, other: 0, idle: 0 };
  for (const [k, b] of [...buckets].sort((x, y) => x[0] - y[0])) {
    const all = b.loader + b.threads + b.other + b.idle;
    const from = t0 + k * BUCKET_S;
    const said = events
      .filter((l) => l.time / 1000 >= from && l.time / 1000 < from + BUCKET_S)
      .map((l) =>
        l.msg === 'jetstream pull'
          ? `pull of ${String(l.asked)} in ${String(l.inMs)} ms`
          : l.msg.startsWith('jetstream batch committed')
            ? `${String(l.applied)} committed in ${String(l.commitMs)} ms, acked in ${String(l.ackMs)} ms`
            : l.msg,
      );
    console.log(
      `${(k * BUCKET_S).toFixed(2).padStart(6)} ${pct(b.loader, all)}   ${pct(b.threads, all)}   ${pct(b.other, all)} ${pct(b.idle, all)}   ${said.join('; ')}`,
    );
    if (k * BUCKET_S >= span[0] && k * BUCKET_S < span[1])
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += b[key];
  }
  console.log(
    `core seconds ${f.span === undefined ? 'over the timeline' : `from ${span[0]} to ${span[1]} s`}: loader ${(totals.loader / hz).toFixed(1)}, B's other threads ${(totals.threads / hz).toFixed(1)}, other processes ${(totals.other / hz).toFixed(1)}, idle ${(totals.idle / hz).toFixed(1)}`,
  );

  if (windows[0] && windows[1]) {
    const [a, b] = windows as [[number, number], [number, number]];
    const share = (i: number, sym: string, w: [number, number]) => (symbols[i]!.get(sym) ?? 0) / (w[1] - w[0]) / hz;
    const all = new Set([...symbols[0]!.keys(), ...symbols[1]!.keys()]);
    const rows = [...all].map((s) => ({ s, first: share(0, s, a), steady: share(1, s, b) }));
    rows.sort((x, y) => Math.abs(y.first - y.steady) - Math.abs(x.first - x.steady));
    console.log(`\nloader's symbols, % of the wall clock: first ${a[0]}-${a[1]} s, steady ${b[0]}-${b[1]} s`);
    for (const r of rows.slice(0, 20))
      console.log(`${(100 * r.first).toFixed(1).padStart(6)} ${(100 * r.steady).toFixed(1).padStart(6)}  ${r.s}`);
  }
}

main(
  parseFlags('node dist/bench/catchup-timeline.js', process.argv.slice(2), {
    perf: 'FILE: perf record -C <B’s CPU> -F 499 -k CLOCK_REALTIME of the catch-up',
    logs: 'FILE: node B’s log lines (bench:restore --b-logs FILE)',
    first: 'FROM-TO: seconds of the timeline holding the first commits',
    steady: 'FROM-TO: seconds of the timeline in steady state',
    span: 'FROM-TO: seconds of the timeline the totals cover (default: all of it)',
  }),
);
