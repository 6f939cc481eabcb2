// Admission control for the lookup paths: past the per-worker limit of
// requests under way (or while the event loop lags), a lookup is answered
// empty at once (204) rather than queued — an ad server would rather have
// no segments now than all of them after its auction closed. Nothing here
// queues: the only waiting is uWS's own socket buffers.
export class Admission {
  /** Event-loop lag seen by the last sample, ms (0 when sampling is off). */
  lagMs = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly inflight: { n: number },
    private readonly maxInflight: number,
    private readonly maxLagMs: number,
  ) {
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

  /** True when a new lookup should be shed. Two field reads on the common path. */
  overloaded(): boolean {
    return this.inflight.n >= this.maxInflight || (this.maxLagMs > 0 && this.lagMs > this.maxLagMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
