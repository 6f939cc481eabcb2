// The outbound sender: drains each destination's outbox in order, in
// batches, and advances the destination's cursor only after a 2xx — so a
// change is delivered at least once, and a receiver deduplicating by the
// batch's Idempotency-Key sees it exactly once. It runs on the writer's
// thread (its LMDB writes are the writer's), one pump per destination
// (pump.ts: up to `concurrency` requests in flight, never two holding the
// same user, so each user's changes arrive in order).
//
// One class, started with the store, a registry and a logger: it moves with
// the writer wherever the writer runs.
import type { Store } from '../store/env.js';
import { decodeMembers } from '../store/members.js';
import type { Registry } from '../partners/registry.js';
import type { Logger } from '../log.js';
import { DestinationRules } from './deltas.js';
import { OutboxWriter, SEQ_END, endsWithResync, resyncMarker, type OutboxEntry } from './outbox.js';
import { readState } from './cursor.js';
import { isSuppressed } from './batcher.js';
import { Pump, backlogOf } from './pump.js';
import { deadLetterCount, lagSeconds, type DestinationStatus } from './status.js';

export interface OutboundOptions {
  /** Entries a destination may queue before its backlog is compacted to the latest state per user. */
  maxBacklog: number;
  /** Deliveries of a line a receiver refuses before it becomes a dead letter. */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export class OutboundSender {
  readonly rules: DestinationRules;
  readonly outbox: OutboxWriter;
  private readonly pumps = new Map<string, Pump>();
  private readonly abort = new AbortController();
  private started = false;

  constructor(
    readonly store: Store,
    readonly registry: Registry,
    readonly log: Logger,
    readonly opts: OutboundOptions,
  ) {
    this.rules = new DestinationRules(registry);
    // From construction on, every membership write queues what concerns a destination.
    this.outbox = new OutboxWriter(store, this.rules, (counts) => {
      for (const [dest, n] of counts) this.pumps.get(dest)?.appended(n);
    });
  }

  /** Starts a pump for every destination that may receive now. */
  start(): void {
    this.started = true;
    // Those off now (perhaps since before this start): nothing is queued for them meanwhile, so they get a resync when back on.
    this.resyncWhenBack(this.registry.destinations().map((d) => d.id));
    this.sync();
  }

  /** The registry changed (a destination, partner or licence): reload it, start and stop pumps to match. */
  registryChanged(): void {
    const wasOn = this.rules.active().map((r) => r.dest.id);
    this.registry.reload();
    this.resyncWhenBack(wasOn);
    if (this.started) this.sync();
  }

  /**
   * Of `ids`, the destinations that exist and may not receive now (disabled,
   * partner disabled, no licence) get a resync marker behind what is queued:
   * while off nothing is queued for them, so when they are on again the
   * sender streams them the state they missed.
   */
  private resyncWhenBack(ids: readonly string[]): void {
    const off = ids.filter((id) => this.registry.destination(id) && !this.rules.of(id));
    if (off.length === 0) return;
    this.store.env.transactionSync(() => {
      for (const id of off) if (!endsWithResync(this.store, id)) this.outbox.append(id, [resyncMarker()]);
    });
  }

  /** Queues a resync for `dest` (the whole state, after what is queued); false when there is no such destination. */
  resync(dest: string): boolean {
    if (!this.registry.destination(dest)) return false;
    this.store.env.transactionSync(() => this.outbox.append(dest, [resyncMarker()]));
    this.log.info({ destination: dest }, 'outbound resync queued');
    return true;
  }

  private sync(): void {
    for (const rule of this.rules.active())
      if (!this.pumps.has(rule.dest.id)) {
        const pump = new Pump(this, rule.dest.id, this.abort.signal);
        this.pumps.set(rule.dest.id, pump);
        void pump.run().finally(() => {
          if (this.pumps.get(rule.dest.id) === pump) this.pumps.delete(rule.dest.id);
          // Stopped because the destination was off for a moment, and on again since: a pump of its own.
          if (!this.abort.signal.aborted && this.rules.of(rule.dest.id)) this.sync();
        });
      }
    for (const pump of this.pumps.values()) pump.wake();
  }

  /** Stops every pump: requests in flight are cut (their batch is resent at the next start). */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.pumps.values()].map((p) => p.done));
  }

  /** Every destination with its delivery state, for the admin API and /metrics. */
  status(): DestinationStatus[] {
    return this.registry.destinations().map((d) => {
      const state = readState(this.store, d.id);
      const pump = this.pumps.get(d.id);
      return {
        id: d.id,
        running: pump !== undefined,
        cursor: state.cursor,
        backlog: pump?.backlog ?? backlogOf(this.store, d.id, state.cursor),
        lagSeconds: lagSeconds(this.store, d.id, state.cursor),
        sent: state.sent + (pump?.unsaved.sent ?? 0),
        failed: state.failed + (pump?.unsaved.failed ?? 0),
        retried: state.retried + (pump?.unsaved.retried ?? 0),
        dead: state.dead,
        deadLetters: deadLetterCount(this.store, d.id),
        lastError: pump?.lastError ?? state.lastError,
        resync: state.resync,
      };
    });
  }

  /** Moves `dest`'s dead letters back into its outbox (as the users' current state); returns how many. */
  replay(dest: string): number | null {
    if (!this.registry.destination(dest)) return null;
    let n = 0;
    this.store.env.transactionSync(() => {
      const keys = [...this.store.outboundDead.getKeys({ start: [dest, 0], end: [dest, SEQ_END], snapshot: false })];
      for (const key of keys) {
        const d = this.store.outboundDead.get(key) as DeadLetter;
        this.outbox.append(dest, [this.currentState(d.u, d.id, [...d.j, ...d.l], d.at, 0)]);
        this.store.outboundDead.removeSync(key);
        n++;
      }
    });
    this.log.info({ destination: dest, replayed: n }, 'outbound dead letters replayed');
    return n;
  }

  /**
   * A user's current status in `segments`, as an entry: what a line refused
   * or dead-lettered is queued again as, so a later change already queued is
   * never overtaken by an older state.
   */
  currentState(uid: string, sentAs: string, segments: readonly number[], at: number, attempts: number): OutboxEntry {
    const held = new Set<number>();
    const buf = this.store.members.getBinaryFast(uid) as Buffer | undefined;
    if (buf !== undefined && !isSuppressed(this.store, uid, Math.floor(Date.now() / 1000)))
      for (const m of decodeMembers(buf).members) held.add(m.id);
    const j = segments.filter((s) => held.has(s));
    const l = segments.filter((s) => !held.has(s));
    const e: OutboxEntry = { u: uid, at, j, l };
    if (attempts) e.a = attempts;
    // The id it was sent under, for when a deletion has unlinked it since (outbox.ts).
    if (sentAs !== uid) e.i = sentAs;
    return e;
  }
}

export interface DeadLetter {
  u: string;
  id: string;
  at: number;
  j: number[];
  l: number[];
  attempts: number;
  error: string;
  deadAt: number;
}
