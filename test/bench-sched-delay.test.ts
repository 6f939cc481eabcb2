// The scheduler-delay attribution the tail benchmark reports: a worker's wait
// for its CPU is blamed on whatever ran on that CPU between its wakeup and its
// start, in proportion to the overlap.
import { describe, expect, it } from 'vitest';
import { attribute, parseTimehist, segdClasses } from '../bench/sched-delay.js';

// perf sched timehist rows: time the task left the CPU, cpu, task, wait, sch delay, run (ms).
const TRACE = `
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
   100.001000 [0000]  node[10]                            0.000      0.000      1.000
   100.001500 [0000]  <idle>                              0.000      0.000      0.500
   100.002000 [0000]  node[12/10]                         0.000      0.010      0.500
   100.002100 [0000]  node[11/10]                         0.000      0.050      0.100
   100.004000 [0000]  cc1[77]                             0.000      0.000      1.900
   100.004100 [0000]  node[11/10]                         1.800      1.500      0.100
   100.004100 [0001]  node[11/10]                         0.000      0.300      0.000
`;

describe('sched-delay', () => {
  it('parses rows and skips headers and idle', () => {
    const rows = parseTimehist(TRACE);
    expect(rows.map((r) => [r.tid, r.pid, r.name])).toEqual([
      [10, 10, 'node'],
      [12, 10, 'node'],
      [11, 10, 'node'],
      [77, 77, 'cc1'],
      [11, 10, 'node'],
      [11, 10, 'node'],
    ]);
    expect(rows[4]!.schDelay).toBeCloseTo(0.0015, 9);
    expect(rows[4]!.run).toBeCloseTo(0.0001, 9);
  });

  it('blames a long wait on the threads that held the CPU during it', () => {
    const a = attribute(parseTimehist(TRACE), new Set([11]), segdClasses(10), 100);
    // Waits: 0.05 ms (under the threshold), 1.5 ms on cpu 0, 0.3 ms on cpu 1.
    expect(a.wakeups).toBe(3);
    expect(a.waitedOver).toEqual({ '0.1ms': 2, '0.5ms': 1, '1ms': 1 });
    // The 1.5 ms wait on cpu 0 ran from 100.0025 to 100.0040: the compiler held all of it.
    expect(a.blame).toEqual({ 'other processes': 1 });
    expect(a.cpuMs['segd main thread (loader)']).toBeCloseTo(1, 6);
    expect(a.cpuMs['segd helper threads (V8, libuv)']).toBeCloseTo(0.5, 6);
    expect(a.delayUs.max).toBe(1500);
  });

  it('splits blame by overlap between several threads', () => {
    const trace = `
   200.001000 [0000]  node[11/10]                         0.000      0.000      0.100
   200.002000 [0000]  node[10]                            0.000      0.000      0.600
   200.003000 [0000]  node[13/10]                         0.000      0.000      1.000
   200.003100 [0000]  node[11/10]                         0.000      2.000      0.100
`;
    const a = attribute(parseTimehist(trace), new Set([11]), segdClasses(10), 100);
    // Woken at 200.001000, ran from 200.003000: the main thread held 0.6 ms of it, a helper 1 ms.
    expect(a.blame['segd main thread (loader)']).toBeCloseTo(0.375, 3);
    expect(a.blame['segd helper threads (V8, libuv)']).toBeCloseTo(0.625, 3);
  });
});
