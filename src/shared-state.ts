// Flags the supervisor sets and every worker reads, in shared memory: a
// readiness check is one Atomics.load, with no message round trip.
export const enum Flag {
  /** The initial load (seed + inbox) is done. */
  Loaded = 0,
  /** SIGTERM received: stop taking new work. */
  Draining = 1,
}

export const enum Gauge {
  /** Messages the JetStream consumer has yet to apply; -1 = source off or unknown. */
  NatsPending = 2,
  /** Why the loader cannot write: 0 = it can; else 1 + index in STALL_REASONS (store/write-failure.ts). */
  LoaderStall = 6,
}

/** Slot holding the active members generation (0/1; store/env.ts reads it per lookup). */
export const GENERATION_SLOT = 7;

/** Slot every commit on the store bumps (store/env.ts `commitCell`): readers renew their snapshot when it moves. */
export const COMMIT_SLOT = 5;

const SLOTS = 8;

export class SharedState {
  readonly flags: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(SLOTS * 4)) {
    this.flags = new Int32Array(buffer);
  }

  /** A fresh state: flags off, gauges unknown. */
  static create(): SharedState {
    const s = new SharedState();
    s.setValue(Gauge.NatsPending, -1);
    return s;
  }

  get(f: Flag): boolean {
    return Atomics.load(this.flags, f) === 1;
  }

  set(f: Flag, on: boolean): void {
    Atomics.store(this.flags, f, on ? 1 : 0);
  }

  value(g: Gauge): number {
    return Atomics.load(this.flags, g);
  }

  setValue(g: Gauge, v: number): void {
    Atomics.store(this.flags, g, Math.min(v, 0x7fff_ffff));
  }
}
