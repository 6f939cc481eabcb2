// "May segd return personalised segments for this request?" — one decision
// from the privacy signals an OpenRTB request carries (numbers and arrays, as
// OpenRTB has them), with the signal that refused it (a metric label and the
// X-Segd-Empty reason). Used by enrichment. consent.ts (cookie sync) parses
// the query-string forms; its mayPersonalise also requires Purpose 3 — the
// two rules are to be reconciled (see the README).
//
// Rules (README "Privacy signals on activation"):
// - COPPA (regs.coppa = 1): never.
// - GDPR (regs.gdpr = 1): a TCF v2 string (user.consent) that @iabtcf/core
//   decodes, with consent for Purpose 1 (store/access information on a device:
//   the DMP cookie / device id our profile is keyed by) and Purpose 4 (use
//   profiles to select personalised ads: exactly what returning segments to a
//   bidder does), and consent for our GVL vendor id. Purpose 3 (create
//   profiles) governs building the profile upstream, not reading it here, so
//   it is not required. Legitimate interest does not count: TCF 2.2 removed it
//   for purposes 3–6. No GVL id configured (0) means consent can't be shown: no.
// - US Privacy (regs.us_privacy, "1YNN"): opted out of sale (3rd char Y) → no;
//   "1---" (not applicable) → yes; anything malformed → no.
// - GPP (regs.gpp + regs.gpp_sid): each applicable section present in the
//   string is checked: tcfeuv2 as above, uspv1 as US Privacy, US national and
//   state sections: SaleOptOut or TargetedAdvertisingOptOut = 1 (opted out) → no.
//   A GPP string that does not decode → no.
import { TCString } from '@iabtcf/core';
import { GppModel, Sections } from '@iabgpp/cmpapi';

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

const PURPOSE_STORAGE = 1;
const PURPOSE_PERSONALISED_ADS = 4;
/** GPP section ids (IAB GPP registry). */
const GPP_TCF_EU = 2;
const GPP_USP = 6;

/** null = personalised segments may be returned; otherwise why not. */
export function personalisationRefusal(s: PrivacySignals, policy: ConsentPolicy): Refusal | null {
  if (s.coppa === 1) return 'coppa';
  if (s.gdpr === 1 && !tcfAllows(s.consent, policy)) return 'gdpr';
  if (s.usPrivacy !== undefined && s.usPrivacy !== '' && !uspAllows(s.usPrivacy)) return 'us_privacy';
  if (s.gpp !== undefined && s.gpp !== '' && !gppAllows(s.gpp, s.gppSid, policy)) return 'gpp';
  return null;
}

function tcfAllows(consent: unknown, policy: ConsentPolicy): boolean {
  if (typeof consent !== 'string' || consent === '' || policy.gvlVendorId <= 0) return false;
  try {
    const tc = TCString.decode(consent);
    return (
      tc.purposeConsents.has(PURPOSE_STORAGE) &&
      tc.purposeConsents.has(PURPOSE_PERSONALISED_ADS) &&
      tc.vendorConsents.has(policy.gvlVendorId)
    );
  } catch {
    return false;
  }
}

/** US Privacy string: version 1, notice, opt-out of sale, LSPA; each Y, N or -. */
function uspAllows(v: unknown): boolean {
  if (typeof v !== 'string' || !/^1[YN-]{3}$/i.test(v)) return false;
  return v[2]!.toUpperCase() !== 'Y';
}

function gppAllows(gpp: unknown, sid: unknown, policy: ConsentPolicy): boolean {
  if (typeof gpp !== 'string') return false;
  const sids = Array.isArray(sid) ? sid.filter((x): x is number => Number.isInteger(x)) : [];
  try {
    // Decodes every section up front: a corrupt one throws here.
    const model = new GppModel(gpp);
    for (const id of sids) {
      const name = GPP_SECTIONS.get(id);
      if (name === undefined || !model.hasSectionId(id)) continue;
      if (id === GPP_TCF_EU) {
        const purposes = model.getFieldValue(name, 'PurposeConsents') as boolean[];
        const vendors = model.getFieldValue(name, 'VendorConsents') as number[];
        if (!purposes?.[PURPOSE_STORAGE - 1] || !purposes?.[PURPOSE_PERSONALISED_ADS - 1]) return false;
        if (policy.gvlVendorId <= 0 || !vendors?.includes(policy.gvlVendorId)) return false;
      } else if (id === GPP_USP) {
        if (String(model.getFieldValue(name, 'OptOutSale')).toUpperCase() === 'Y') return false;
      } else if (name.startsWith('us')) {
        // US national and state sections: 0 = not applicable, 1 = opted out, 2 = did not opt out.
        if (model.hasField(name, 'SaleOptOut') && model.getFieldValue(name, 'SaleOptOut') === 1) return false;
        if (model.hasField(name, 'TargetedAdvertisingOptOut') && model.getFieldValue(name, 'TargetedAdvertisingOptOut') === 1) return false;
      }
    }
  } catch {
    return false;
  }
  return true;
}

// Section id → name as the library knows them (tcfeuv2, uspv1, usnat, usca, …).
const GPP_SECTIONS = Sections.SECTION_ID_NAME_MAP as Map<number, string>;
