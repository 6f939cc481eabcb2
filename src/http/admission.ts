import { performance } from 'node:perf_hooks';
// Admission control: every request that waits on something (a body to read,
// a round trip to the main thread) draws from one of three per-worker
// budgets, so one kind of traffic cannot starve another:
//   lookups  — GET /v1/segments, batch, enrichment, /v1/ws (partners' bid path)
//   keyed    — every other route that needs a key (push, admin, deletion, export)
//   public   — routes anyone may call (cookie sync, opt-out, an open /metrics)
// A request is charged only after its route accepted the caller's key, so
// strangers can fill only the public budget. Past the lookup budget (or while
// the event loop lags), a lookup is answered empty at once (204) rather than
// queued — an ad server would rather have no segments now than all of them
// after its auction closed; past the others, 503. Nothing here queues: the
// only waiting is uWS's own socket buffers.

/** Requests of one kind under way on this worker, and how many may be. */
export class Budget {
  n = 0;
  constructor(
    readonly name: 'lookups' | 'keyed' | 'public',
    readonly max: number,
  ) {}

  full(): boolean {
    return this.n >= this.max;
  }
}

export interface Limits {
  lookups: number;
  keyed: number;
  public: number;
}

export class Admission {
  /** Event-loop lag seen by the last sample, ms (0 when sampling is off). */
  lagMs = 0;
  readonly lookups: Budget;
  readonly keyed: Budget;
  readonly public: Budget;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    limits: Limits,
    private readonly maxLagMs: number,
  ) {
    this.lookups = new Budget('lookups', limits.lookups);
    this.keyed = new Budget('keyed', limits.keyed);
    this.public = new Budget('public', limits.public);
    if (maxLagMs > 0) {
      // A 10 ms tick that measures its own lateness; unref'd, so it never keeps a worker alive.
      const every = 10;
      let expected = performance.now() + every;
      this.timer = setInterval(() => {
        const now = performance.now();
        this.lagMs = Math.max(0, now - expected);
        expected = now + every;
      }, every).unref();
    }
  }

  /** True when a new lookup should be shed. Two field reads on the common path; other routes' load does not count. */
  overloaded(): boolean {
    return this.lookups.n >= this.lookups.max || (this.maxLagMs > 0 && this.lagMs > this.maxLagMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
