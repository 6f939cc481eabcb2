// The graph id a request names in its query: partner=&puid=, ifa=,
// eid_source=&eid=, or login=[&login_source=]. Read synchronously (uWS),
// from the request's raw query as the lookup route reads its own values.
import type { HttpRequest } from 'uWebSockets.js';
import { encodeGraphKey, type GraphKey } from '../../identity/graph-keys.js';
import { queryParam } from '../query.js';

/** null = none given; {problem} = malformed or more than one; {key} = the encoded id key. */
export function readGraphKey(
  req: HttpRequest,
  query: string,
  maxIdBytes: number,
): { key: string } | { problem: string } | null {
  const q = (key: string) => queryParam(req, query, key);
  const partner = q('partner');
  const puid = q('puid');
  const ifa = q('ifa');
  const eidSource = q('eid_source');
  const eid = q('eid');
  const login = q('login');
  const found: GraphKey[] = [];
  if (partner !== undefined || puid !== undefined) found.push({ partner: partner ?? '', puid: puid ?? '' });
  if (ifa !== undefined) found.push({ ifa });
  if (eidSource !== undefined || eid !== undefined) found.push({ eidSource: eidSource ?? '', eid: eid ?? '' });
  if (login !== undefined) found.push({ login, loginSource: q('login_source') });
  if (found.length === 0) return null;
  if (found.length > 1) return { problem: 'give exactly one id' };
  const key = encodeGraphKey(found[0]!, maxIdBytes);
  if (key === null) return null;
  return typeof key === 'string' ? { key } : key;
}

/** One id of a batch body: {"partner","puid"} | {"ifa"} | {"eid_source","eid"} | {"login"[,"login_source"]} | {"uid"}. */
export function graphKeyOf(o: unknown, maxIdBytes: number): { key: string } | { uid: string } | { problem: string } {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return { problem: 'each key must be an object' };
  const r = o as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const found: GraphKey[] = [];
  if (r.uid !== undefined) found.push({ uid: str(r.uid) });
  if (r.partner !== undefined || r.puid !== undefined) found.push({ partner: str(r.partner), puid: str(r.puid) });
  if (r.ifa !== undefined) found.push({ ifa: str(r.ifa) });
  if (r.eid_source !== undefined || r.eid !== undefined) found.push({ eidSource: str(r.eid_source), eid: str(r.eid) });
  if (r.login !== undefined)
    found.push({ login: str(r.login), loginSource: r.login_source === undefined ? undefined : str(r.login_source) });
  if (found.length !== 1) return { problem: 'give exactly one id' };
  const k = found[0]!;
  if ('uid' in k) return { uid: k.uid };
  const key = encodeGraphKey(k, maxIdBytes);
  return typeof key === 'string' ? { key } : (key ?? { problem: 'not an id' });
}
