// Which segd user a request is about, from whatever keys it carries, through
// the ID graph (idmap: partner uid / device id / universal id → the segd uid
// of the profile). One small interface, so enrichment and the WebSocket
// channel do not care how ids are linked.
import type { IdGraph } from '../identity/graph.js';
import { checkUid } from '../identity/uid.js';

export interface UserKeys {
  /** The calling partner (whose uid `buyeruid`/`puid` is); null = anonymous. */
  partner: string | null;
  /** A segd uid (OpenRTB `user.id`, lookup `uid`). */
  uid?: unknown;
  /** The calling partner's own uid for the user (OpenRTB `user.buyeruid`). */
  buyeruid?: unknown;
  /** OpenRTB 2.6 `user.eids`: [{source, uids:[{id, atype}]}]. */
  eids?: unknown;
  /** Device advertising id (OpenRTB `device.ifa`). */
  ifa?: unknown;
}

export interface UserResolver {
  /** The segd uid, or null when no key resolves. Synchronous: lookups are. */
  resolve(keys: UserKeys): string | null;
}

/** Most eids tried per request (a hostile request may carry thousands). */
const MAX_EIDS = 16;

/**
 * Most specific first: the caller's own uid for the user (its sync with us),
 * then universal ids, then the device id, then `uid` as a segd uid (as is:
 * the read path, lookup/read.ts, follows it to the profile it was merged
 * into). The first key the graph knows wins.
 */
export function graphResolver(graph: IdGraph, maxUidBytes: number): UserResolver {
  const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
  return {
    resolve(keys) {
      if (keys.partner !== null && str(keys.buyeruid)) {
        const u = graph.resolve({ partner: keys.partner, puid: keys.buyeruid });
        if (u !== null) return u;
      }
      if (Array.isArray(keys.eids)) {
        let tried = 0;
        for (const e of keys.eids) {
          const source = (e as { source?: unknown } | null)?.source;
          const uids = (e as { uids?: unknown } | null)?.uids;
          if (!str(source) || !Array.isArray(uids)) continue;
          for (const x of uids) {
            const id = (x as { id?: unknown } | null)?.id;
            if (!str(id) || ++tried > MAX_EIDS) continue;
            const u = graph.resolve({ eidSource: source, eid: id });
            if (u !== null) return u;
          }
        }
      }
      if (str(keys.ifa)) {
        const u = graph.resolve({ ifa: keys.ifa });
        if (u !== null) return u;
      }
      if (checkUid(keys.uid, maxUidBytes) === null) return keys.uid as string;
      return null;
    },
  };
}
