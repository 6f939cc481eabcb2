// The audit log of privacy actions (`audit` db, append-only, keyed by
// sequence). Ids are kept only as digests: the log proves what was done
// without holding the ids it was done to.
import { createHash } from 'node:crypto';
import type { Store } from '../store/env.js';

/** One entry of the audit log (`audit` db, append-only, keyed by sequence). Ids are kept only as digests. */
export interface AuditEntry {
  seq: number;
  /** Unix milliseconds. */
  at: number;
  action: 'optout' | 'delete';
  /** What the request named: the key's kind and source, and a SHA-256 prefix of the full key. */
  requested: { kind: string; digest: string };
  /** Whether the key resolved to a stored profile. */
  found: boolean;
  /** SHA-256 prefix of the profile's segd uid (when found). */
  uidDigest: string | null;
  /** Linked ids removed (partner ids, device ids, merged uids). */
  ids: number;
  /** Whether memberships were removed. */
  memberships: boolean;
  /** When the tombstone lapses (unix s; 0 = never). */
  until: number;
  /** Who asked: an admin key digest, or "cookie" for a browser opt-out. */
  by: string;
}

const AUDIT_SEQ = 'auditSeq';

/** A SHA-256 prefix: enough to match a later request for the same id, not enough to recover it. */
export const digest = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

/** Inside a transaction: appends `entry` under the next sequence number, which it returns. */
export function appendAudit(store: Store, entry: Omit<AuditEntry, 'seq'>): number {
  const seq = ((store.meta.get(AUDIT_SEQ) as number | undefined) ?? 0) + 1;
  store.meta.putSync(AUDIT_SEQ, seq);
  store.audit.putSync(seq, { seq, ...entry } satisfies AuditEntry);
  return seq;
}
