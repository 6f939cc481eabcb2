// Why a lookup worker waited for its core: reads `perf sched timehist` output
// (one row per context switch: when a thread left the CPU, how long it ran,
// how long it waited between its wakeup and getting the CPU: "sch delay") and
// attributes every wait of the lookup worker thread to whatever ran on that
// CPU in the meantime. A request that arrives while the worker waits is late
// by that wait, however fast the handler is, so this is the evidence for the
// part of the tail that is outside the handler.
//
//   perf sched record -C 0 -o sched.data -- sleep 10
//   perf sched timehist -i sched.data > timehist.txt
//   node dist/bench/sched-delay.js --file timehist.txt --pid P --worker-tids T[,T…]
import { readFileSync } from 'node:fs';
import { parseFlags } from '../src/terminal/flags.js';

export interface Switch {
  /** Seconds (perf's clock) when the thread left the CPU. */
  out: number;
  cpu: number;
  tid: number;
  pid: number;
  name: string;
  /** Seconds between the thread's wakeup and getting the CPU. */
  schDelay: number;
  /** Seconds the thread ran before `out`. */
  run: number;
}

const ROW = /^\s*(\d+\.\d+)\s+\[(\d+)\]\s+(.+?)\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)\s*$/;
const TASK = /^(.*)\[(\d+)(?:\/(\d+))?\]$/;

/** Rows of `perf sched timehist` (header and idle rows skipped). */
export function parseTimehist(text: string): Switch[] {
  const rows: Switch[] = [];
  for (const line of text.split('\n')) {
    const m = ROW.exec(line);
    if (!m) continue;
    const task = TASK.exec(m[3]!.trim());
    if (!task) continue; // <idle>
    const tid = Number(task[2]);
    rows.push({
      out: Number(m[1]),
      cpu: Number(m[2]),
      name: task[1]!,
      tid,
      pid: task[3] === undefined ? tid : Number(task[3]),
      schDelay: Number(m[5]) / 1000,
      run: Number(m[6]) / 1000,
    });
  }
  return rows;
}

export interface Attribution {
  /** Worker wakeups seen, and how many waited at least 0.1 / 0.5 / 1 ms. */
  wakeups: number;
  waitedOver: { '0.1ms': number; '0.5ms': number; '1ms': number };
  /** Worker scheduling delay percentiles, µs. */
  delayUs: { p50: number; p99: number; p999: number; max: number };
  /** Of the time the worker spent waiting ≥ `thresholdUs`, the share each class of thread held the CPU. */
  blame: Record<string, number>;
  /** CPU time (ms) each class used on the worker's CPUs over the whole trace. */
  cpuMs: Record<string, number>;
}

/**
 * `classify` names a thread's class (e.g. "segd main thread", "other process");
 * only waits of at least `thresholdUs` are blamed, the usual scheduler jitter
 * below it is not what makes a tail.
 */
export function attribute(
  rows: Switch[],
  workerTids: Set<number>,
  classify: (s: Switch) => string,
  thresholdUs = 100,
): Attribution {
  const byCpu = new Map<number, Switch[]>();
  for (const r of rows) {
    let list = byCpu.get(r.cpu);
    if (!list) byCpu.set(r.cpu, (list = []));
    list.push(r);
  }
  const delays: number[] = [];
  const blameS = new Map<string, number>();
  const cpuS = new Map<string, number>();
  const workerCpus = new Set(rows.filter((r) => workerTids.has(r.tid)).map((r) => r.cpu));
  for (const cpu of workerCpus) {
    const list = byCpu.get(cpu)!;
    for (const r of list) {
      const k = workerTids.has(r.tid) ? 'lookup worker' : classify(r);
      cpuS.set(k, (cpuS.get(k) ?? 0) + r.run);
    }
    let from = 0; // rows before `from` ended before the current wait began (rows are in time order)
    for (let i = 0; i < list.length; i++) {
      const w = list[i]!;
      if (!workerTids.has(w.tid) || w.schDelay === 0) continue;
      delays.push(w.schDelay);
      if (w.schDelay * 1e6 < thresholdUs) continue;
      const runStart = w.out - w.run;
      const wake = runStart - w.schDelay;
      while (from < i && list[from]!.out <= wake) from++;
      for (let j = from; j < i; j++) {
        const o = list[j]!;
        const overlap = Math.min(o.out, runStart) - Math.max(o.out - o.run, wake);
        if (overlap <= 0 || workerTids.has(o.tid)) continue;
        const k = classify(o);
        blameS.set(k, (blameS.get(k) ?? 0) + overlap);
      }
    }
  }
  delays.sort((a, b) => a - b);
  const q = (p: number) =>
    delays.length ? Math.round(delays[Math.min(delays.length - 1, Math.floor(p * delays.length))]! * 1e6) : 0;
  const blamed = [...blameS.values()].reduce((a, b) => a + b, 0);
  return {
    wakeups: delays.length,
    waitedOver: {
      '0.1ms': delays.filter((d) => d >= 1e-4).length,
      '0.5ms': delays.filter((d) => d >= 5e-4).length,
      '1ms': delays.filter((d) => d >= 1e-3).length,
    },
    delayUs: { p50: q(0.5), p99: q(0.99), p999: q(0.999), max: q(1) },
    blame: Object.fromEntries([...blameS].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, +(v / blamed).toFixed(3)])),
    cpuMs: Object.fromEntries([...cpuS].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, +(v * 1000).toFixed(1)])),
  };
}

const KERNEL_THREAD = /^(kworker|ksoftirqd|rcu_|migration|kdamond|watchdog|cpuhp)/;

/** segd's threads by role: its main thread (supervisor and loader), the rest of its threads (V8 and libuv helpers); kernel threads; everything else. */
export function segdClasses(pid: number): (s: Switch) => string {
  return (s) =>
    s.tid === pid
      ? 'segd main thread (loader)'
      : s.pid === pid
        ? 'segd helper threads (V8, libuv)'
        : KERNEL_THREAD.test(s.name)
          ? 'kernel threads'
          : 'other processes';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const flags = parseFlags('node dist/bench/sched-delay.js', process.argv.slice(2), {
    file: '`perf sched timehist` output',
    pid: "segd's pid",
    'worker-tids': 'lookup worker thread ids, comma-separated (segd logs each as "tid" at worker start)',
  });
  const need = (name: string) => {
    const v = flags[name];
    if (typeof v !== 'string' || v === '') throw new Error(`--${name} is required`);
    return v;
  };
  const pid = Number(need('pid'));
  const tids = new Set(need('worker-tids').split(',').map(Number));
  const rows = parseTimehist(readFileSync(need('file'), 'utf8'));
  console.log(JSON.stringify(attribute(rows, tids, segdClasses(pid)), null, 2));
}
