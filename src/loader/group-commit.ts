// A group commit on the loader thread: items that arrive while a commit runs
// (messages from the workers, read by the event loop meanwhile) are applied
// together in the next one, so one transaction and one sync to disk serve
// them all. With a transaction each, the sync is most of a small batch's cost
// and the writer falls behind a stream of small batches (a pixel's or a
// cookie sync's), while a group grows with the load instead.

export class GroupCommit<T> {
  private queue: T[] = [];
  private flushing = false;

  /**
   * `commit` applies the queued items (synchronously, in one transaction) and
   * answers each itself; it returns those that must wait for the next commit
   * (none by default). It must not throw.
   */
  constructor(private readonly commit: (queued: T[]) => T[] | void) {}

  /** Queues `item` for the next commit. */
  add(item: T): void {
    this.queue.push(item);
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    const queued = this.queue;
    this.queue = [];
    const later = this.commit(queued);
    if (later && later.length) this.queue = later.concat(this.queue);
    if (this.queue.length) setImmediate(() => this.flush());
    else this.flushing = false;
  }
}

/**
 * `applyAll` as a group commit: each call waits for the commit that applies
 * its item, and gets its own result (`applyAll` answers one per item, in
 * order), or the error that commit threw.
 */
export function groupCommitted<T, R>(applyAll: (items: T[]) => R[]): (item: T) => Promise<R> {
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
  });
  return (item) => new Promise<R>((resolve, reject) => group.add({ item, resolve, reject }));
}
