// The outbound sender: drains each destination's outbox in order, in
// batches, and advances the destination's cursor only after a 2xx — so a
// change is delivered at least once, and a receiver deduplicating by the
// batch's Idempotency-Key sees it exactly once. It runs on the writer's
// thread (its LMDB writes are the writer's), one pump per destination, one
// request in flight per destination (so each user's changes arrive in order).
//
// One class, started with the store, a registry and a logger: it moves with
// the writer wherever the writer runs.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../store/env.js';
import { decodeMembers } from '../store/members.js';
import type { Registry } from '../partners/registry.js';
import type { Logger } from '../log.js';
import { DestinationRules, type DestinationRule } from './deltas.js';
import { OutboxWriter, SEQ_END, readRange, type OutboxEntry } from './outbox.js';
import { readState, writeState, type DeliveryState, type InFlight } from './cursor.js';
import { encodeBatch, fitting, isSuppressed, lineOf, type Batch, type Line } from './batcher.js';
import { postBatch } from './webhook.js';
import { backoffMs } from './backoff.js';
import { compactOutbox } from './compaction.js';
import { deadLetterCount, lagSeconds, type DestinationStatus } from './status.js';

export interface OutboundOptions {
  /** Entries a destination may queue before its backlog is compacted to the latest state per user. */
  maxBacklog: number;
  /** Deliveries of a line a receiver refuses before it becomes a dead letter. */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** Users scanned per resync batch at most, per user sent (most users may hold nothing the destination takes). */
const RESYNC_SCAN_FACTOR = 20;

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
    this.sync();
  }

  /** The registry changed (a destination, partner or licence): reload it, start and stop pumps to match. */
  registryChanged(): void {
    this.registry.reload();
    if (this.started) this.sync();
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

function backlogOf(store: Store, dest: string, cursor: number): number {
  return store.outbox.getCount({ start: [dest, cursor + 1], end: [dest, SEQ_END] });
}

/** One destination's delivery loop. */
class Pump {
  backlog: number;
  /** Counts since the last cursor write (persisted with the next one). */
  unsaved = { sent: 0, failed: 0, retried: 0 };
  lastError: { at: number; message: string } | null = null;
  done: Promise<void> = Promise.resolve();
  private waker: (() => void) | null = null;
  private lastRequestAt = 0;
  private compactAt = 0;
  private readonly store: Store;

  constructor(
    private readonly sender: OutboundSender,
    private readonly id: string,
    private readonly signal: AbortSignal,
  ) {
    this.store = sender.store;
    this.backlog = backlogOf(this.store, id, readState(this.store, id).cursor);
  }

  appended(n: number): void {
    this.backlog += n;
    this.wake();
  }

  wake(): void {
    const w = this.waker;
    this.waker = null;
    w?.();
  }

  /** Until woken, `ms` passed, or stopped. */
  private async idle(ms: number | null): Promise<void> {
    if (this.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const finish = () => {
        if (t) clearTimeout(t);
        this.signal.removeEventListener('abort', finish);
        resolve();
      };
      const t = ms === null ? null : setTimeout(finish, ms);
      this.signal.addEventListener('abort', finish, { once: true });
      this.waker = finish;
    });
    this.waker = null;
  }

  run(): Promise<void> {
    this.done = this.loop().catch((err: unknown) => {
      this.sender.log.error({ err, destination: this.id }, 'outbound sender stopped on an error');
    });
    return this.done;
  }

  private async loop(): Promise<void> {
    const { store, sender } = this;
    while (!this.signal.aborted) {
      const rule = sender.rules.of(this.id);
      if (!rule) return;
      let state = readState(store, this.id);
      this.maybeCompact(state);
      if (state.inflight === null) {
        const planned = this.plan(rule, state);
        if (typeof planned === 'number' || planned === null) {
          await this.idle(planned);
          continue;
        }
        state = { ...state, inflight: planned };
        store.env.transactionSync(() => writeState(store, this.id, state));
      }
      await this.deliver(rule, state, state.inflight!);
    }
  }

  /** Past the backlog bound: the changes queued behind the batch in flight are compacted to the latest state per user. */
  private maybeCompact(state: DeliveryState): void {
    const { store, sender } = this;
    if (this.backlog <= Math.max(sender.opts.maxBacklog, this.compactAt)) return;
    const after = state.inflight ? state.inflight.last : state.cursor;
    const r = store.env.transactionSync(() => compactOutbox(store, this.id, after));
    this.backlog = backlogOf(store, this.id, state.cursor);
    // Still past the bound (that many distinct users): compact again once it has grown by half again.
    this.compactAt = Math.max(sender.opts.maxBacklog, Math.ceil(this.backlog * 1.5));
    sender.log.warn({ destination: this.id, before: r.before, after: r.after }, 'outbound backlog compacted');
  }

  /** The next batch's range, or how long to wait for one (null: until something is queued). */
  private plan(rule: DestinationRule, state: DeliveryState): InFlight | number | null {
    return this.planNext(rule, state, true);
  }

  /** Like plan; with `mayWait` false, only a batch due now (no resync start, which writes its own state). */
  private planNext(rule: DestinationRule, state: DeliveryState, mayWait: boolean): InFlight | number | null {
    const { store } = this;
    const dest = rule.dest;
    if (state.resync) return this.planResync(rule, state);
    const entries = readRange(store, this.id, state.cursor, SEQ_END, dest.maxUsers);
    if (entries.length === 0) return null;
    const first = entries[0]!;
    if (first.entry.r) {
      if (!mayWait) return null;
      // A snapshot was swapped in: the destination gets the whole new state, then what follows the marker.
      const next = { ...state, resync: { marker: first.seq, after: null } };
      store.env.transactionSync(() => writeState(store, this.id, next));
      return this.planResync(rule, next);
    }
    const marker = entries.findIndex((e) => e.entry.r);
    const upTo = marker < 0 ? entries : entries.slice(0, marker);
    const nowSec = Math.floor(Date.now() / 1000);
    const lines: Line[] = [];
    for (const { seq, entry } of upTo) {
      const l = lineOf(store, rule, seq, entry, nowSec);
      if (l) lines.push(l);
    }
    const n = fitting(dest, lines);
    const full = n < lines.length || upTo.length >= dest.maxUsers || marker >= 0;
    const waitMs = first.entry.at + dest.maxDelayMs - Date.now();
    if (!full && waitMs > 0) return waitMs;
    const last = n < lines.length ? lines[n]!.seq - 1 : upTo[upTo.length - 1]!.seq;
    return { after: state.cursor, last };
  }

  private planResync(rule: DestinationRule, state: DeliveryState): InFlight {
    const { marker, after } = state.resync!;
    const scan = this.resyncLines(rule, after, null, rule.dest.maxUsers);
    return { after: state.cursor, last: state.cursor, resync: { marker, from: after, to: scan.to, done: scan.done } };
  }

  /** Users after `from` (up to `to`, or up to `limit` lines) of the active generation, as full-state lines. */
  private resyncLines(
    rule: DestinationRule,
    from: string | null,
    to: string | null,
    limit: number,
  ): { lines: Line[]; to: string | null; done: boolean } {
    const { store } = this;
    const lines: Line[] = [];
    let last = from;
    let scanned = 0;
    let done = true;
    const nowSec = Math.floor(Date.now() / 1000);
    for (const { key, value } of store.members.getRange({ start: from ?? undefined, snapshot: false })) {
      const uid = key as string;
      if (uid === from) continue;
      if (to !== null && uid > to) break;
      if (to === null && (lines.length >= limit || scanned >= limit * RESYNC_SCAN_FACTOR)) {
        done = false;
        break;
      }
      scanned++;
      last = uid;
      const ids = decodeMembers(value as Buffer).members.map((m) => m.id);
      const line = lineOf(store, rule, 0, { u: uid, at: Date.now(), j: ids, l: [] }, nowSec);
      if (line && line.segments.some((s) => s.status === 1)) lines.push(line);
    }
    return { lines, to: last, done: to !== null ? false : done };
  }

  private batchOf(rule: DestinationRule, f: InFlight): { batch: Batch; entries: number } {
    const dest = rule.dest;
    if (f.resync) {
      const r = f.resync;
      const { lines } =
        f.resync.from === f.resync.to && r.done ? { lines: [] } : this.resyncLines(rule, r.from, r.to, 0);
      const key = `${dest.id}:r${r.marker}:${createHash('sha256')
        .update(r.from ?? '')
        .digest('hex')
        .slice(0, 16)}`;
      return { batch: encodeBatch(dest, key, lines, 0, { id: r.marker, done: r.done }), entries: 0 };
    }
    const entries = readRange(this.store, this.id, f.after, f.last);
    const nowSec = Math.floor(Date.now() / 1000);
    const lines: Line[] = [];
    for (const { seq, entry } of entries) {
      const l = lineOf(this.store, rule, seq, entry, nowSec);
      if (l) lines.push(l);
    }
    const key = `${dest.id}:${f.after + 1}-${f.last}`;
    return { batch: encodeBatch(dest, key, lines, entries.length - lines.length, null), entries: entries.length };
  }

  /** Sends the batch in flight until it is delivered (or settled otherwise), then advances the cursor. */
  private async deliver(first: DestinationRule, state: DeliveryState, f: InFlight): Promise<void> {
    const { sender } = this;
    let rule = first;
    let built = this.batchOf(rule, f);
    let builtFor = sender.registry.version;
    for (let attempt = 1; !this.signal.aborted; attempt++) {
      // The registry changed since the batch was built (a licence revoked, a segment taken off): what may go is checked again.
      if (sender.registry.version !== builtFor) {
        const now = sender.rules.of(this.id);
        if (!now) return;
        rule = now;
        built = this.batchOf(rule, f);
        builtFor = sender.registry.version;
      }
      const { batch, entries } = built;
      // Nothing left to send (dropped at send time, or a resync stretch of users the destination takes nothing of).
      if (batch.lines.length === 0 && !(f.resync?.done ?? false)) return this.advance(state, f, entries, [], '');
      const dest = rule.dest;
      // One request at a time, at most maxRps a second.
      const gap = this.lastRequestAt + 1000 / dest.maxRps - Date.now();
      if (gap > 0) await sleep(gap, undefined, { signal: this.signal }).catch(() => undefined);
      if (this.signal.aborted || !sender.rules.of(this.id)) return;
      if (sender.registry.version !== builtFor) continue;
      this.lastRequestAt = Date.now();
      const out = await postBatch(dest, batch.key, batch.body, this.signal);
      if (this.signal.aborted) return;
      switch (out.kind) {
        case 'delivered': {
          const failed = batch.lines.filter((l) => out.failed.has(l.id));
          return this.advance(
            state,
            f,
            entries,
            failed,
            `line refused in a ${out.status} answer`,
            batch.lines.length,
            rule,
          );
        }
        case 'refused':
          this.noteError(out.error);
          return this.advance(state, f, entries, batch.lines, out.error, batch.lines.length);
        case 'too-large': {
          this.noteError(`HTTP ${out.status}`);
          if (batch.lines.length > 1 && !f.resync) {
            // Halve the batch: the first half is the batch in flight now, under its own key.
            const half = batch.lines[Math.floor(batch.lines.length / 2)]!;
            const next = { ...state, inflight: { after: f.after, last: half.seq - 1 } };
            this.store.env.transactionSync(() => writeState(this.store, this.id, next));
            return;
          }
          return this.advance(state, f, entries, batch.lines, `HTTP ${out.status}`, batch.lines.length);
        }
        case 'retry': {
          this.unsaved.retried++;
          this.noteError(out.error);
          const wait = Math.min(
            out.afterMs ?? backoffMs(attempt, { baseMs: sender.opts.backoffBaseMs, maxMs: sender.opts.backoffMaxMs }),
            sender.opts.backoffMaxMs,
          );
          sender.log.warn({ destination: this.id, batch: batch.key, error: out.error, waitMs: wait }, 'outbound retry');
          // A receiver down for long: what queues up behind the batch stays bounded.
          this.maybeCompact(state);
          await sleep(wait, undefined, { signal: this.signal }).catch(() => undefined);
        }
      }
    }
  }

  private noteError(message: string): void {
    this.lastError = { at: Date.now(), message };
  }

  /**
   * In one transaction: the cursor past the batch, refused lines queued
   * again as the user's current state (or dead-lettered after maxAttempts),
   * the counts and the last error.
   */
  private advance(
    state: DeliveryState,
    f: InFlight,
    entries: number,
    refused: readonly Line[],
    why: string,
    sentLines = 0,
    rule?: DestinationRule,
  ): void {
    const { store, sender } = this;
    const next: DeliveryState = {
      ...state,
      inflight: null,
      sent: state.sent + this.unsaved.sent + sentLines - refused.length,
      failed: state.failed + this.unsaved.failed + refused.length,
      retried: state.retried + this.unsaved.retried,
      lastError: this.lastError ?? state.lastError,
    };
    if (f.resync) {
      next.resync = f.resync.done ? null : { marker: f.resync.marker, after: f.resync.to };
      if (f.resync.done) next.cursor = f.resync.marker;
    } else next.cursor = f.last;
    store.env.transactionSync(() => {
      const now = Date.now();
      // Delivered entries leave the outbox with the cursor move.
      const upTo = f.resync ? (f.resync.done ? f.resync.marker : 0) : f.last;
      if (upTo > 0)
        for (const key of store.outbox.getKeys({ start: [this.id, 0], end: [this.id, upTo + 1], snapshot: false }))
          store.outbox.removeSync(key);
      for (const l of refused) {
        const segs = l.segments.map((s) => s.id);
        if (l.attempts + 1 >= sender.opts.maxAttempts) {
          const dead: DeadLetter = {
            u: l.u,
            id: l.id,
            at: l.at,
            j: l.segments.filter((s) => s.status === 1).map((s) => s.id),
            l: l.segments.filter((s) => s.status === 0).map((s) => s.id),
            attempts: l.attempts + 1,
            error: why,
            deadAt: now,
          };
          store.outboundDead.putSync([this.id, l.seq || now], dead);
          next.dead++;
        } else sender.outbox.append(this.id, [sender.currentState(l.u, l.id, segs, l.at, l.attempts + 1)]);
      }
      // Under a backlog the next batch is due at once: its range commits with this cursor move (one commit a batch, not two).
      if (rule && !next.resync && !this.signal.aborted) {
        const upcoming = this.planNext(rule, next, false);
        if (upcoming !== null && typeof upcoming !== 'number') next.inflight = upcoming;
      }
      writeState(store, this.id, next);
    });
    this.unsaved = { sent: 0, failed: 0, retried: 0 };
    this.backlog = Math.max(0, this.backlog - entries);
    if (f.resync?.done) this.backlog = Math.max(0, this.backlog - 1);
  }
}
