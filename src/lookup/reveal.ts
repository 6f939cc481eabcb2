// Which segd uid a lookup's answer may name. The uid an id resolves to is a
// link segd built — often from other partners' data (a login, a device id,
// a merge of two devices) — so handing it to any key holder would make segd
// an identity-resolution service across partners. The rule:
//
// - a lookup by segd uid: the uid as sent (the caller knows it already), never
//   the profile it was merged into — the same on every route, for every caller;
// - admin keys, and anonymous callers where SEGD_LOOKUP_AUTH=optional (the
//   operator's own): the profile's uid, whatever id named it;
// - a partner's own uid (partner=<itself>&puid=): the segd uid it synced —
//   unless the profile holds merged devices, whose uid may be one the partner
//   never synced (a link built from other data);
// - a device id, universal id or login: none (null). The segments, filtered
//   by licence, are answered as always.
import type { Licence } from './licences.js';
import { aliasKey } from '../identity/graph-keys.js';

/** How a request named its user. */
type NamedBy = 'uid' | 'own' | 'graph';

/** The graph as this rule needs it (src/identity/graph.ts satisfies it). */
interface LinkSource {
  links(uid: string): string[];
}

/** Every merged-uid key starts so (keys.ts: `uid` kind, empty source). */
const ALIAS_PREFIX = aliasKey('');

/**
 * The uid to put in the answer. `sent` is the segd uid the request gave
 * (by 'uid'), `profile` the profile the read found or tried (ReadPath), null
 * when the request's id resolved to nobody.
 */
export function shownUid(
  licence: Licence,
  by: NamedBy,
  sent: string | null,
  profile: string | null,
  graph: LinkSource,
): string | null {
  if (by === 'uid') return sent;
  if (licence.seesUids) return profile;
  if (by === 'own' && profile !== null && !holdsMerged(graph, profile)) return profile;
  return null;
}

function holdsMerged(graph: LinkSource, profile: string): boolean {
  for (const k of graph.links(profile)) if (k.startsWith(ALIAS_PREFIX)) return true;
  return false;
}
