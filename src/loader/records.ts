// Feed records: one JSON object per line.
//   {"op":"add","uid":"U","segments":[12,{"id":57,"ttl":86400}],"ts":1763900000}
// Parsing validates everything the writer relies on, so a bad record is
// rejected here with a reason and never reaches a transaction.
import { isUtf8 } from 'node:buffer';
import { checkUid } from '../identity/uid.js';
import { MAX_SEGMENT_ID } from '../store/members.js';
import type { Store } from '../store/env.js';
import { encodeGraphKey, type GraphKey } from '../identity/graph-keys.js';
import { preview } from './preview.js';

export const OPS = ['add', 'remove', 'replace', 'delete', 'match'] as const;
export type Op = (typeof OPS)[number];

export interface Change {
  op: Op;
  uid: string;
  /** Segment ids, as given (the writer sorts and de-duplicates). */
  ids: number[];
  /** Per id: TTL in seconds, 0 = none. Same length as ids. */
  ttls: number[];
  /** Unix seconds the change happened upstream. */
  ts: number;
  /** `match` only: the id key (identity/keys.ts) that now belongs to `uid`. */
  key?: string;
  /**
   * `add` only: when the user already holds every id with an expiry this
   * change would move out by less than this many seconds (and nothing else
   * would change), nothing is written (member-set.ts `sameWithin`).
   */
  refresh?: number;
}

const MAX_SEGMENTS_PER_RECORD = 10_000;
/** Ten years: longer TTLs are a units mistake (ms for s), not a policy. */
const MAX_TTL_SECONDS = 10 * 365 * 86_400;

/** How far ahead of this node's clock a change's ts may be (clock skew upstream). */
const MAX_FUTURE_SKEW = 86_400;

class RecordError extends Error {}

/**
 * What a record is checked against: the longest user key, and, when unknown
 * segment ids are refused (SEGD_UNKNOWN_SEGMENTS=reject), the taxonomy. A
 * plain number is the key limit alone.
 */
export type RecordLimits = number | { maxUidBytes: number; knownSegment: (id: number) => boolean };

/**
 * What a record must satisfy under this config: with
 * SEGD_UNKNOWN_SEGMENTS=reject, segment ids must be in `known` (the
 * taxonomy's ids; the caller keeps the set current). Used by the server's
 * sources and by `segd import`, so both accept the same records.
 */
/** Fills `into` with the taxonomy's segment ids. */
export function taxonomyIds(store: Store, into: Set<number>): Set<number> {
  into.clear();
  for (const id of store.segments.getKeys({ snapshot: false })) into.add(id as number);
  return into;
}

export function recordLimits(
  maxUidBytes: number,
  unknownSegments: 'accept' | 'reject',
  known: ReadonlySet<number>,
): RecordLimits {
  return unknownSegments === 'reject' ? { maxUidBytes, knownSegment: (id) => known.has(id) } : maxUidBytes;
}

const isU32 = (n: unknown): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_SEGMENT_ID;

/** Validates a decoded record (from JSON or msgpack). Throws RecordError with the reason. */
export function toChange(rec: unknown, nowSec: number, limits: RecordLimits): Change {
  const maxUidBytes = typeof limits === 'number' ? limits : limits.maxUidBytes;
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec))
    throw new RecordError('record must be a JSON object');
  const r = rec as Record<string, unknown>;
  const op = r.op;
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
    throw new RecordError(`"op" must be one of ${OPS.join(', ')}; got ${short(op)}`);
  }
  const uidProblem = checkUid(r.uid, maxUidBytes);
  if (uidProblem === 'UID_MISSING') throw new RecordError('"uid" is missing or empty');
  if (typeof r.uid !== 'string') throw new RecordError(`"uid" must be a string; got ${short(r.uid)}`);
  if (uidProblem) throw new RecordError(`"uid" must be at most ${maxUidBytes} UTF-8 bytes with no control characters`);

  let ts = nowSec;
  if (op === 'match') return toMatch(r, r.uid as string, nowSec, maxUidBytes);
  if (r.ts !== undefined) {
    if (typeof r.ts !== 'number' || !Number.isInteger(r.ts) || r.ts <= 0 || r.ts > 0xffff_ffff) {
      throw new RecordError(`"ts" must be unix seconds (a positive integer); got ${short(r.ts)}`);
    }
    if (r.ts > nowSec + MAX_FUTURE_SKEW) {
      // One far-future ts would pin the user: every later change would be "stale".
      throw new RecordError(`"ts" is more than ${MAX_FUTURE_SKEW} s in the future`);
    }
    ts = r.ts;
  }

  const ids: number[] = [];
  const ttls: number[] = [];
  const segs = r.segments;
  if (op === 'delete') {
    if (segs !== undefined && !Array.isArray(segs)) throw new RecordError('"segments" must be an array');
  } else {
    if (!Array.isArray(segs)) throw new RecordError(`"segments" must be an array for op "${op}"`);
    if (segs.length > MAX_SEGMENTS_PER_RECORD)
      throw new RecordError(`more than ${MAX_SEGMENTS_PER_RECORD} segments in one record`);
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      if (isU32(s)) {
        ids.push(s);
        ttls.push(0);
      } else if (s !== null && typeof s === 'object' && !Array.isArray(s)) {
        const o = s as Record<string, unknown>;
        if (!isU32(o.id))
          throw new RecordError(`segments[${i}].id must be an integer 0..${MAX_SEGMENT_ID}; got ${short(o.id)}`);
        let ttl = 0;
        if (o.ttl !== undefined) {
          if (typeof o.ttl !== 'number' || !Number.isInteger(o.ttl) || o.ttl <= 0 || o.ttl > MAX_TTL_SECONDS) {
            throw new RecordError(
              `segments[${i}].ttl must be whole seconds 1..${MAX_TTL_SECONDS}; got ${short(o.ttl)}`,
            );
          }
          ttl = o.ttl;
        }
        if (ts + ttl > 0xffff_ffff) throw new RecordError(`segments[${i}]: ts + ttl is past the year 2106`);
        ids.push(o.id);
        ttls.push(ttl);
      } else {
        throw new RecordError(
          `segments[${i}] must be an integer 0..${MAX_SEGMENT_ID} or {"id":…,"ttl":…}; got ${short(s)}`,
        );
      }
    }
  }
  // Refusing unknown ids is for what is added; removing one is harmless.
  if (typeof limits !== 'number' && (op === 'add' || op === 'replace')) {
    const unknown = ids.filter((id) => !limits.knownSegment(id));
    if (unknown.length)
      throw new RecordError(
        `segment${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 5).join(', ')} not in the taxonomy (SEGD_UNKNOWN_SEGMENTS=reject)`,
      );
  }
  return { op: op as Op, uid: r.uid as string, ids, ttls, ts };
}

function parseLine(line: string, nowSec: number, maxUidBytes: RecordLimits): Change {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch (err) {
    throw new RecordError(`malformed JSON (${(err as Error).message})`);
  }
  return toChange(rec, nowSec, maxUidBytes);
}

/**
 * One feed line given as bytes (files and HTTP push share this): the change,
 * or the reason it was rejected.
 */
export function parseLineBytes(line: Uint8Array, nowSec: number, maxUidBytes: RecordLimits): Change | string {
  if (!isUtf8(line)) return 'invalid UTF-8';
  try {
    return parseLine(Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString('utf8'), nowSec, maxUidBytes);
  } catch (err) {
    return rejectReason(err);
  }
}

/**
 * One CSV line, `uid,seg|seg:ttl|…` (RFC 4180 quoting for the uid: `"a,b"`,
 * `""` for a quote), applied as an `add` stamped with the apply time. A BOM at
 * the start of the file and a header line `uid,segments` are skipped by the
 * caller via `isCsvHeader`.
 */
export function parseCsvLine(line: Uint8Array, nowSec: number, maxUidBytes: RecordLimits): Change | string {
  if (!isUtf8(line)) return 'invalid UTF-8';
  let text = Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let uid: string;
  let rest: string;
  if (text.startsWith('"')) {
    let i = 1;
    uid = '';
    for (;;) {
      const q = text.indexOf('"', i);
      if (q === -1) return 'unterminated quoted uid';
      uid += text.slice(i, q);
      if (text[q + 1] === '"') {
        uid += '"';
        i = q + 2;
        continue;
      }
      if (text[q + 1] !== ',') return 'expected "," after the quoted uid';
      rest = text.slice(q + 2);
      break;
    }
  } else {
    const comma = text.indexOf(',');
    if (comma === -1) return 'expected uid,segments';
    uid = text.slice(0, comma);
    rest = text.slice(comma + 1);
  }
  if (rest.includes(',')) return 'expected two fields: uid,seg|seg|…';
  if (rest.trim() === '') return 'no segments';
  const segments: Array<number | { id: number; ttl: number }> = [];
  for (const part of rest.split('|')) {
    const m = /^\s*(\d{1,10})(?::(\d{1,10}))?\s*$/.exec(part);
    if (!m) return `bad segment ${JSON.stringify(part.slice(0, 40))} (want id or id:ttl)`;
    const id = Number(m[1]);
    segments.push(m[2] === undefined ? id : { id, ttl: Number(m[2]) });
  }
  try {
    return toChange({ op: 'add', uid, segments }, nowSec, maxUidBytes);
  } catch (err) {
    return rejectReason(err);
  }
}

/** A first line naming the columns rather than holding data. */
export function isCsvHeader(line: Uint8Array): boolean {
  const t = Buffer.from(line.buffer, line.byteOffset, line.byteLength)
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .trim()
    .toLowerCase();
  return t === 'uid,segments' || t === 'uid,segment_ids';
}

const NO_IDS: number[] = [];

/**
 * `{"op":"match","uid":U, <one id>}` — server-to-server match upload: the id
 * now belongs to segd uid U. The id is `"partner":P,"puid":X`, `"ifa":X`,
 * `"eid_source":S,"eid":X` or `"login":X` (optional `"login_source":S`).
 */
function toMatch(r: Record<string, unknown>, uid: string, nowSec: number, maxUidBytes: number): Change {
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  let k: GraphKey | null = null;
  if (r.partner !== undefined || r.puid !== undefined) k = { partner: str(r.partner) ?? '', puid: str(r.puid) ?? '' };
  else if (r.ifa !== undefined) k = { ifa: str(r.ifa) ?? '' };
  else if (r.eid_source !== undefined || r.eid !== undefined)
    k = { eidSource: str(r.eid_source) ?? '', eid: str(r.eid) ?? '' };
  else if (r.login !== undefined)
    k = {
      login: str(r.login) ?? '',
      loginSource: r.login_source === undefined ? undefined : (str(r.login_source) ?? ''),
    };
  if (k === null) throw new RecordError('a match needs "partner"+"puid", "ifa", "eid_source"+"eid" or "login"');
  const key = encodeGraphKey(k, maxUidBytes);
  if (key === null || typeof key !== 'string') throw new RecordError(`bad match id: ${key?.problem ?? 'unknown'}`);
  return { op: 'match', uid, ids: NO_IDS, ttls: NO_IDS, ts: nowSec, key };
}

const short = (v: unknown): string => preview(v, 40);

/**
 * Why a record was rejected, from whatever its parsing or validation threw:
 * a RecordError's reason, or, for anything else (a stack overflow on a
 * hostile value, a decoder's own error), a bounded description of it. A bad
 * record is a rejected record, never a failed file, batch or stream.
 */
export function rejectReason(err: unknown): string {
  if (err instanceof RecordError) return err.message;
  const e = err as { name?: unknown; message?: unknown } | null;
  const what =
    e !== null && typeof e === 'object' && typeof e.message === 'string'
      ? `${String(e.name)}: ${e.message}`
      : String(err);
  return `cannot be read (${what.slice(0, 200)})`;
}
