import { performance } from 'node:perf_hooks';
// A token bucket: at most `burst` at once, refilled at `rate` per second.
// One per worker for the writes unauthenticated requests may cause (browser
// opt-outs), so no caller can make segd write and fsync without bound.
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {
    this.tokens = burst;
    this.at = now();
  }

  /** Takes one token if there is one. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.at) * this.rate);
    this.at = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
