// A group commit on the loader thread: items that arrive while a commit runs
// (messages from the workers, read by the event loop meanwhile) are applied
// together in the next one, so one transaction and one sync to disk serve
// them all. With a transaction each, the sync is most of a small batch's cost
// and the writer falls behind a stream of small batches (a pixel's or a
// cookie sync's), while a group grows with the load instead.
import { performance } from 'node:perf_hooks';

export class GroupCommit<T> {
  private queue: T[] = [];
  private flushing = false;
  /** When the last commit began (performance.now()). */
  private lastAt = -Infinity;

  /**
   * `commit` applies the queued items (synchronously, in one transaction) and
   * answers each itself; it returns those that must wait for the next commit
   * (none by default). It must not throw. `minIntervalMs`: commits begin at
   * least this far apart, the items that arrive meanwhile waiting for the
   * next (0: as soon as the event loop is free).
   */
  constructor(
    private readonly commit: (queued: T[]) => T[] | void,
    private readonly minIntervalMs = 0,
  ) {}

  /** Queues `item` for the next commit. */
  add(item: T): void {
    this.queue.push(item);
    if (!this.flushing) {
      this.flushing = true;
      this.schedule();
    }
  }

  private schedule(): void {
    const wait = this.lastAt + this.minIntervalMs - performance.now();
    if (wait > 0) setTimeout(() => this.flush(), Math.ceil(wait));
    else setImmediate(() => this.flush());
  }

  private flush(): void {
    // A timer can fire up to a millisecond early by this clock (libuv counts whole ms from a cached loop time).
    if (performance.now() < this.lastAt + this.minIntervalMs) return this.schedule();
    const queued = this.queue;
    this.queue = [];
    this.lastAt = performance.now();
    const later = this.commit(queued);
    if (later && later.length) this.queue = later.concat(this.queue);
    if (this.queue.length) this.schedule();
    else this.flushing = false;
  }
}

/**
 * `applyAll` as a group commit: each call waits for the commit that applies
 * its item, and gets its own result (`applyAll` answers one per item, in
 * order), or the error that commit threw.
 */
export function groupCommitted<T, R>(applyAll: (items: T[]) => R[], minIntervalMs = 0): (item: T) => Promise<R> {
  interface Waiting {
    item: T;
    resolve: (r: R) => void;
    reject: (err: unknown) => void;
  }
  const group = new GroupCommit<Waiting>((queued) => {
    try {
      const results = applyAll(queued.map((w) => w.item));
      queued.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      for (const w of queued) w.reject(err);
    }
  }, minIntervalMs);
  return (item) => new Promise<R>((resolve, reject) => group.add({ item, resolve, reject }));
}
