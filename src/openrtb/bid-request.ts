// What enrichment reads from an OpenRTB 2.6 BidRequest: the user's keys, the
// privacy signals and tmax. The request itself is never rebuilt: only
// `user.data` is touched (see user-data.ts), every other field stays as sent.
import type { UserKeys } from '../lookup/resolve.js';
import type { PrivacySignals } from '../privacy/personalisation.js';

export type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface BidRequestView {
  doc: Obj;
  keys: UserKeys;
  signals: PrivacySignals;
  /** tmax in ms, or null when absent or not a positive number. */
  tmax: number | null;
}

/**
 * The parts of `doc` enrichment needs, or null when it is not a BidRequest
 * (2.6 requires `id` and `imp`; `user`, `device`, `regs` must be objects when present).
 */
export function readBidRequest(doc: unknown, partner: string | null): BidRequestView | null {
  if (!isObj(doc) || typeof doc.id !== 'string' || !Array.isArray(doc.imp)) return null;
  const { user, device, regs } = doc;
  if (
    (user !== undefined && !isObj(user)) ||
    (device !== undefined && !isObj(device)) ||
    (regs !== undefined && !isObj(regs))
  )
    return null;
  if (user !== undefined && user.data !== undefined && !Array.isArray(user.data)) return null;
  const u = user ?? {};
  const r = regs ?? {};
  // 2.5-style signals in ext are still common in the wild. Both are read
  // where both may say something (the stricter wins); the consent string
  // from ext is used when the 2.6 field is absent.
  const uExt = isObj(u.ext) ? u.ext : {};
  const rExt = isObj(r.ext) ? r.ext : {};
  const tmax = typeof doc.tmax === 'number' && doc.tmax > 0 ? doc.tmax : null;
  return {
    doc,
    keys: { partner, uid: u.id, buyeruid: u.buyeruid, eids: u.eids, ifa: device?.ifa },
    signals: {
      gdpr: r.gdpr,
      extGdpr: rExt.gdpr,
      consent: u.consent ?? uExt.consent,
      usPrivacy: r.us_privacy,
      extUsPrivacy: rExt.us_privacy,
      gpp: r.gpp,
      gppSid: r.gpp_sid,
      coppa: r.coppa,
    },
    tmax,
  };
}
