// The control of every tail-latency run: the bare uWebSockets.js hello-world
// driven at the same rate, by the same generator, in the same run. It answers
// in microseconds, so its tail is the generator's and the machine's; when that
// tail (or the generator's lateness against its schedule) is as large as the
// figures being measured, the run measured its generator and does not count.
import { resolve } from 'node:path';
import { startServer, type Server } from './processes.js';
import type { Percentiles } from './recorder.js';

/** A control p99 above this means the generator (or the machine) adds a tail of its own. */
export const CONTROL_P99_LIMIT_US = 300;
/** Requests sent later than this against the schedule (p99) mean the generator fell behind. */
export const SEND_LAG_P99_LIMIT_US = 100;

const HELLO_JS = resolve(import.meta.dirname, 'hello-world.js');

export function startControl(): Promise<Server> {
  return startServer('hello-world', [HELLO_JS, '0'], { ...process.env, HELLO_HOST: '127.0.0.1' });
}

/** What the rule reads from a measured run. */
export interface Measured {
  drive?: { sendLagUs?: Percentiles; ownLagUs?: Percentiles; connWaits?: number };
  figures?: { latencyUs: Percentiles; requests?: number };
  /** % of each CPU's time the hypervisor kept during the run (host-cpu.ts). */
  stealPct?: Record<string, number>;
}

/**
 * Steal above this during a run is named as a cause when the run is generator-bound: at 20k req/s
 * a control with 1.1% steal had a p99 of 3.69 ms (the slowest 1% are the requests that met a pause).
 */
export const STEAL_NOTE_PCT = 0.5;

const ms = (us: number) => `${(us / 1000).toFixed(us < 10_000 ? 3 : 1)} ms`;

/**
 * Why a run is generator-bound (empty: it counts). `control` is the
 * hello-world at the same rate in the same run; undefined when it did not run.
 */
export function generatorBoundWhy(run: Measured, control: Measured | undefined): string[] {
  const why: string[] = [];
  if (!control?.figures)
    why.push(
      'no control: the hello-world at the same rate did not run, so the tail cannot be told from the generator’s',
    );
  else if (control.figures.latencyUs.p99 > CONTROL_P99_LIMIT_US)
    why.push(
      `the hello-world control’s p99 is ${ms(control.figures.latencyUs.p99)} (limit ${ms(CONTROL_P99_LIMIT_US)}): the generator or a busy machine adds that much to every figure`,
    );
  const controlLag = control?.drive?.sendLagUs?.p99;
  if (controlLag !== undefined && controlLag > SEND_LAG_P99_LIMIT_US)
    why.push(
      `the control’s send lag p99 is ${ms(controlLag)} (limit ${ms(SEND_LAG_P99_LIMIT_US)}): the generator fell behind its schedule`,
    );
  const lag = run.drive?.sendLagUs?.p99;
  if (lag !== undefined && lag > SEND_LAG_P99_LIMIT_US) {
    // The native client tells the two causes apart: a free connection and a late generator, or none free.
    const own = run.drive?.ownLagUs;
    const split = own
      ? `: ${run.drive?.connWaits ?? 0} of ${run.figures?.requests ?? '?'} requests waited for a free connection (a slow server), and the generator’s own lateness p99 was ${ms(own.p99)}`
      : ', because the generator fell behind or every connection was busy';
    why.push(
      `this run’s send lag p99 is ${ms(lag)} (limit ${ms(SEND_LAG_P99_LIMIT_US)}): requests went out late${split}`,
    );
  }
  if (why.length) {
    // Not a rule of its own: the reason a valid generator can still see a tail on a VM.
    const stolen = [control, run].map((m) => m?.stealPct?.cpu ?? 0);
    if (Math.max(...stolen) > STEAL_NOTE_PCT)
      why.push(
        `the hypervisor kept ${stolen[0]}% of this VM's CPU time during the control and ${stolen[1]}% during the run (steal in /proc/stat): the host was busy`,
      );
  }
  return why;
}
