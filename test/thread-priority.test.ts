// The loader thread steps aside for lookups (SEGD_LOADER_PRIORITY), and only
// it: the lookup workers run at normal priority, also a worker the supervisor
// starts after the loader lowered itself (threads inherit their creator's
// policy and nice value). Read from /proc, the kernel's own view.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startSegd, type Segd } from './helpers/server.js';

/** Scheduling policy (0 SCHED_OTHER, 3 SCHED_BATCH, 5 SCHED_IDLE) and nice value of a thread. */
function sched(pid: number, tid: number): { policy: number; nice: number } {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3
  return { nice: Number(f[19 - 3]), policy: Number(f[41 - 3]) };
}

const tidsOfWorkers = (segd: Segd) => segd.logs.filter((l) => l.msg === 'worker listening').map((l) => l.tid as number);

// chrt from util-linux sets SCHED_IDLE; taking normal priority back in a restarted worker needs root or CAP_SYS_NICE.
const canRestore = process.platform === 'linux' && process.getuid?.() === 0;

describe.runIf(process.platform === 'linux')('loader thread priority', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await startSegd({ env: { SEGD_LOADER_PRIORITY: 'idle', SEGD_TEST_FAULTS: '1' } });
  });
  afterAll(async () => {
    await segd?.stop();
  });

  it('puts the loader thread at SCHED_IDLE and leaves the worker normal', async () => {
    const pid = segd.proc.pid!;
    await segd.waitForLog((l) => l.msg === 'loader thread priority');
    expect(sched(pid, pid).policy).toBe(5);
    const [tid] = tidsOfWorkers(segd);
    expect(tid).toBeGreaterThan(0);
    expect(sched(pid, tid!)).toEqual({ policy: 0, nice: 0 });
  });

  it.runIf(canRestore)('gives a restarted worker normal priority back', async () => {
    const pid = segd.proc.pid!;
    expect((await fetch(`${segd.url}/__test/fail-worker`)).status).toBe(200);
    const restarted = await segd.waitForLog((l) => l.msg === 'worker listening' && tidsOfWorkers(segd).length >= 2);
    const tid = restarted.tid as number;
    expect(tid).not.toBe(tidsOfWorkers(segd)[0]);
    expect(sched(pid, tid)).toEqual({ policy: 0, nice: 0 });
    // The loader stays where it was.
    expect(sched(pid, pid).policy).toBe(5);
  });
});

describe.runIf(process.platform === 'linux')('default loader priority', () => {
  let segd: Segd;
  beforeAll(async () => {
    segd = await startSegd();
  });
  afterAll(async () => {
    await segd?.stop();
  });

  it('is nice 10 for the loader and 0 for the worker', async () => {
    const pid = segd.proc.pid!;
    await segd.waitForLog((l) => l.msg === 'loader thread priority');
    expect(sched(pid, pid)).toEqual({ policy: 0, nice: 10 });
    expect(sched(pid, tidsOfWorkers(segd)[0]!)).toEqual({ policy: 0, nice: 0 });
  });
});
