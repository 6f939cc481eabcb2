// The process registry the helpers start everything through: what a test
// leaves running is stopped by pid, SIGKILL after a grace when SIGTERM is
// ignored, and a process group goes with its children.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnTracked, stopAll, liveCount } from './helpers/procs.js';
import { waitFor } from './helpers/server.js';

/** Running (a zombie waiting to be reaped by whoever adopted it is not). Linux. */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

/** A node process that ignores SIGTERM and prints `ready` (and, with `child`, the pid of a child that does too). */
const stubborn = (child: boolean) => `
  process.on('SIGTERM', () => {});
  setInterval(() => {}, 1000);
  ${
    child
      ? `const c = require('node:child_process').spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], { stdio: 'ignore' });
  console.log('ready ' + c.pid);`
      : `console.log('ready');`
  }
`;

async function started(cmd: string, group: boolean): Promise<{ pid: number; child: number | null }> {
  const p = spawnTracked(process.execPath, ['-e', cmd], { stdio: ['ignore', 'pipe', 'ignore'], group });
  const line = await new Promise<string>((r) => p.stdout!.setEncoding('utf8').once('data', (d: string) => r(d)));
  const child = /ready (\d+)/.exec(line)?.[1];
  return { pid: p.pid!, child: child ? Number(child) : null };
}

describe('process registry', () => {
  it('stops a process that ignores SIGTERM (SIGKILL after the grace), by pid', async () => {
    const { pid } = await started(stubborn(false), false);
    expect(liveCount()).toBe(1);
    expect(await stopAll(200)).toEqual([`${process.execPath} (pid ${pid})`]);
    expect([alive(pid), liveCount()]).toEqual([false, 0]);
  });

  it('stops a process group with the children its leader started', async () => {
    const { pid, child } = await started(stubborn(true), true);
    expect(alive(child!)).toBe(true);
    await stopAll(200);
    expect(alive(pid)).toBe(false);
    // Signalled with its leader; the kernel may take a moment to finish it.
    await waitFor(async () => !alive(child!), 5000);
  });
});
