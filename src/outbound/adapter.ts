// What the sender asks of a destination's type: how a batch of lines becomes
// a request (or a file), and what sending it came to. The sender (pump.ts)
// batches, orders, retries and moves the cursor; an adapter only encodes and
// sends.
import type { Destination } from '../partners/types.js';
import type { Batch, Line } from './batcher.js';
import { webhook } from './webhook.js';
import { ttd } from './ttd.js';
import { file } from './file.js';

export type Outcome =
  /** Taken, except the lines the receiver named as failed (by the id sent). */
  | { kind: 'delivered'; status: number; failed: Set<string> }
  /** Try the same batch again later (429, 5xx, 408, timeout, connection lost); `afterMs` from Retry-After. */
  | { kind: 'retry'; status: number; afterMs: number | null; error: string }
  /** 413: the batch is too large for the receiver. */
  | { kind: 'too-large'; status: number }
  /** Any other answer: the receiver refuses these lines. */
  | { kind: 'refused'; status: number; error: string };

export interface Adapter {
  /** The batch `lines` make under `key` (`resync`: a resync batch, see docs/outbound.md). */
  encode(
    dest: Destination,
    key: string,
    lines: Line[],
    dropped: number,
    resync: { id: number; done: boolean } | null,
  ): Batch;
  /** Sends it once; `signal` cuts it short when the sender stops. */
  send(dest: Destination, batch: Batch, signal: AbortSignal): Promise<Outcome>;
}

const adapters: Record<Destination['type'], Adapter> = { webhook, ttd, file };

export function adapterOf(dest: Destination): Adapter {
  return adapters[dest.type];
}
