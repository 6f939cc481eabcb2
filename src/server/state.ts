// Flags the supervisor sets and every worker reads, in shared memory: a
// readiness check is one Atomics.load, with no message round trip.
export const enum Flag {
  /** The initial load (seed + inbox) is done. */
  Loaded = 0,
  /** SIGTERM received: stop taking new work. */
  Draining = 1,
}

const SLOTS = 8;

export class SharedState {
  readonly flags: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(SLOTS * 4)) {
    this.flags = new Int32Array(buffer);
  }

  get(f: Flag): boolean {
    return Atomics.load(this.flags, f) === 1;
  }

  set(f: Flag, on: boolean): void {
    Atomics.store(this.flags, f, on ? 1 : 0);
  }
}
