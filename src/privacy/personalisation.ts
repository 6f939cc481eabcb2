// "May segd return personalised segments for this request?" — the activation
// paths' question, asked of the privacy signals an OpenRTB request carries.
// The rule itself is consent.ts's `mayPersonalise`, the same one every path
// uses; this file only maps OpenRTB fields onto consent.ts's input and names
// the signal that refused (a metric label and the X-Segd-Empty reason). Each
// signal is checked on its own so the reason is the right one.
//
// OpenRTB fields arrive in many JSON spellings. A flag (gdpr, coppa) is read
// from 1, "1", true, "true" (set) and 0, "0", false, "false" (not set);
// absent or null is "not said". Anything else — another number, a string,
// an object — cannot be honoured, so it refuses (fails closed), as does a
// consent string, GPP string or US Privacy string that is not a string.
// gpp_sid is OpenRTB's array of integers, also taken as digit strings or the
// query-string form "2,6"; consent.ts checks its grammar.
//
// Rules (docs/identity-and-privacy.md, "Privacy signals on activation"): COPPA never; GDPR needs
// vendor consent + Purposes 1 and 4; a US sale/sharing/targeting opt-out
// (USP or GPP) refuses; anything that does not decode refuses. A request
// that says nothing about GDPR is judged by SEGD_GDPR_DEFAULT.
import { parseConsent, mayPersonalise } from './consent.js';

export interface PrivacySignals {
  /** regs.gdpr: 1 = applies, 0 = does not, undefined = not said. */
  gdpr?: unknown;
  /** regs.ext.gdpr (OpenRTB 2.5). */
  extGdpr?: unknown;
  /** user.consent (or 2.5 user.ext.consent): the TCF v2 string. */
  consent?: unknown;
  /** regs.us_privacy */
  usPrivacy?: unknown;
  /** regs.ext.us_privacy (OpenRTB 2.5). */
  extUsPrivacy?: unknown;
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
  /** SEGD_GDPR_DEFAULT=applies: a request that says nothing about GDPR is under it. */
  gdprApplies: boolean;
}

/** Stands for a signal that is present but unreadable: consent.ts refuses it. */
const UNREADABLE = '\u0000';
/** More section ids than GPP has: a longer list is not a real one. */
const MAX_SIDS = 64;
const SID = /^\d{1,3}$/;

const text = (v: unknown): string => (typeof v === 'string' ? v : UNREADABLE);
const present = (v: unknown) => v !== undefined && v !== null && v !== '';

/** An OpenRTB flag as '1' | '0', undefined when not said, UNREADABLE otherwise. */
function flag(v: unknown): string | undefined {
  switch (v) {
    case undefined:
    case null:
      return undefined;
    case 1:
    case '1':
    case true:
    case 'true':
      return '1';
    case 0:
    case '0':
    case false:
    case 'false':
      return '0';
    default:
      return UNREADABLE;
  }
}

/** Two spellings of one flag (2.6 field and 2.5 ext): the stricter wins. */
function stricter(a: string | undefined, b: string | undefined): string | undefined {
  if (a === UNREADABLE || b === UNREADABLE) return UNREADABLE;
  if (a === '1' || b === '1') return '1';
  return a ?? b;
}

/** gpp_sid in consent.ts's query-string form ("2,6"); undefined when not said. */
function sidList(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'string') return v;
  if (!Array.isArray(v) || v.length > MAX_SIDS) return UNREADABLE;
  let out = '';
  for (const x of v) {
    if (!(Number.isInteger(x) || (typeof x === 'string' && SID.test(x)))) return UNREADABLE;
    out += (out === '' ? '' : ',') + String(x);
  }
  return out === '' ? undefined : out;
}

/** null = personalised segments may be returned; otherwise why not. */
export function personalisationRefusal(s: PrivacySignals, policy: ConsentPolicy): Refusal | null {
  const v = policy.gvlVendorId;
  const coppa = flag(s.coppa);
  if (coppa !== undefined && coppa !== '0') return 'coppa';

  const sid = sidList(s.gppSid);
  const gpp = present(s.gpp) ? text(s.gpp) : undefined;
  // The GPP string: its opt-outs, and its TCF section where gpp_sid says GDPR applies.
  if (gpp !== undefined) {
    if (!mayPersonalise(parseConsent({ gpp, gppSid: sid }), v)) return 'gpp';
  } else if (sid !== undefined && parseConsent({ gppSid: sid }).malformed) return 'gpp';

  // GDPR: said by regs.gdpr / regs.ext.gdpr, else by gpp_sid, else SEGD_GDPR_DEFAULT.
  // The GPP string (checked above) can carry the TCF string when user.consent is absent.
  const consent = present(s.consent) ? text(s.consent) : undefined;
  const gdpr = stricter(flag(s.gdpr), flag(s.extGdpr));
  if (
    !mayPersonalise(
      parseConsent(
        { gdpr, gdprConsent: consent, gpp: consent === undefined ? gpp : undefined, gppSid: sid },
        policy.gdprApplies,
      ),
      v,
    )
  )
    return 'gdpr';

  if (present(s.usPrivacy) && !mayPersonalise(parseConsent({ usPrivacy: text(s.usPrivacy) }), v)) return 'us_privacy';
  if (present(s.extUsPrivacy) && !mayPersonalise(parseConsent({ usPrivacy: text(s.extUsPrivacy) }), v))
    return 'us_privacy';
  return null;
}
