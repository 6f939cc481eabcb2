// The outbox: every membership change that concerns a destination, appended
// in the same LMDB transaction as the change itself (an observer of
// store/member-watch.ts), so a crash can neither lose one nor invent one.
//
// Keyed [destination id, sequence]: one global sequence, so each destination
// reads its own changes in commit order with one range read. An entry names
// the user (segd uid), when it was queued, the segments it joined and left
// (already cut to what the destination may receive), and, for a change
// queued again after a receiver refused it, how often it was tried.
//
// A snapshot's generation swap writes the inactive generation and flips it
// in one transaction: rather than diff every user in that transaction, the
// outbox takes a resync marker per destination, and the sender streams the
// destination the whole new state when it reaches the marker.
import { GENERATION_KEY, type Store } from '../store/env.js';
import { MemberWatch, type MemberObserver } from '../store/member-watch.js';
import { missingFrom, type DestinationRules } from './deltas.js';
import { destinationId } from './batcher.js';

export interface OutboxEntry {
  /** segd uid. */
  u: string;
  /** Unix ms it was queued. */
  at: number;
  /** Segments joined (status 1) and left (status 0). */
  j: number[];
  l: number[];
  /** Deliveries tried already (a line a receiver refused, queued again). */
  a?: number;
  /**
   * The destination's id for the user when the change was queued (destinations
   * whose idType is not the segd uid): a deletion unlinks those ids in the
   * transaction that queues its removal, and the removal must still reach them.
   */
  i?: string;
  /** A resync marker: the destination is sent its whole state (no u, j, l). */
  r?: 1;
}

export const OUTBOX_SEQ_KEY = 'outbox.seq';

/** The entry that makes the sender stream a destination its whole state (docs/outbound.md, "Resync"). */
export const resyncMarker = (): OutboxEntry => ({ u: '', at: Date.now(), j: [], l: [], r: 1 });

/** Whether `dest`'s last queued entry is a resync marker (a second one would only restate the same state). */
export function endsWithResync(store: Store, dest: string): boolean {
  for (const { value } of store.outbox.getRange({
    start: [dest, SEQ_END],
    end: [dest, 0],
    reverse: true,
    limit: 1,
    snapshot: false,
  }))
    return (value as OutboxEntry).r === 1;
  return false;
}
/** Past every sequence, as a range end. */
export const SEQ_END = Number.MAX_SAFE_INTEGER;

/** `dest`'s entries in (after, last], in order, at most `limit`. */
export function readRange(
  store: Store,
  dest: string,
  after: number,
  last: number,
  limit = Infinity,
): { seq: number; entry: OutboxEntry }[] {
  const out: { seq: number; entry: OutboxEntry }[] = [];
  for (const { key, value } of store.outbox.getRange({
    start: [dest, after + 1],
    end: [dest, last >= SEQ_END ? SEQ_END : last + 1],
    limit: Number.isFinite(limit) ? limit : undefined,
    snapshot: false,
  }))
    out.push({ seq: key[1], entry: value as OutboxEntry });
  return out;
}

export class OutboxWriter implements MemberObserver {
  private seq: number;
  private committedSeq: number;
  private readonly pending: [string, OutboxEntry][] = [];

  constructor(
    private readonly store: Store,
    private readonly rules: DestinationRules,
    /** After a commit that queued entries, with how many per destination. */
    private readonly onAppend: (counts: Map<string, number>) => void,
  ) {
    this.seq = this.committedSeq = (store.meta.get(OUTBOX_SEQ_KEY) as number | undefined) ?? 0;
    MemberWatch.of(store).add(this);
  }

  change(g: number, uid: string, before: Uint32Array, nb: number, after: Uint32Array, na: number): void {
    // Writes to the inactive generation are a snapshot loading: its flip queues a resync marker instead.
    if (g !== this.store.generation()) return;
    const rules = this.rules.active();
    if (rules.length === 0) return;
    const at = Date.now();
    for (const rule of rules) {
      const j = missingFrom(after, na, before, nb, rule.allows);
      const l = missingFrom(before, nb, after, na, rule.allows);
      if (j.length === 0 && l.length === 0) continue;
      const entry: OutboxEntry = { u: uid, at, j, l };
      if (rule.dest.idType !== 'uid') {
        const id = destinationId(this.store, rule.dest, uid);
        if (id !== null) entry.i = id;
      }
      this.pending.push([rule.dest.id, entry]);
    }
  }

  clear(): void {}

  beforeCommit(): void {
    const rules = this.rules.active();
    if (rules.length > 0) {
      // The generation this transaction commits differs from the one readers use: it flips a snapshot in.
      const g = ((this.store.meta.get(GENERATION_KEY) as number | undefined) ?? 0) & 1;
      if (g !== this.store.generation()) for (const rule of rules) this.pending.push([rule.dest.id, resyncMarker()]);
    }
    if (this.pending.length === 0) return;
    for (const [dest, entry] of this.pending) this.store.outbox.putSync([dest, ++this.seq], entry);
    this.store.meta.putSync(OUTBOX_SEQ_KEY, this.seq);
  }

  committed(): void {
    this.committedSeq = this.seq;
    if (this.pending.length === 0) return;
    const counts = new Map<string, number>();
    for (const [dest] of this.pending) counts.set(dest, (counts.get(dest) ?? 0) + 1);
    this.pending.length = 0;
    this.onAppend(counts);
  }

  rolledBack(): void {
    this.seq = this.committedSeq;
    this.pending.length = 0;
  }

  /**
   * Inside a transaction the caller runs: appends entries for `dest` (a
   * refused line queued again, dead letters replayed); they commit with it.
   */
  append(dest: string, entries: readonly OutboxEntry[]): void {
    for (const entry of entries) this.pending.push([dest, entry]);
  }
}
