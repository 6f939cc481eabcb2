// A destination's delivery as operators see it: in GET /v1/admin/destinations,
// /metrics (from the running sender) and `segd status` (from the store alone).
import type { Store } from '../store/env.js';
import { readState, type DeliveryState } from './cursor.js';
import { SEQ_END, type OutboxEntry } from './outbox.js';

export interface DestinationStatus {
  id: string;
  /** A sender is delivering it now (false: disabled, its partner disabled, or the server not running). */
  running: boolean;
  cursor: number;
  /** Changes queued and not yet delivered. */
  backlog: number;
  /** Age of the oldest undelivered change; 0 when none. */
  lagSeconds: number;
  /** Lines delivered, refused by the receiver, requests retried, lines dead-lettered (since the destination was made). */
  sent: number;
  failed: number;
  retried: number;
  dead: number;
  /** Dead letters held now (replay moves them back). */
  deadLetters: number;
  lastError: DeliveryState['lastError'];
  resync: DeliveryState['resync'];
}

export function lagSeconds(store: Store, dest: string, cursor: number): number {
  for (const { value } of store.outbox.getRange({
    start: [dest, cursor + 1],
    end: [dest, SEQ_END],
    limit: 1,
    snapshot: false,
  }))
    return Math.max(0, (Date.now() - (value as OutboxEntry).at) / 1000);
  return 0;
}

export function deadLetterCount(store: Store, dest: string): number {
  return store.outboundDead.getCount({ start: [dest, 0], end: [dest, SEQ_END] });
}

/** Every stored destination's delivery, read from the store (beside a running server or without one). */
export function storedStatus(store: Store): DestinationStatus[] {
  const out: DestinationStatus[] = [];
  for (const { key } of store.destinations.getRange({ snapshot: false })) {
    const id = key as string;
    const s = readState(store, id);
    out.push({
      id,
      running: false,
      cursor: s.cursor,
      backlog: store.outbox.getCount({ start: [id, s.cursor + 1], end: [id, SEQ_END] }),
      lagSeconds: lagSeconds(store, id, s.cursor),
      sent: s.sent,
      failed: s.failed,
      retried: s.retried,
      dead: s.dead,
      deadLetters: deadLetterCount(store, id),
      lastError: s.lastError,
      resync: s.resync,
    });
  }
  return out;
}
