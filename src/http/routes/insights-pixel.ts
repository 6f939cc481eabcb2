// GET /px?c=<campaign>&e=imp|click|conv[&s=<site>&cr=<creative>][&gdpr=…&f=n]
// — the exposure pixel on an ad tag: the browser's segd uid (read from its
// cookie, or set now, as /sync/in does) joins the exposure segment of
// (campaign, event) (loader/exposures.ts). Privacy first, as /sync/in: the
// opt-out cookie, then consent; a request that may not store gets a 204 with
// nothing written and no cookie. The write is queued to the writer in
// batches; the answer (a 1×1 GIF, or 204 with f=n) does not wait for it.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { sendError, status, CT } from '../respond.js';
import { parseConsent, mayStore } from '../../privacy/consent.js';
import { readUid, isOptedOut, newUid, uidCookieOf, cookieSettings } from '../../identity/cookie.js';
import { EXPOSURE_EVENTS, type ExposureEvent } from '../../loader/exposures.js';
import { queryParam } from '../query.js';
import { PIXEL, consentQuery, noop } from './sync.js';

/** A campaign id: what ad servers put in a macro, without room for markup. */
const CAMPAIGN = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Site and creative ids are checked the same way; kept for the log, not stored. */
const OPTIONAL_ID = /^[A-Za-z0-9_.:-]{0,64}$/;

export function pixelRoute(deps: AppDeps) {
  const { config } = deps;
  const m = deps.metrics.route('insights');
  const cs = cookieSettings(config);
  // Its attributes formatted once, not on every hit (≈ 0.7% of the worker's CPU on /px: perf, 20k hits/s).
  const setCookie = uidCookieOf(cs);
  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const cookie = req.getHeader('cookie');
    if (isOptedOut(cookie, cs)) return done(noop(res));
    // One native read of the query, searched in JS for its ten keys (http/query.ts).
    const q = req.getQuery() ?? '';
    const campaign = queryParam(req, q, 'c') ?? '';
    const event = queryParam(req, q, 'e') ?? '';
    if (!CAMPAIGN.test(campaign)) return done(sendError(res, 'BAD_PIXEL', 'c must be 1-64 of A-Z a-z 0-9 _ . : -'));
    if (!(EXPOSURE_EVENTS as readonly string[]).includes(event))
      return done(sendError(res, 'BAD_PIXEL', 'e must be imp, click or conv'));
    if (!OPTIONAL_ID.test(queryParam(req, q, 's') ?? '') || !OPTIONAL_ID.test(queryParam(req, q, 'cr') ?? ''))
      return done(sendError(res, 'BAD_PIXEL', 's and cr must be 0-64 of A-Z a-z 0-9 _ . : -'));
    if (!mayStore(parseConsent(consentQuery(req, q)), config.gvlVendorId)) return done(noop(res));
    const uid = readUid(cookie, cs) ?? newUid();
    if (!deps.exposures.push({ campaign, event: event as ExposureEvent, uid })) return done(noop(res));
    const f = queryParam(req, q, 'f');
    res
      .writeStatus(status(f === 'n' ? 204 : 200))
      .writeHeader('Cache-Control', 'no-store')
      .writeHeader('Set-Cookie', setCookie(uid));
    if (f === 'n') res.end();
    else res.writeHeader(CT, 'image/gif').end(PIXEL);
    done(f === 'n' ? 204 : 200);
  };
}
