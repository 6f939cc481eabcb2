// Prebid Real-Time Data: the browser's own audience for segd's Prebid module
// (integrations/prebid/segdRtdProvider.js).
//
//   GET /v1/rtd?pub=P[&bidders=a,b][&gdpr=&gdpr_consent=&us_privacy=&gpp=&gpp_sid=][&coppa=1]
//       Called by a publisher's page with `credentials: 'include'`: the segd
//       cookie names the user, never the query. Answers
//       {"data":[Data…],"bidders":{"a":[Data…]},"targeting":{"seg":"1,2"}}:
//       `data` holds the segments licensed to publisher P (for every bidder
//       of the auction), `bidders` for each named partner the segments
//       licensed to it beyond those, `targeting` the publisher's ids as
//       ad-server key-values (SEGD_GAM_KEY, capped by SEGD_GAM_MAX_BYTES).
//   OPTIONS /v1/rtd   the CORS preflight.
//
// CORS: the page's Origin must be one of SEGD_RTD_ORIGINS, and is reflected
// with Allow-Credentials (a credentialed read needs a named origin, never
// '*'). The origin also decides which publisher and bidder partners a page
// may name: another site's script cannot read this browser's segments, and a
// publisher's page cannot ask for partners it was not given.
//
// Privacy as the sync routes: opt-out cookie, then consent (privacy/consent.ts,
// mayPersonalise), then anything else. A browser that may not be personalised
// gets a 204 (X-Segd-Empty says why): no read, no cookie. A malformed consent
// signal fails closed the same way; malformed structural parameters are 400s.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import type { RtdSite } from '../../config/schema.js';
import { sendError, status, CT, JSON_TYPE, ALLOW_ORIGIN } from '../respond.js';
import { ERRORS, errorBody, type ErrorCode } from '../../errors.js';
import { parseConsent, mayPersonalise, type ConsentInput } from '../../privacy/consent.js';
import { readUid, isOptedOut, cookieSettings } from '../../identity/cookie.js';
import { ReadPath } from '../../lookup/read.js';
import { ANONYMOUS, Licence } from '../../lookup/licences.js';
import { nowSeconds } from '../../lookup/segments.js';
import { UserData } from '../../openrtb/user-data.js';
import { gamAnswer, keyPrefix, AnswerBuffer } from '../format.js';

const BIDDERS = /^[a-z0-9_-]{1,40}(?:,[a-z0-9_-]{1,40}){0,49}$/;
const PARTNER_ID = /^[a-z0-9_-]{1,40}$/;
const COPPA = /^[01]?$/;
const NO_STORE = 'no-store';

/**
 * The status line and the headers of every answer to an allowed origin (uWS
 * writes the status first): its reads are the browser's own, never cached
 * or shared.
 */
function head(res: HttpResponse, st: number, origin: string): void {
  res
    .writeStatus(status(st))
    .writeHeader(ALLOW_ORIGIN, origin)
    .writeHeader('Access-Control-Allow-Credentials', 'true')
    .writeHeader('Vary', 'Origin')
    .writeHeader('Cache-Control', NO_STORE);
}

export function rtdRoutes(deps: AppDeps) {
  const { config, registry, licences, metrics, lookup, graph, admission } = deps;
  const sites = new Map<string, RtdSite>(config.rtdOrigins.map((s) => [s.origin, s]));
  const cs = cookieSettings(config);
  const m = metrics.route('rtd');
  const reader = new ReadPath(lookup, graph, metrics);
  const userData = new UserData(registry, config.dmpDomain);
  const out = new AnswerBuffer();
  const gamPrefix = keyPrefix(config.gamKey);
  const unknownGdprApplies = config.gdprDefault === 'applies';
  // The user's ids, read once; each licence filters its own copy.
  let all = new Uint32Array(64);
  let work = new Uint32Array(64);

  /** The licence of an enabled partner, or undefined. */
  const licenceOf = (id: string): Licence | undefined => {
    const p = registry.partner(id);
    return p === undefined || p.disabled ? undefined : licences.of(id);
  };
  /** `licence`'s share of the first `n` ids of `all`, into `work`, less those `skip` has. */
  const share = (licence: Licence, n: number, skip?: Licence): number => {
    work.set(all.subarray(0, n));
    const k = licence.filter(work, n);
    if (skip === undefined) return k;
    let j = 0;
    for (let i = 0; i < k; i++) if (!skip.has(work[i]!)) work[j++] = work[i]!;
    return j;
  };

  const preflight = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const origin = req.getHeader('origin');
    let st: number;
    if (!sites.has(origin)) st = sendError(res, 'ORIGIN_NOT_ALLOWED');
    else {
      head(res, 204, origin);
      res.writeHeader('Access-Control-Allow-Methods', 'GET').writeHeader('Access-Control-Max-Age', '600').end();
      st = 204;
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };

  const get = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    // Copied synchronously: uWS requests live on the stack.
    const origin = req.getHeader('origin');
    const site = sites.get(origin);
    const pub = req.getQuery('pub') ?? '';
    // Without a configured origin no CORS header: the page cannot read the answer.
    if (site === undefined) return done(sendError(res, 'ORIGIN_NOT_ALLOWED'));
    const fail = (code: ErrorCode, detail: string): number => {
      const st = ERRORS[code].status;
      head(res, st, origin);
      res.writeHeader(CT, JSON_TYPE).end(errorBody(code, detail));
      return st;
    };
    /** 204: nothing for this browser now; `reason` goes in X-Segd-Empty. */
    const empty = (reason: string): number => {
      head(res, 204, origin);
      res.writeHeader('X-Segd-Empty', reason).end('');
      return 204;
    };
    if (!PARTNER_ID.test(pub)) return done(fail('BAD_RTD_REQUEST', 'pub must be a partner id (a-z 0-9 _ -)'));
    if (pub !== site.publisher) return done(fail('ORIGIN_NOT_ALLOWED', `${origin} is not set up for ${pub}`));
    const biddersParam = req.getQuery('bidders') ?? '';
    if (biddersParam !== '' && !BIDDERS.test(biddersParam))
      return done(fail('BAD_RTD_REQUEST', 'bidders must be at most 50 comma-separated partner ids'));
    const coppa = req.getQuery('coppa') ?? '';
    if (!COPPA.test(coppa)) return done(fail('BAD_RTD_REQUEST', 'coppa must be 0 or 1'));
    // Shed before the consent strings are decoded: that is most of this route's work.
    if (admission.overloaded()) {
      metrics.shed('rtd', 'overload');
      return done(empty('overload'));
    }
    const consentIn: ConsentInput = {
      gdpr: req.getQuery('gdpr'),
      gdprConsent: req.getQuery('gdpr_consent'),
      usPrivacy: req.getQuery('us_privacy'),
      gpp: req.getQuery('gpp'),
      gppSid: req.getQuery('gpp_sid'),
    };
    const cookie = req.getHeader('cookie');

    if (isOptedOut(cookie, cs)) return done(empty('opted_out'));
    // Children's data is never used for personalised ads.
    if (coppa === '1') return done(empty('coppa'));
    if (!mayPersonalise(parseConsent(consentIn, unknownGdprApplies), config.gvlVendorId)) return done(empty('consent'));
    const uid = readUid(cookie, cs);
    if (uid === null) return done(empty('no_uid'));
    const pubLicence = licenceOf(pub);
    if (pubLicence === undefined) return done(empty('no_publisher'));

    const n = reader.read(uid, ANONYMOUS, nowSeconds());
    if (all.length < n) {
      all = new Uint32Array(n * 2);
      work = new Uint32Array(n * 2);
    }
    all.set(reader.ids.subarray(0, n));
    const k = share(pubLicence, n);
    const global = work.slice(0, k);
    const globalSet = new Licence(pub, false, global);
    // The Data objects as OpenRTB JSON, written by the one encoder enrichment uses.
    const dataJson = (ids: Uint32Array, count: number): string | null => {
      if (userData.group(ids, count) === 0) return null;
      userData.writeData(out);
      return out.view().toString('utf8');
    };
    const data = dataJson(global, k) ?? '[]';
    const gam = gamAnswer(out, gamPrefix, global, k, config.gamMaxBytes).toString('latin1', gamPrefix.length);
    const bidders: string[] = [];
    const seen = new Set<string>();
    if (biddersParam !== '')
      for (const b of biddersParam.split(',')) {
        if (!site.partners.includes(b) || seen.has(b)) continue;
        seen.add(b);
        const licence = licenceOf(b);
        if (licence === undefined) continue;
        const kb = share(licence, n, globalSet);
        const extra = dataJson(work, kb);
        if (extra !== null) bidders.push(`${JSON.stringify(b)}:${extra}`);
      }
    const targeting = gam === '' ? '{}' : `{${JSON.stringify(config.gamKey)}:${JSON.stringify(gam)}}`;
    const body = `{"data":${data},"bidders":{${bidders.join(',')}},"targeting":${targeting}}`;
    head(res, 200, origin);
    res.writeHeader(CT, JSON_TYPE).end(body);
    done(200);
  };

  return { get, preflight };
}
