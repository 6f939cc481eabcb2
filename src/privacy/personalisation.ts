// "May segd return personalised segments for this request?" — the activation
// paths' question, asked of the privacy signals an OpenRTB request carries
// (numbers and arrays, as OpenRTB has them). The rule itself is consent.ts's
// `mayPersonalise`, the same one every path uses; this file only maps OpenRTB
// fields onto it and names the signal that refused (a metric label and the
// X-Segd-Empty reason). Each signal is checked on its own so the reason is
// the right one.
//
// Rules (README "Consent"): COPPA never; GDPR needs vendor consent +
// Purposes 1 and 4; a US sale/sharing/targeting opt-out (USP or GPP) refuses;
// anything that does not decode refuses.
import { parseConsent, mayPersonalise } from './consent.js';

export interface PrivacySignals {
  /** regs.gdpr: 1 = applies, 0 = does not, undefined = unknown. */
  gdpr?: unknown;
  /** user.consent: the TCF v2 string. */
  consent?: unknown;
  /** regs.us_privacy */
  usPrivacy?: unknown;
  /** regs.gpp */
  gpp?: unknown;
  /** regs.gpp_sid: the applicable GPP section ids. */
  gppSid?: unknown;
  /** regs.coppa */
  coppa?: unknown;
}

/** Why personalisation was refused (closed set: a metric label). */
export type Refusal = 'coppa' | 'gdpr' | 'us_privacy' | 'gpp';

export interface ConsentPolicy {
  /** Our vendor id in the IAB Global Vendor List (0 = none). */
  gvlVendorId: number;
}

/** A signal that is present but not a string cannot be honoured: pass something that fails to parse. */
const text = (v: unknown): string => (typeof v === 'string' ? v : '\u0000');
const present = (v: unknown) => v !== undefined && v !== null && v !== '';
/** OpenRTB's gpp_sid is an array of integers; consent.ts takes the query-string form. */
const sidList = (v: unknown): string | undefined =>
  v === undefined ? undefined : Array.isArray(v) && v.every((x) => Number.isInteger(x)) ? v.join(',') : '\u0000';

/** null = personalised segments may be returned; otherwise why not. */
export function personalisationRefusal(s: PrivacySignals, policy: ConsentPolicy): Refusal | null {
  const v = policy.gvlVendorId;
  if (s.coppa === 1) return 'coppa';
  if (s.gdpr === 1 && !mayPersonalise(parseConsent({ gdpr: '1', gdprConsent: present(s.consent) ? text(s.consent) : '' }), v)) return 'gdpr';
  if (present(s.usPrivacy) && !mayPersonalise(parseConsent({ usPrivacy: text(s.usPrivacy) }), v)) return 'us_privacy';
  if (present(s.gpp)) {
    const sid = sidList(s.gppSid);
    if (!mayPersonalise(parseConsent({ gpp: text(s.gpp), gppSid: sid === '' ? undefined : sid }), v)) return 'gpp';
  }
  return null;
}
