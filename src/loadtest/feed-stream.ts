// The write side of the feed scenarios: while lookups run, membership changes
// flow to segd at a steady rate of records per second, in batches, up to
// `inflight` batches awaiting their ack at a time (a collector pipelines; with
// one in flight the rate is capped at batch / ack time). Two transports, the
// same records: HTTP push (`mixed`: POST /v1/ingest, acked once committed) and
// NATS JetStream (`nats`: publish to the stream segd consumes, acked once the
// stream stored it).
//
// The records add one marker segment with a short TTL to known users of the
// data set, so the load test changes nothing that lasts: the memberships
// expire by themselves and the users' other segments are untouched.
//
// Freshness: every `probeEveryMs` one batch also carries a probe record for a
// user no one else has; from that batch's ack the probe polls the lookup
// route until the user holds the marker segment. Ack → visible is what a
// collector waits before a change is live (for NATS the ack is the stream's,
// so it includes segd's fetch, apply and commit).
import { performance } from 'node:perf_hooks';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Recorder, type Figures } from './recorder.js';
import { uidFor } from '../gen/synthetic.js';
import { prng } from './key-mix.js';

export interface FeedOptions {
  /** segd's base URL: the lookups the freshness probe polls (and HTTP push). */
  origin: string;
  /** Records per second (0 = none). */
  rate: number;
  batch: number;
  inflight: number;
  segment: number;
  ttlS: number;
  seed: number;
  users: number;
  /** One probe record every this many ms (0 = no freshness probe). */
  probeEveryMs: number;
}

/** Where batches go. send() resolves on the ack; applied/rejected when the transport tells. */
export interface FeedSender {
  readonly name: string;
  open(): Promise<void>;
  send(body: string): Promise<{ applied?: number; rejected?: number }>;
  close(): Promise<void>;
}

export interface FeedFigures {
  transport: string;
  /** Records sent, and acked (the rate counts acked ones). */
  records: number;
  acked: number;
  applied: number;
  rejected: number;
  batches: number;
  recordsPerS: number;
  /** Per batch: send to ack. */
  batch: Figures;
  /** Per probe: ack to visible to a lookup, µs; probes not visible within PROBE_GIVE_UP_MS count as timeouts. */
  freshness?: Figures;
}

/** HTTP push: the ack is segd's 200 once the batch is committed. */
export function pushSender(origin: string, ingestKey: string): FeedSender {
  return {
    name: 'HTTP push',
    open: async () => {},
    async send(body) {
      const res = await fetch(`${origin}/v1/ingest`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-ndjson', Authorization: `Bearer ${ingestKey}` },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      if (!res.ok) throw new FeedError(res.status, text.slice(0, 200));
      const a = JSON.parse(text) as { applied?: number; rejected?: number };
      return { applied: a.applied ?? 0, rejected: a.rejected ?? 0 };
    },
    close: async () => {},
  };
}

/** NATS JetStream: the ack is the stream's (stored, replicated); segd applies it later. */
export function natsSender(servers: string, subject: string): FeedSender {
  let nc: NatsConnection | null = null;
  let js: JetStreamClient | null = null;
  return {
    name: 'NATS JetStream',
    async open() {
      nc = await connect({ servers: servers.split(',').map((s) => s.trim()), timeout: 5000 });
      js = jetstream(nc, { timeout: 10_000 });
    },
    async send(body) {
      await js!.publish(subject, body);
      return {};
    },
    async close() {
      await nc?.drain().catch(() => nc?.close());
    },
  };
}

export class FeedError extends Error {
  constructor(
    readonly status: number,
    text: string,
  ) {
    super(`answered ${status}: ${text}`);
  }
}

/** A probe not visible after this long is counted as a timeout (the feed is stuck or far behind). */
const PROBE_GIVE_UP_MS = 10_000;
/**
 * Between polls of a probe: every ms for its first 50 ms (ms resolution where
 * the targets are), then every 10 ms, so a feed that falls seconds behind
 * does not turn the probes into a poll storm on the generator's core.
 */
const pollDelayMs = (waitedMs: number) => (waitedMs < 50 ? 1 : 10);

export class FeedStream {
  private readonly rec = new Recorder((s) => s >= 200 && s < 300);
  private readonly fresh = new Recorder((s) => s === 200);
  private running = false;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();
  private readonly sending = new Set<Promise<void>>();
  private readonly probing = new Set<Promise<void>>();
  private records = 0;
  private acked = 0;
  private applied = 0;
  private rejected = 0;
  private t0 = 0;
  private nextProbeAt = 0;
  private probes = 0;
  private readonly rnd: () => number;
  /** The first failure, for the report. */
  error: string | undefined;

  constructor(
    private readonly o: FeedOptions,
    private readonly sender: FeedSender,
  ) {
    this.rnd = prng(o.seed ^ 0x1a9e);
  }

  /** Connects before the warm-up, so a wrong URL fails the scenario up front. */
  async prepare(): Promise<void> {
    if (this.o.rate > 0) await this.sender.open();
  }

  private body(n: number, probe: string | null): string {
    let s = '';
    for (let k = 0; k < n; k++) {
      const uid = uidFor(this.o.seed, Math.floor(this.rnd() * this.o.users));
      s += `{"op":"add","uid":"${uid}","segments":[{"id":${this.o.segment},"ttl":${this.o.ttlS}}]}\n`;
    }
    if (probe) s += `{"op":"add","uid":"${probe}","segments":[{"id":${this.o.segment},"ttl":${this.o.ttlS}}]}\n`;
    return s;
  }

  start(): void {
    if (this.o.rate <= 0 || this.stopped) return;
    this.running = true;
    this.t0 = performance.now();
    this.nextProbeAt = this.t0;
    this.rec.start();
    this.fresh.start();
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // Keep the records/s on schedule: send the batch when it is due, if a slot is free.
      const due = this.t0 + (this.records / this.o.rate) * 1000;
      const wait = due - performance.now();
      // Behind schedule, still a turn of the event loop: a sender that never does I/O
      // (bench/external-writer.ts) would otherwise keep timers, stop() included, from ever running.
      await new Promise((r) => (wait > 0 ? setTimeout(r, wait) : setImmediate(r)));
      while (this.running && this.sending.size >= this.o.inflight) await Promise.race(this.sending);
      if (!this.running) break;
      const now = performance.now();
      const probe =
        this.o.probeEveryMs > 0 && now >= this.nextProbeAt
          ? `lt-fresh-${this.o.seed}-${process.pid}-${this.probes++}`
          : null;
      if (probe) this.nextProbeAt = now + this.o.probeEveryMs;
      const p = this.sendOne(this.body(this.o.batch, probe), probe);
      this.sending.add(p);
      void p.finally(() => this.sending.delete(p));
      this.records += this.o.batch;
    }
  }

  private async sendOne(body: string, probe: string | null): Promise<void> {
    const t = performance.now();
    try {
      const a = await this.sender.send(body);
      this.rec.answer((performance.now() - t) * 1000, 200);
      this.acked += this.o.batch;
      this.applied += a.applied ?? 0;
      this.rejected += a.rejected ?? 0;
      if (probe) {
        const p = this.watch(probe, performance.now());
        this.probing.add(p);
        void p.finally(() => this.probing.delete(p));
      }
    } catch (err) {
      this.error ??= `${this.sender.name}: ${(err as Error).message}`;
      if (err instanceof FeedError) this.rec.answer((performance.now() - t) * 1000, err.status);
      else this.rec.failure((err as Error).name === 'TimeoutError' ? 'timeouts' : 'connection');
      // Do not hammer a target that refuses.
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Polls the lookup route until the probe user holds the marker segment. */
  private async watch(uid: string, ackedAt: number): Promise<void> {
    const url = `${this.o.origin}/v1/segments?uid=${encodeURIComponent(uid)}`;
    const marker = String(this.o.segment);
    while (performance.now() - ackedAt < PROBE_GIVE_UP_MS) {
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
        const text = await r.text();
        if (
          r.status === 200 &&
          (JSON.parse(text) as { segments?: number[] }).segments?.some((s) => String(s) === marker)
        ) {
          this.fresh.answer((performance.now() - ackedAt) * 1000, 200);
          return;
        }
      } catch {
        /* a failed poll is retried until the give-up time */
      }
      await new Promise((r) => setTimeout(r, pollDelayMs(performance.now() - ackedAt)));
    }
    this.fresh.failure('timeouts');
  }

  async stop(): Promise<FeedFigures | null> {
    this.stopped = true;
    if (!this.running) {
      await this.sender.close();
      return null;
    }
    this.running = false;
    await this.done;
    await Promise.all([...this.sending]);
    const seconds = (performance.now() - this.t0) / 1000;
    this.rec.stop();
    await Promise.all([...this.probing]);
    this.fresh.stop();
    await this.sender.close();
    const { slow: _s, ...batch } = this.rec.figures();
    const out: FeedFigures = {
      transport: this.sender.name,
      records: this.records,
      acked: this.acked,
      applied: this.applied,
      rejected: this.rejected,
      batches: batch.requests,
      recordsPerS: this.acked / seconds,
      batch,
    };
    if (this.probes > 0) {
      const { slow: _f, ...freshness } = this.fresh.figures();
      out.freshness = freshness;
    }
    return out;
  }
}
