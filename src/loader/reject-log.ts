// A file's rejects file (`rejects/<file>.rejects.ndjson`), bounded: a file of
// nothing but bad records (a megabyte of msgpack zeros is a million records)
// would otherwise write tens of times its own size to disk and hold as many
// reject objects in memory. The first MAX_LISTED_REJECTS are listed; the rest
// are counted, and one last line says how many were left out.
import { appendFile } from 'node:fs/promises';

export interface Reject {
  line: number;
  reason: string;
  record?: string;
}

export const MAX_LISTED_REJECTS = 100_000;

export class RejectLog {
  private pending: Reject[] = [];
  private listed = 0;
  private unlisted = 0;

  constructor(
    private readonly path: string | undefined,
    private readonly max = MAX_LISTED_REJECTS,
  ) {}

  /** Lists `r` (its line, reason and record only: a reader's reject carries more). */
  add(r: Reject): void {
    if (this.listed + this.pending.length >= this.max) {
      this.unlisted++;
      return;
    }
    const listed: Reject = { line: r.line, reason: r.reason };
    if (r.record !== undefined) listed.record = r.record;
    this.pending.push(listed);
  }

  /** Appends what was added since the last flush. */
  async flush(): Promise<void> {
    const rs = this.pending;
    this.pending = [];
    this.listed += rs.length;
    if (rs.length && this.path) await appendFile(this.path, rs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  }

  /** Flushes, then notes the rejects that were only counted. */
  async finish(): Promise<void> {
    await this.flush();
    if (this.unlisted > 0 && this.path) {
      await appendFile(
        this.path,
        JSON.stringify({ line: 0, reason: `${this.unlisted} more rejects not listed (at most ${this.max} are)` }) +
          '\n',
      );
    }
    this.unlisted = 0;
  }
}
