// Which segd user a request is about, from whatever keys it carries. One
// small interface so the ID graph (idmap: partner uid / device id / universal
// id → segd uid) plugs in at one place; until then only a segd uid resolves.
import { checkUid } from './keys.js';

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

/**
 * Until the ID graph is wired: only `uid` (a segd uid) resolves; the other
 * kinds are accepted and answer "unknown user".
 */
export function directResolver(maxUidBytes: number): UserResolver {
  return {
    resolve(keys) {
      return checkUid(keys.uid, maxUidBytes) === null ? (keys.uid as string) : null;
    },
  };
}
