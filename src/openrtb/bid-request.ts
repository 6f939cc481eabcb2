// What enrichment reads from an OpenRTB 2.6 BidRequest: the user's keys, the
// privacy signals and tmax, from the spans the scanner noted (scan.ts). The
// request itself is never rebuilt: only `user.data` is touched (see
// user-data.ts), every other byte stays as sent.
import type { UserKeys } from '../lookup/resolve.js';
import type { PrivacySignals } from '../privacy/personalisation.js';
import { F, Kind, type BidRequestScanner } from './scan.js';

export interface BidRequestView {
  keys: UserKeys;
  signals: PrivacySignals;
  /** tmax in ms, or null when absent or not a positive number. */
  tmax: number | null;
}

const absentOrObject = (k: number) => k === Kind.ABSENT || k === Kind.OBJECT;

/**
 * The parts of the document `s` just scanned that enrichment needs, or null
 * when it is not a BidRequest (2.6 requires `id` and `imp`; `user`, `device`,
 * `regs` must be objects when present, `user.data` an array).
 */
export function readBidRequest(s: BidRequestScanner, partner: string | null): BidRequestView | null {
  const kind = s.kind;
  if (kind[F.ROOT] !== Kind.OBJECT || kind[F.ID] !== Kind.STRING || kind[F.IMP] !== Kind.ARRAY) return null;
  if (!absentOrObject(kind[F.USER]!) || !absentOrObject(kind[F.DEVICE]!) || !absentOrObject(kind[F.REGS]!)) return null;
  if (kind[F.USER_DATA] !== Kind.ABSENT && kind[F.USER_DATA] !== Kind.ARRAY) return null;
  const tmax = kind[F.TMAX] === Kind.NUMBER ? (s.valueOf(F.TMAX) as number) : 0;
  // 2.5-style signals in ext are still common in the wild. Both are read
  // where both may say something (the stricter wins); the consent string
  // from ext is used when the 2.6 field is absent.
  return {
    keys: {
      partner,
      uid: s.valueOf(F.USER_ID),
      buyeruid: s.valueOf(F.BUYERUID),
      eids: s.valueOf(F.EIDS),
      ifa: s.valueOf(F.IFA),
    },
    signals: {
      gdpr: s.valueOf(F.GDPR),
      extGdpr: s.valueOf(F.REXT_GDPR),
      consent: s.valueOf(F.CONSENT) ?? s.valueOf(F.UEXT_CONSENT),
      usPrivacy: s.valueOf(F.US_PRIVACY),
      extUsPrivacy: s.valueOf(F.REXT_US_PRIVACY),
      gpp: s.valueOf(F.GPP),
      gppSid: s.valueOf(F.GPP_SID),
      coppa: s.valueOf(F.COPPA),
    },
    tmax: tmax > 0 ? tmax : null,
  };
}
