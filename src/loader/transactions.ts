// The writer's transactions and the store-full state. Every write of the
// loader thread runs through `commit`: a store that cannot grow (full disk,
// LMDB map size) aborts the transaction whole — checkpoint included — and
// stalls the writer until a later commit succeeds.
import type { Store } from '../store/env.js';
import { StoreFullError, stallReason, type StallReason } from '../store/write-failure.js';
import type { Change } from './records.js';
import { sliceBegins, sliceCommitted } from '../metrics/writer-slices.js';

/** Where a loading snapshot collects the changes committed meanwhile. */
export interface ChangeLog {
  /** A transaction starts: what it records is kept only if it commits. */
  begin(): void;
  /** `before`: the stored value the change applies to (valid only during the call). */
  record(ch: Change, before: Buffer | undefined): void;
  /**
   * A user's members written other than by a Change (any writer of `members`
   * outside a batch or the sweep, e.g. ID-graph merges or privacy deletions,
   * must call this while a snapshot loads): its stored value is carried into
   * the new generation.
   */
  touch(uid: string): void;
  /** The transaction since begin() did not commit. */
  abort(): void;
}

export class Transactions {
  /** Set while the store cannot take writes (full); cleared by the next commit. */
  stalled: StallReason | null = null;

  /** While a snapshot loads: every change committed meanwhile, replayed onto the new generation at the flip. */
  dirty: ChangeLog | null = null;

  constructor(
    private readonly store: Store,
    /** The store stopped taking writes (full), or took one again (null). Called on each change of state. */
    private readonly onStall?: (reason: StallReason | null, err?: unknown) => void,
  ) {}

  /**
   * Runs one transaction. A store that is full throws StoreFullError (the
   * transaction, checkpoint included, is not applied) and marks the writer
   * stalled until a later commit succeeds. `records`: the feed changes it applies, for the timeline.
   */
  commit<T>(fn: () => T, records?: number): T {
    let out: T;
    const slice = sliceBegins();
    const log = this.dirty;
    log?.begin();
    try {
      this.store.prepareWrite(records);
      out = this.store.env.transactionSync(fn);
    } catch (err) {
      log?.abort(); // nothing of it committed: nothing of it to replay
      const reason = stallReason(err, this.store.path);
      if (reason === null) throw err;
      if (this.stalled !== reason) {
        this.stalled = reason;
        this.onStall?.(reason, err);
      }
      throw new StoreFullError(reason, err);
    }
    sliceCommitted(slice, records);
    if (this.stalled !== null) {
      this.stalled = null;
      this.onStall?.(null);
    }
    return out;
  }
}
