// The keys of the ID graph. Every id a user is known by is one string:
//
//   kind \x1f source \x1f id
//
//   p      partner id      the partner's own user id (cookie sync, match upload)
//   ifa    ''              device advertising id (lowercased: IDFA/GAID are UUIDs)
//   eid    eid source      a universal id by source, as OpenRTB user.eids (`source` + `uids[].id`)
//   login  login source    a hashed email or login id: the deterministic cross-device key
//   uid    ''              a segd uid merged into another profile (an alias)
//
// \x1f cannot occur in a validated id (control characters are refused), so
// keys never collide and a segd uid (no control characters) is never a key.
import { checkUid } from './uid.js';
import { PARTNER_ID } from '../partners/validate.js';

export type IdKind = 'p' | 'ifa' | 'eid' | 'login' | 'uid';
export const SEP = '\x1f';

/** What a caller can look a user up by. */
export type GraphKey =
  | { partner: string; puid: string }
  | { ifa: string }
  | { eidSource: string; eid: string }
  | { login: string; loginSource?: string }
  | { uid: string };

/** eid sources are domains (`liveramp.com`, `id5-sync.com`); login sources are short names (`email-sha256`). */
const SOURCE = /^[A-Za-z0-9._-]{1,100}$/;
const DEFAULT_LOGIN_SOURCE = 'login';

export function idKey(kind: IdKind, source: string, id: string): string {
  return kind + SEP + source + SEP + id;
}

export const partnerKey = (partner: string, puid: string) => idKey('p', partner, puid);
export const aliasKey = (uid: string) => idKey('uid', '', uid);

export function kindOf(key: string): IdKind {
  return key.slice(0, key.indexOf(SEP)) as IdKind;
}

/**
 * The key of a GraphKey after validation, or the reason it is not valid.
 * `uid` keys give null (not a graph key). Straight-line, no intermediate
 * arrays: the activation paths call this per bid request.
 */
export function encodeGraphKey(k: GraphKey, maxIdBytes: number): string | { problem: string } | null {
  let kind: IdKind;
  let source: string;
  let id: string;
  if ('partner' in k) {
    if (!PARTNER_ID.test(k.partner)) return BAD_PARTNER;
    kind = 'p';
    source = k.partner;
    id = k.puid;
  } else if ('ifa' in k) {
    kind = 'ifa';
    source = '';
    id = k.ifa.toLowerCase();
  } else if ('eidSource' in k) {
    if (!SOURCE.test(k.eidSource)) return BAD_SOURCE;
    kind = 'eid';
    source = k.eidSource;
    id = k.eid;
  } else if ('login' in k) {
    source = k.loginSource ?? DEFAULT_LOGIN_SOURCE;
    if (!SOURCE.test(source)) return BAD_SOURCE;
    kind = 'login';
    id = k.login;
  } else return null;
  if (checkUid(id, maxIdBytes) !== null)
    return { problem: `the id must be 1..${maxIdBytes} UTF-8 bytes with no control characters` };
  return kind + SEP + source + SEP + id;
}

const BAD_PARTNER = { problem: 'partner must be 1-40 of a-z 0-9 _ -' };
const BAD_SOURCE = { problem: 'source must be 1-100 of A-Z a-z 0-9 . _ -' };

/** A short, log-safe description of a key (no raw id). */
export function describeKey(key: string): string {
  const [kind, source] = key.split(SEP);
  return source ? `${kind}:${source}` : kind!;
}
