// A destination's delivery state, in the `outbound` db: how far it has been
// delivered (the cursor only moves after a 2xx), the batch in flight (kept
// so a restart resends exactly that batch under the same Idempotency-Key),
// a resync under way, and its counts and last error (for `segd status`).
import type { Store } from '../store/env.js';

export interface InFlight {
  /** Outbox sequences of the batch: (after, last]. */
  after: number;
  last: number;
  /** A batch a 413 halved: its range went on to here, sent after this part (same slot, same users). */
  tail?: number;
  /** For a resync batch: the users (after, to] of the active generation, in key order. */
  resync?: { marker: number; from: string | null; to: string | null; done: boolean };
}

export interface DeliveryState {
  /** Every entry up to this sequence is delivered (or dropped by rule); past it, only undelivered ones are left. */
  cursor: number;
  /** The batches sent and not yet settled, in outbox order (at most the destination's concurrency, one in a resync). */
  inflight: InFlight[];
  /** A resync under way: its marker's sequence and the last user delivered. */
  resync: { marker: number; after: string | null } | null;
  sent: number;
  failed: number;
  retried: number;
  dead: number;
  lastError: { at: number; message: string } | null;
}

export const freshState = (): DeliveryState => ({
  cursor: 0,
  inflight: [],
  resync: null,
  sent: 0,
  failed: 0,
  retried: 0,
  dead: 0,
  lastError: null,
});

export function readState(store: Store, dest: string): DeliveryState {
  const s = { ...freshState(), ...((store.outbound.get(dest) as DeliveryState | undefined) ?? {}) };
  // Written by a sender that kept one batch in flight at most: null or that batch.
  const inflight = s.inflight as InFlight[] | InFlight | null;
  if (!Array.isArray(inflight)) s.inflight = inflight ? [inflight] : [];
  return s;
}

/** Inside a transaction: the state as it now stands. */
export function writeState(store: Store, dest: string, state: DeliveryState): void {
  store.outbound.putSync(dest, state);
}
