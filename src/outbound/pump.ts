// One destination's delivery loop. It cuts the destination's outbox into
// batches of consecutive entries, sends up to `concurrency` of them at once,
// and moves the cursor past a batch only once it and every batch before it
// were answered 2xx. Two batches in flight never hold the same user: a batch
// ends before the first change of a user still in flight, so each user's
// changes arrive in the order they were made, whatever the concurrency.
//
// The batches in flight are recorded (outbox ranges) before they are sent, so
// a restart sends exactly those batches again, under the same keys.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store } from '../store/env.js';
import { decodeMembers } from '../store/members.js';
import type { DestinationRule } from './deltas.js';
import { SEQ_END, readRange } from './outbox.js';
import { readState, writeState, type DeliveryState, type InFlight } from './cursor.js';
import { fitting, lineOf, type Batch, type Line } from './batcher.js';
import { adapterOf } from './adapter.js';
import { backoffMs } from './backoff.js';
import { compactOutbox } from './compaction.js';
import type { DeadLetter, OutboundSender } from './sender.js';

/** Users scanned per resync batch at most, per user sent (most users may hold nothing the destination takes). */
const RESYNC_SCAN_FACTOR = 20;

export function backlogOf(store: Store, dest: string, cursor: number): number {
  return store.outbox.getCount({ start: [dest, cursor + 1], end: [dest, SEQ_END] });
}

/** The outbox end of a batch in flight: its own, or that of the range a 413 left to follow it. */
const endOf = (f: InFlight) => f.tail ?? f.last;

export class Pump {
  backlog: number;
  /** Counts since the last state write (persisted with the next one). */
  unsaved = { sent: 0, failed: 0, retried: 0 };
  lastError: { at: number; message: string } | null = null;
  done: Promise<void> = Promise.resolve();
  /** The destination's delivery state as last written (the pump is its only writer while it runs). */
  private state: DeliveryState;
  /** Where the next batch starts: past every range planned. */
  private planned: number;
  /** Users of the batches in flight, with how many batches hold each. */
  private readonly busy = new Map<string, number>();
  /** The users of a batch just planned (read while planning it: claiming it reads nothing again). */
  private readonly plannedUsers = new WeakMap<InFlight, string[]>();
  private readonly slots = new Set<Promise<void>>();
  private waker: (() => void) | null = null;
  /** When the next request may leave (maxRps across the slots). */
  private nextRequestAt = 0;
  private compactAt = 0;
  private readonly store: Store;

  constructor(
    private readonly sender: OutboundSender,
    private readonly id: string,
    private readonly signal: AbortSignal,
  ) {
    this.store = sender.store;
    this.state = readState(this.store, id);
    this.planned = Math.max(this.state.cursor, ...this.state.inflight.map(endOf));
    this.backlog = backlogOf(this.store, id, this.state.cursor);
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

  private write(state: DeliveryState): void {
    this.state = state;
    writeState(this.store, this.id, state);
  }

  private async loop(): Promise<void> {
    const { sender } = this;
    // The batches in flight when it last stopped go again first, under their keys.
    for (const f of this.state.inflight) this.launch(f);
    while (!this.signal.aborted) {
      const rule = sender.rules.of(this.id);
      if (!rule) break;
      this.maybeCompact();
      await this.idle(this.fill(rule));
    }
    // Disabled or stopped: the requests in flight end (a batch not delivered stays recorded, to go at the next start).
    while (this.slots.size > 0) await Promise.all([...this.slots]);
  }

  /** Plans and launches batches while a slot is free; returns how long to wait for the next one (null: until woken). */
  private fill(rule: DestinationRule): number | null {
    const { store } = this;
    for (;;) {
      const exclusive = this.state.resync !== null || this.state.inflight.some((f) => f.resync);
      if (this.slots.size >= (exclusive ? 1 : rule.dest.concurrency)) return null;
      // Planned only once it may go (maxRps, minIntervalMs): what is queued meanwhile joins it.
      const early = this.nextRequestAt - Date.now();
      if (early > 0) return early;
      const next = this.planNext(rule, this.slots.size === 0);
      if (next === null || typeof next === 'number') return next;
      store.env.transactionSync(() => this.write({ ...this.state, inflight: [...this.state.inflight, next] }));
      this.launch(next);
    }
  }

  private launch(f: InFlight): void {
    // Claimed now, before anything else is planned.
    const slot: Slot = { users: this.claim(f) };
    const run = this.deliverFrom(f, slot).finally(() => {
      this.release(slot);
      this.slots.delete(run);
      this.wake();
    });
    this.slots.add(run);
  }

  /** One slot: a batch, then what follows it in the same slot (the rest of a halved batch, or the batch planned with its cursor move). */
  private async deliverFrom(first: InFlight, slot: Slot): Promise<void> {
    let f: InFlight | null = first;
    while (f !== null && !this.signal.aborted) f = await this.deliver(f, slot);
  }

  /** The users of `f`'s whole range, marked in flight. */
  private claim(f: InFlight): string[] {
    if (f.resync) return [];
    const users = this.plannedUsers.get(f) ?? [
      ...new Set(readRange(this.store, this.id, f.after, endOf(f)).map((e) => e.entry.u)),
    ];
    for (const u of users) this.busy.set(u, (this.busy.get(u) ?? 0) + 1);
    return users;
  }

  private release(slot: Slot): void {
    for (const u of slot.users) {
      const n = (this.busy.get(u) ?? 1) - 1;
      if (n > 0) this.busy.set(u, n);
      else this.busy.delete(u);
    }
    slot.users = [];
  }

  /** Past the backlog bound: the changes not yet in a batch are compacted to the latest state per user. */
  private maybeCompact(): void {
    const { store, sender } = this;
    if (this.backlog <= Math.max(sender.opts.maxBacklog, this.compactAt)) return;
    const r = store.env.transactionSync(() => compactOutbox(store, this.id, this.planned));
    this.backlog = backlogOf(store, this.id, this.state.cursor);
    // Still past the bound (that many distinct users): compact again once it has grown by half again.
    this.compactAt = Math.max(sender.opts.maxBacklog, Math.ceil(this.backlog * 1.5));
    sender.log.warn({ destination: this.id, before: r.before, after: r.after }, 'outbound backlog compacted');
  }

  /**
   * The next batch's range, or how long to wait for one (null: until
   * something is queued or a batch in flight ends). `alone`: nothing is in
   * flight, so a resync may start (it writes its own state).
   */
  private planNext(rule: DestinationRule, alone: boolean): InFlight | number | null {
    const { store } = this;
    const dest = rule.dest;
    const state = this.state;
    if (state.resync) return alone ? this.planResync(rule, state) : null;
    const entries = readRange(store, this.id, this.planned, SEQ_END, dest.maxUsers);
    if (entries.length === 0) return null;
    const first = entries[0]!;
    if (first.entry.r) {
      if (!alone) return null;
      // A resync: the destination gets the whole current state, then what follows the marker.
      const next = { ...state, resync: { marker: first.seq, after: null } };
      store.env.transactionSync(() => this.write(next));
      return this.planResync(rule, next);
    }
    // A batch ends before a resync marker, and before the first change of a user in flight in another batch.
    let end = entries.findIndex((e) => e.entry.r || this.busy.has(e.entry.u));
    if (end === 0) return null;
    const cut = end > 0;
    if (end < 0) end = entries.length;
    const upTo = entries.slice(0, end);
    const nowSec = Math.floor(Date.now() / 1000);
    const lines: Line[] = [];
    for (const { seq, entry } of upTo) {
      const l = lineOf(store, rule, seq, entry, nowSec);
      if (l) lines.push(l);
    }
    const n = fitting(dest, lines);
    const full = n < lines.length || upTo.length >= dest.maxUsers || cut;
    const waitMs = first.entry.at + dest.maxDelayMs - Date.now();
    if (!full && waitMs > 0) return waitMs;
    const last = n < lines.length ? lines[n]!.seq - 1 : upTo[upTo.length - 1]!.seq;
    const f = { after: this.planned, last };
    const users = new Set<string>();
    for (const e of upTo) if (e.seq <= last) users.add(e.entry.u);
    this.plannedUsers.set(f, [...users]);
    this.planned = last;
    return f;
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
    const adapter = adapterOf(dest);
    if (f.resync) {
      const r = f.resync;
      const { lines } =
        f.resync.from === f.resync.to && r.done ? { lines: [] } : this.resyncLines(rule, r.from, r.to, 0);
      const key = `${dest.id}:r${r.marker}:${createHash('sha256')
        .update(r.from ?? '')
        .digest('hex')
        .slice(0, 16)}`;
      return { batch: adapter.encode(dest, key, lines, 0, { id: r.marker, done: r.done }), entries: 0 };
    }
    const entries = readRange(this.store, this.id, f.after, f.last);
    const nowSec = Math.floor(Date.now() / 1000);
    const lines: Line[] = [];
    for (const { seq, entry } of entries) {
      const l = lineOf(this.store, rule, seq, entry, nowSec);
      if (l) lines.push(l);
    }
    const key = `${dest.id}:${f.after + 1}-${f.last}`;
    return { batch: adapter.encode(dest, key, lines, entries.length - lines.length, null), entries: entries.length };
  }

  /**
   * Sends the batch in flight until it is delivered (or settled otherwise)
   * and advances the cursor; returns what this slot sends next, if anything.
   */
  private async deliver(f: InFlight, slot: Slot): Promise<InFlight | null> {
    const { sender } = this;
    let rule = sender.rules.of(this.id);
    if (!rule) return null;
    let built = this.batchOf(rule, f);
    let builtFor = sender.registry.version;
    for (let attempt = 1; !this.signal.aborted; attempt++) {
      // The registry changed since the batch was built (a licence revoked, a segment taken off): what may go is checked again.
      if (sender.registry.version !== builtFor) {
        const now = sender.rules.of(this.id);
        if (!now) return null;
        rule = now;
        built = this.batchOf(rule, f);
        builtFor = sender.registry.version;
      }
      const { batch, entries } = built;
      // Nothing left to send (dropped at send time, or a resync stretch of users the destination takes nothing of).
      if (batch.lines.length === 0 && !(f.resync?.done ?? false))
        return this.advance(f, slot, entries, [], '', 0, rule);
      const dest = rule.dest;
      // At most maxRps requests a second, across the slots, and minIntervalMs apart.
      const now = Date.now();
      const at = Math.max(now, this.nextRequestAt);
      this.nextRequestAt = at + Math.max(1000 / dest.maxRps, dest.minIntervalMs);
      if (at > now) await sleep(at - now, undefined, { signal: this.signal }).catch(() => undefined);
      if (this.signal.aborted || !sender.rules.of(this.id)) return null;
      if (sender.registry.version !== builtFor) continue;
      const out = await adapterOf(dest).send(dest, batch, this.signal);
      if (this.signal.aborted) return null;
      switch (out.kind) {
        case 'delivered': {
          const failed = batch.lines.filter((l) => out.failed.has(l.id));
          return this.advance(
            f,
            slot,
            entries,
            failed,
            `line refused in a ${out.status} answer`,
            batch.lines.length,
            rule,
          );
        }
        case 'refused':
          this.noteError(out.error);
          return this.advance(f, slot, entries, batch.lines, out.error, batch.lines.length, rule);
        case 'too-large': {
          this.noteError(`HTTP ${out.status}`);
          if (batch.lines.length > 1 && !f.resync) {
            // Halve the batch: the first half goes now under its own key, the rest after it in this slot (same users).
            const half = batch.lines[Math.floor(batch.lines.length / 2)]!;
            const part: InFlight = { after: f.after, last: half.seq - 1, tail: endOf(f) };
            this.store.env.transactionSync(() => this.write(this.replaced(f, [part])));
            return part;
          }
          return this.advance(f, slot, entries, batch.lines, `HTTP ${out.status}`, batch.lines.length, rule);
        }
        case 'retry': {
          this.unsaved.retried++;
          this.noteError(out.error);
          const wait = Math.min(
            out.afterMs ?? backoffMs(attempt, { baseMs: sender.opts.backoffBaseMs, maxMs: sender.opts.backoffMaxMs }),
            sender.opts.backoffMaxMs,
          );
          sender.log.warn({ destination: this.id, batch: batch.key, error: out.error, waitMs: wait }, 'outbound retry');
          // A receiver down for long: what queues up behind the batches in flight stays bounded.
          this.maybeCompact();
          await sleep(wait, undefined, { signal: this.signal }).catch(() => undefined);
        }
      }
    }
    return null;
  }

  private noteError(message: string): void {
    this.lastError = { at: Date.now(), message };
  }

  /** The state with `f` in flight replaced by `by` (in its place: the list stays in outbox order). */
  private replaced(f: InFlight, by: InFlight[]): DeliveryState {
    const inflight = this.state.inflight.flatMap((x) => (sameRange(x, f) ? by : [x]));
    return { ...this.state, inflight };
  }

  /**
   * In one transaction: `f`'s entries out of the outbox, the cursor past
   * every batch delivered before the first still in flight, refused lines
   * queued again as the user's current state (or dead-lettered after
   * maxAttempts), the counts and the last error — and, under a backlog, the
   * slot's next batch planned (one commit a batch, not two).
   */
  private advance(
    f: InFlight,
    slot: Slot,
    entries: number,
    refused: readonly Line[],
    why: string,
    sentLines: number,
    rule: DestinationRule,
  ): InFlight | null {
    const { store, sender } = this;
    // Gone meanwhile: its state went with it, and is not written back.
    if (!sender.registry.destination(this.id)) return null;
    const rest: InFlight[] = f.tail !== undefined && !f.resync ? [{ after: f.last, last: f.tail }] : [];
    let follow: InFlight | null = rest[0] ?? null;
    store.env.transactionSync(() => {
      const now = Date.now();
      const next = this.replaced(f, rest);
      next.sent += this.unsaved.sent + sentLines - refused.length;
      next.failed += this.unsaved.failed + refused.length;
      next.retried += this.unsaved.retried;
      next.lastError = this.lastError ?? next.lastError;
      // Delivered entries leave the outbox: past the cursor, only those of batches in flight remain.
      let from = f.after;
      let upTo = f.last;
      if (f.resync) {
        next.resync = f.resync.done ? null : { marker: f.resync.marker, after: f.resync.to };
        from = next.cursor;
        upTo = f.resync.done ? f.resync.marker : 0;
        if (f.resync.done) this.planned = Math.max(this.planned, f.resync.marker);
      }
      if (upTo > 0)
        for (const key of store.outbox.getKeys({
          start: [this.id, from + 1],
          end: [this.id, upTo + 1],
          snapshot: false,
        }))
          store.outbox.removeSync(key);
      next.cursor = next.inflight.length > 0 ? Math.min(...next.inflight.map((x) => x.after)) : this.planned;
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
      // Under a backlog the slot's next batch is due at once: its range commits with this cursor move.
      if (follow === null && !next.resync && !f.resync && !this.signal.aborted && this.nextRequestAt <= now) {
        this.state = next;
        this.release(slot);
        const upcoming = this.planNext(rule, false);
        if (upcoming !== null && typeof upcoming !== 'number') {
          next.inflight = [...next.inflight, upcoming];
          slot.users = this.claim(upcoming);
          follow = upcoming;
        }
      }
      this.write(next);
    });
    this.unsaved = { sent: 0, failed: 0, retried: 0 };
    this.backlog = Math.max(0, this.backlog - entries);
    if (f.resync?.done) this.backlog = Math.max(0, this.backlog - 1);
    return follow;
  }
}

/** A slot's claim: the users of the batch it sends. */
interface Slot {
  users: string[];
}

const sameRange = (a: InFlight, b: InFlight) =>
  a.after === b.after && a.last === b.last && a.tail === b.tail && !a.resync === !b.resync;
