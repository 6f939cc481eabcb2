// The `mixed` scenario's write side: while lookups run, push membership
// changes to POST /v1/ingest (NDJSON, Bearer ingest key) at a steady rate of
// records per second, in batches, one batch in flight at a time (a collector's
// behaviour: it waits for the durable ack before the next).
//
// The records add one marker segment with a short TTL to known users of the
// data set, so the load test changes nothing that lasts: the memberships
// expire by themselves and the users' other segments are untouched.
import { Recorder, type Figures } from './recorder.js';
import { uidFor } from '../gen/synthetic.js';
import { prng } from './key-mix.js';

export interface IngestOptions {
  origin: string;
  ingestKey: string;
  /** Records per second (0 = none). */
  rate: number;
  batch: number;
  segment: number;
  ttlS: number;
  seed: number;
  users: number;
}

export interface IngestFigures {
  records: number;
  applied: number;
  rejected: number;
  batches: number;
  recordsPerS: number;
  /** Per batch: request to durable ack. */
  batch: Figures;
}

export class IngestStream {
  private readonly rec = new Recorder((s) => s >= 200 && s < 300);
  private running = false;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  private records = 0;
  private applied = 0;
  private rejected = 0;
  private t0 = 0;
  private readonly rnd: () => number;

  constructor(private readonly o: IngestOptions) {
    this.rnd = prng(o.seed ^ 0x1a9e);
  }

  private body(n: number): string {
    let s = '';
    for (let k = 0; k < n; k++) {
      const uid = uidFor(this.o.seed, Math.floor(this.rnd() * this.o.users));
      s += `{"op":"add","uid":"${uid}","segments":[{"id":${this.o.segment},"ttl":${this.o.ttlS}}]}\n`;
    }
    return s;
  }

  start(): void {
    if (this.o.rate <= 0 || this.stopped) return;
    this.running = true;
    this.t0 = performance.now();
    this.rec.start();
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // Keep the records/s on schedule: send the batch when it is due.
      const due = this.t0 + (this.records / this.o.rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (!this.running) break;
      const body = this.body(this.o.batch);
      const t = performance.now();
      try {
        const res = await fetch(`${this.o.origin}/v1/ingest`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-ndjson', Authorization: `Bearer ${this.o.ingestKey}` },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        this.rec.answer((performance.now() - t) * 1000, res.status);
        if (res.ok) {
          const a = JSON.parse(text) as { applied?: number; rejected?: number };
          this.applied += a.applied ?? 0;
          this.rejected += a.rejected ?? 0;
        }
      } catch (err) {
        this.rec.failure((err as Error).name === 'TimeoutError' ? 'timeouts' : 'connection');
        // Do not hammer a target that refuses connections.
        await new Promise((r) => setTimeout(r, 100));
      }
      this.records += this.o.batch;
    }
  }

  async stop(): Promise<IngestFigures | null> {
    this.stopped = true;
    if (!this.running) return null;
    this.running = false;
    await this.done;
    this.rec.stop();
    const batch = this.rec.figures();
    return {
      records: this.records,
      applied: this.applied,
      rejected: this.rejected,
      batches: batch.requests,
      recordsPerS: this.records / ((performance.now() - this.t0) / 1000),
      batch,
    };
  }
}
