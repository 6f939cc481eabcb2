// Whether a BidRequest's privacy signals allow personalisation, remembered
// per distinct signals. Decoding a TCF consent string costs ≈ 13 µs and a
// GPP string ≈ 66 µs of JS (@iabtcf/core, @iabgpp/cmpapi; the gdpr-consent
// and gpp-tcf-ok fixtures), against ≈ 20 ns for a request with neither and
// ≈ 5 µs for the whole scan of a 2.6 KB request; the same user's strings come
// back request after request. The answer is a pure function of the signals
// (as sent) and the policy, so a remembered one is the one a decode gives.
import { personalisationRefusal, type ConsentPolicy, type Refusal } from '../privacy/personalisation.js';
import type { BidRequestView } from './bid-request.js';
import { F, Kind, type BidRequestScanner } from './scan.js';

/** Signals longer than this are decoded every time (memory: entries × this, in latin1 bytes). */
const MAX_KEY_CHARS = 4096;
/** Distinct signals remembered; past this the memo starts over. */
const REMEMBERED = 1024;

export class Refusals {
  private memo = new Map<string, Refusal | null>();

  constructor(
    private readonly policy: ConsentPolicy,
    private readonly remembered = REMEMBERED,
  ) {}

  /** personalisationRefusal(br.signals) for the document `s` last scanned, `br` its view. */
  of(s: BidRequestScanner, br: BidRequestView): Refusal | null {
    const kind = s.kind;
    // Without a consent or GPP string there is nothing costly to decode.
    if (kind[F.CONSENT] !== Kind.STRING && kind[F.UEXT_CONSENT] !== Kind.STRING && kind[F.GPP] !== Kind.STRING)
      return personalisationRefusal(br.signals, this.policy);
    const key = s.signalsKey(MAX_KEY_CHARS);
    if (key === null) return personalisationRefusal(br.signals, this.policy);
    let r = this.memo.get(key);
    if (r === undefined) {
      r = personalisationRefusal(br.signals, this.policy);
      if (this.memo.size >= this.remembered) this.memo = new Map();
      this.memo.set(key, r);
    }
    return r;
  }
}
