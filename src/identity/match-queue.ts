// Cookie-sync matches leave a lookup worker in batches: the sync answer does
// not wait for the write (a pixel must be fast, and the loader may be in the
// middle of a large import), and one message per batch keeps the writer's
// transactions few. Flushed after `delayMs` or at `maxItems`, whichever first.
// Bounded by items, not batches: while `maxPending` items await the writer
// (queued here or sent and not yet confirmed), push refuses (the sync or the
// pixel answers a no-op) rather than queueing without limit in memory.
// Items, because batches vary: at 20k hits/s a 5 ms batch holds ≈ 100, and
// 64 such batches are 0.3 s of backlog, barely the spacing of exposure commits
// (loader/exposures.ts), before the commit itself on a shared core.
export interface MatchItem {
  /** id key (keys.ts) */
  key: string;
  /** segd uid */
  uid: string;
}

/** Generic over what it carries: cookie-sync matches, or any other small write a pixel hands the writer. */
export class MatchQueue<T = MatchItem> {
  private items: T[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Batches sent whose write has not been confirmed yet (drain waits for 0). */
  inFlight = 0;
  /** Items in those batches. */
  private sentItems = 0;

  constructor(
    private readonly send: (items: T[]) => Promise<unknown>,
    private readonly onError: (err: unknown, lost: number) => void,
    /** Items by outcome, for metrics: stored (the writer confirmed), refused (full), lost (the write failed). */
    private readonly count: (outcome: 'stored' | 'refused' | 'lost', n: number) => void = () => undefined,
    private readonly delayMs = 5,
    private readonly maxItems = 500,
    /** ≈ 1.6 s of backlog at 20k items/s; ≈ 3 MB of small items. */
    private readonly maxPending = 32_000,
  ) {}

  /** False when the writer is this far behind: the match was not taken. */
  push(item: T): boolean {
    if (this.sentItems + this.items.length >= this.maxPending) {
      this.count('refused', 1);
      return false;
    }
    this.items.push(item);
    if (this.items.length >= this.maxItems) this.flush();
    else if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.delayMs);
    return true;
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.items.length === 0) return;
    const batch = this.items;
    this.items = [];
    this.inFlight++;
    this.sentItems += batch.length;
    this.send(batch)
      .then(
        () => this.count('stored', batch.length),
        (err: unknown) => {
          this.count('lost', batch.length);
          this.onError(err, batch.length);
        },
      )
      .finally(() => {
        this.inFlight--;
        this.sentItems -= batch.length;
      });
  }
}
