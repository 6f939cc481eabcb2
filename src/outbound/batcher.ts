// Turns a destination's outbox entries into one request body, re-checking
// at send time what may go: segments the destination may no longer receive
// (licence revoked, segment taken off its list) are dropped, a user opted out
// or deleted since is sent as a removal only, and a user without the id the
// destination wants is skipped (counted). The body is documented in
// docs/outbound.md.
import type { Store } from '../store/env.js';
import { idKey } from '../identity/graph-keys.js';
import { linksOf } from '../identity/links.js';
import { isActive, type Suppression } from '../privacy/suppressions.js';
import type { Destination } from '../partners/types.js';
import type { DestinationRule } from './deltas.js';
import type { OutboxEntry } from './outbox.js';

export interface Line {
  /** The id sent for the user (see idType). */
  id: string;
  /** segd uid. */
  u: string;
  /** Outbox sequence of the change (0 in a resync). */
  seq: number;
  segments: { id: number; status: 0 | 1 }[];
  /** Deliveries tried before this one. */
  attempts: number;
  at: number;
  /** The line's JSON in the body, made once. */
  json?: string;
}

export interface Batch {
  /** The Idempotency-Key: the same for every delivery of this batch, across restarts. */
  key: string;
  lines: Line[];
  body: Buffer;
  /** Entries dropped by the send-time checks (nothing left to send, or no id for the user). */
  dropped: number;
}

/** The id `dest` receives for `uid`, or null when the user has none of that kind. */
export function destinationId(store: Store, dest: Destination, uid: string): string | null {
  if (dest.idType === 'uid') return uid;
  const prefix =
    dest.idType === 'partner'
      ? idKey('p', dest.partner, '')
      : dest.idType === 'ifa'
        ? idKey('ifa', '', '')
        : idKey('eid', dest.idType.slice(4), '');
  for (const k of linksOf(store.links, uid)) if (k.startsWith(prefix)) return k.slice(prefix.length);
  return null;
}

export function isSuppressed(store: Store, uid: string, nowSec: number): boolean {
  return isActive(store.optout.get(uid) as Suppression | undefined, nowSec);
}

/** A line for one entry as it may be sent now, or null when nothing of it may. */
export function lineOf(store: Store, rule: DestinationRule, seq: number, e: OutboxEntry, nowSec: number): Line | null {
  const optedOut = isSuppressed(store, e.u, nowSec);
  const segments: Line['segments'] = [];
  for (const s of e.j) if (rule.allows(s)) segments.push({ id: s, status: optedOut ? 0 : 1 });
  for (const s of e.l) if (rule.allows(s)) segments.push({ id: s, status: 0 });
  if (segments.length === 0) return null;
  segments.sort((a, b) => a.id - b.id);
  // The id as linked now; after a deletion unlinked it, the one recorded when the change was queued.
  const id = destinationId(store, rule.dest, e.u) ?? e.i ?? null;
  if (id === null) return null;
  return { id, u: e.u, seq, segments, attempts: e.a ?? 0, at: e.at };
}

/** Bytes of the body around the users (kept generous: the envelope's fields are short). */
const ENVELOPE_BYTES = 256;

/** A user line's JSON, as the webhook body and the file adapter write it (made once per line). */
export const lineJson = (l: Line) =>
  (l.json ??= JSON.stringify({ id: l.id, seq: l.seq, at: l.at, segments: l.segments }));

/**
 * Lines up to the destination's maxUsers and maxBytes. Returns how many of
 * `lines` fit (at least one, so a single oversized line still goes, and a 413
 * dead-letters it).
 */
export function fitting(dest: Destination, lines: readonly Line[]): number {
  let bytes = ENVELOPE_BYTES;
  let n = 0;
  for (const l of lines) {
    if (n >= dest.maxUsers) break;
    bytes += lineJson(l).length + 1;
    if (n > 0 && bytes > dest.maxBytes) break;
    n++;
  }
  return n;
}

export function encodeBatch(
  dest: Destination,
  key: string,
  lines: Line[],
  dropped: number,
  resync: { id: number; done: boolean } | null,
): Batch {
  const users = lines.map(lineJson).join(',');
  const head = JSON.stringify({ version: 1, destination: dest.id, batch: key, resync });
  // The users array last, built from the lines' own JSON (no second walk of the objects).
  const body = Buffer.from(`${head.slice(0, -1)},"users":[${users}]}`);
  return { key, lines, body, dropped };
}
