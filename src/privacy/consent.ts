// Consent signals of one request, parsed once into a `Consent`; decisions are
// pure functions of it. TCF v2 is decoded with @iabtcf/core, GPP with
// @iabgpp/cmpapi, US Privacy (CCPA) by its 4-character grammar.
//
// Everything fails closed: a malformed TCF string, GPP string, gpp_sid or
// US Privacy string never raises — it yields a Consent that allows nothing
// (no storage, no sync, no personalisation), so callers answer a fast no-op.
//
// What each check gates (TCF purposes; "vendor" = SEGD_GVL_VENDOR_ID):
//   mayStore        reading/writing the segd cookie and storing a match:
//                   vendor consent + Purpose 1 (store/access on a device —
//                   consent only, no legitimate interest)
//   maySync         sending the browser to partners (outbound) and taking
//                   their ids (inbound): no US opt-out of sale/sharing
//                   (USP `1-Y-`, GPP uspv1/usnat/state sale or sharing
//                   opt-out) — partners receive our id, which is a sale/share
//   mayPersonalise  returning segments for personalised ads (enrichment,
//                   lookups): mayStore + Purpose 4 (use profiles to select
//                   personalised ads — what handing segments to a bidder is),
//                   and no US opt-out of sale, sharing or targeted
//                   advertising. Purpose 3 (create profiles) governs building
//                   profiles, which the upstream collectors do, not reading
//                   them here; Prebid's TCF control gates the same activity
//                   (transmitting user data to bidders) on Purpose 4.
import { TCString, type TCModel } from '@iabtcf/core';
import { GppModel } from '@iabgpp/cmpapi';

export interface ConsentInput {
  gdpr?: string;
  gdprConsent?: string;
  usPrivacy?: string;
  gpp?: string;
  gppSid?: string;
}

export interface Consent {
  /** GDPR applies (gdpr=1, or GPP's applicable sections include TCF EU v2). */
  gdprApplies: boolean;
  /** The decoded TCF string, or null (none given, or malformed). */
  tcf: TCModel | null;
  /** A US opt-out of sale or sharing (USP or GPP). */
  saleOptOut: boolean;
  /** A US opt-out of targeted advertising (GPP US sections), or of sale/sharing. */
  targetingOptOut: boolean;
  /** Some signal was malformed: nothing is allowed. */
  malformed: boolean;
  /** Why, for debug answers and logs (never the strings themselves). */
  problems: string[];
}

const TCF_EU_SID = 2;
/** Longest consent string taken (a TCF string with every vendor is ≈ 2–3 KB; GPP a little more). */
const MAX_CONSENT_CHARS = 8192;
const USP = /^1[YNyn-]{3}$/;
const SID_LIST = /^\d{1,3}(,\d{1,3})*$/;
/** GPP fields that signal an opt-out: 1 = opted out (2 = did not, 0 = n/a); uspv1 uses 'Y'. */
const SALE_FIELDS = ['SaleOptOut', 'SharingOptOut', 'OptOutSale'];
const TARGETING_FIELDS = ['TargetedAdvertisingOptOut'];

/**
 * `unknownGdprApplies`: what a request that says nothing about GDPR (no
 * `gdpr`, no `gpp_sid`) means. The sync routes leave it false (the CMP
 * macros fill `gdpr`); enrichment passes SEGD_GDPR_DEFAULT.
 */
export function parseConsent(input: ConsentInput, unknownGdprApplies = false): Consent {
  const c: Consent = {
    gdprApplies: false,
    tcf: null,
    saleOptOut: false,
    targetingOptOut: false,
    malformed: false,
    problems: [],
  };
  const bad = (why: string) => {
    c.malformed = true;
    c.problems.push(why);
  };

  let sids: number[] = [];
  if (input.gppSid) {
    if (!SID_LIST.test(input.gppSid)) bad('gpp_sid must be a comma-separated list of integers');
    else sids = input.gppSid.split(',').map(Number);
  }
  if (input.gdpr === '1') c.gdprApplies = true;
  else if (input.gdpr === '0') c.gdprApplies = false;
  else if (input.gdpr === undefined || input.gdpr === '')
    c.gdprApplies = input.gppSid ? sids.includes(TCF_EU_SID) : unknownGdprApplies;
  else bad('gdpr must be 0 or 1');

  let tcfString = input.gdprConsent ?? '';
  if (input.gpp) {
    const g = readGpp(input.gpp);
    if (g === null) bad('gpp is not a valid GPP string');
    else {
      if (g.saleOptOut) c.saleOptOut = true;
      if (g.targetingOptOut) c.targetingOptOut = true;
      if (!tcfString && g.tcf) tcfString = g.tcf;
    }
  }
  if (input.usPrivacy) {
    if (!USP.test(input.usPrivacy)) bad('us_privacy is not a valid US Privacy string');
    else if (input.usPrivacy[2] === 'Y' || input.usPrivacy[2] === 'y') c.saleOptOut = true;
  }
  if (c.saleOptOut) c.targetingOptOut = true;

  if (c.gdprApplies) {
    if (!tcfString) c.problems.push('gdpr=1 without a consent string');
    else if (tcfString.length > MAX_CONSENT_CHARS) bad('gdpr_consent is too long');
    else {
      try {
        c.tcf = TCString.decode(tcfString);
      } catch {
        bad('gdpr_consent is not a valid TCF v2 string');
      }
    }
  }
  return c;
}

/** Sale/sharing/targeting opt-outs and the embedded TCF string of a GPP string; null if malformed. */
function readGpp(gpp: string): { saleOptOut: boolean; targetingOptOut: boolean; tcf: string } | null {
  if (gpp.length > MAX_CONSENT_CHARS) return null;
  try {
    const m = new GppModel(gpp);
    const ids = m.getSectionIds(); // decodes (lazily) and throws on a bad string
    let saleOptOut = false;
    let targetingOptOut = false;
    for (const name of sectionNames(m)) {
      for (const f of SALE_FIELDS) if (optedOut(m, name, f)) saleOptOut = true;
      for (const f of TARGETING_FIELDS) if (optedOut(m, name, f)) targetingOptOut = true;
    }
    const i = ids.indexOf(TCF_EU_SID);
    return { saleOptOut, targetingOptOut, tcf: i >= 0 ? (gpp.split('~')[i + 1] ?? '') : '' };
  } catch {
    return null;
  }
}

function sectionNames(m: GppModel): string[] {
  const out: string[] = [];
  const obj = m.toObject() as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (k !== 'tcfeuv2' && k !== 'tcfcav1') out.push(k);
  return out;
}

function optedOut(m: GppModel, section: string, field: string): boolean {
  let v: unknown;
  try {
    v = m.getFieldValue(section, field);
  } catch {
    return false;
  }
  return v === 1 || v === 'Y';
}

/** Cookie read/write and match storage (vendor consent + Purpose 1 when GDPR applies). */
export function mayStore(c: Consent, vendorId: number): boolean {
  if (c.malformed) return false;
  if (!c.gdprApplies) return true;
  const t = c.tcf;
  return t !== null && vendorId > 0 && t.vendorConsents.has(vendorId) && t.purposeConsents.has(1);
}

/** Syncing ids with partners (no US sale/sharing opt-out). */
export function maySync(c: Consent): boolean {
  return !c.malformed && !c.saleOptOut;
}

/** Segments for personalised ads (mayStore + Purpose 4; no US sale/sharing/targeting opt-out). */
export function mayPersonalise(c: Consent, vendorId: number): boolean {
  if (!mayStore(c, vendorId) || c.targetingOptOut) return false;
  if (!c.gdprApplies) return true;
  return c.tcf!.purposeConsents.has(4);
}
