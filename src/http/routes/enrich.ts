// POST /openrtb2/enrich[?mode=data] — an OpenRTB 2.6 BidRequest in, the same
// request out with the caller's licensed segments in `user.data` (or, with
// mode=data, only the Data objects segd adds). Whenever there is nothing to
// add — no personalisation allowed, unknown user, nothing licensed, past the
// time budget, overloaded — the answer is 204 with `X-Segd-Empty: <reason>`:
// the caller goes on with the request it already has.
import { isUtf8, Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { readBody } from '../body.js';
import { pending } from '../pending.js';
import { sendError, sendBody, sendEmpty, JSON_TYPE } from '../respond.js';
import { nowSeconds } from '../../lookup/segments.js';
import { ReadPath } from '../../lookup/read.js';
import { readBidRequest } from '../../openrtb/bid-request.js';
import { BidRequestScanner } from '../../openrtb/scan.js';
import { UserData } from '../../openrtb/user-data.js';
import { Refusals } from '../../openrtb/refusals.js';
import { AnswerBuffer } from '../format.js';
import type { Licence } from '../../lookup/licences.js';
import { Flag } from '../../shared-state.js';
import type { EnrichOutcome } from '../../metrics/http.js';

export function enrichRoute(deps: AppDeps) {
  const { lookup, metrics, config, state, inflight, log, callers, admission, resolver, registry, graph } = deps;
  const m = metrics.route('enrich');
  const reader = new ReadPath(lookup, graph, metrics);
  const userData = new UserData(registry, config.dmpDomain);
  // The request is scanned and copied around our user.data, not parsed and
  // re-serialised (openrtb/scan.ts has the measured gain).
  const scanner = new BidRequestScanner(config.dmpDomain);
  const out = new AnswerBuffer();
  const refusals = new Refusals({ gvlVendorId: config.gvlVendorId, gdprApplies: config.gdprDefault === 'applies' });

  const finish = (t0: number, st: number) => m.observe(st, (performance.now() - t0) / 1000);
  const empty = (res: HttpResponse, outcome: EnrichOutcome, close = false) => {
    metrics.enriched(outcome);
    if (outcome === 'deadline' || outcome === 'overload') metrics.shed('enrich', outcome);
    return sendEmpty(res, outcome, close);
  };
  const aborted = () => metrics.aborted();
  // The request whose body just arrived, for `write` (settle corks it at once,
  // so one is in flight at a time): no closure per request for the answer.
  const cur = {
    res: null as unknown as HttpResponse,
    body: EMPTY_BODY,
    licence: null as unknown as Licence,
    dataOnly: false,
    t0: 0,
    close: false,
  };
  const write = (): void => {
    const { res, close, t0 } = cur;
    let st: number;
    try {
      st = answer(res, cur.body, cur.licence, cur.dataOnly, t0, close);
    } catch (err) {
      log.error({ err }, 'enrichment failed');
      st = sendError(res, 'INTERNAL', undefined, close);
    }
    finish(t0, st);
  };

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const licence = callers.licence(req.getHeader(AUTHORIZATION));
    if (licence === null) return finish(t0, sendError(res, 'UNAUTHORIZED', undefined, true));
    const mode = req.getQuery('mode');
    if (mode !== undefined && mode !== 'data') return finish(t0, sendError(res, 'BAD_MODE', undefined, true));
    const ctype = req.getHeader(CONTENT_TYPE);
    if (ctype !== '' && !ctype.startsWith('application/json')) {
      return finish(t0, sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'enrichment takes application/json', true));
    }
    if (admission.overloaded()) return finish(t0, empty(res, 'overload', true)); // body unread: close

    const p = pending(res, inflight, aborted);
    readBody(
      res,
      req.getHeader(CONTENT_LENGTH),
      config.maxBodyBytes,
      (r) => {
        if (!r.ok) {
          p.settle(() => finish(t0, sendError(res, 'BODY_TOO_LARGE', `limit is ${config.maxBodyBytes} bytes`, true)));
          return;
        }
        cur.res = res;
        cur.body = r.body;
        cur.licence = licence;
        cur.dataOnly = mode === 'data';
        cur.t0 = t0;
        cur.close = state.get(Flag.Draining);
        p.settle(write);
        cur.body = EMPTY_BODY; // borrowed: not kept past the answer
      },
      true,
    ); // borrowed: the answer is written before the callback returns
  };

  function answer(
    res: HttpResponse,
    body: Buffer,
    licence: Licence,
    dataOnly: boolean,
    t0: number,
    close: boolean,
  ): number {
    // A document the scan accepts as all ASCII is UTF-8: the check is made
    // only for the others (isUtf8 was 0.7% of the worker's JS samples,
    // bench:cpu --prof).
    const scanned = scanner.scan(body);
    if ((!scanned || !scanner.ascii) && !isUtf8(body)) return sendError(res, 'BAD_JSON', 'not UTF-8', close);
    if (!scanned) return sendError(res, 'BAD_JSON', syntaxError(body, scanner.errorAt), close);
    const br = readBidRequest(scanner, licence.partner || null);
    if (br === null) return sendError(res, 'BAD_BID_REQUEST', undefined, close);
    // The budget runs from when segd saw the request; tmax (the whole auction's) can only lower it.
    const deadline = t0 + Math.min(config.enrichBudgetMs, br.tmax ?? Infinity);
    if (performance.now() >= deadline) return empty(res, 'deadline', close);
    const refusal = refusals.of(scanner, br);
    if (refusal !== null) return empty(res, refusal, close);

    // The same read as every route. The resolved uid is never written into
    // the request: only user.data changes.
    const n = reader.read(resolver.resolve(br.keys), licence, nowSeconds());
    if (userData.group(reader.ids, n) === 0) return empty(res, 'empty', close);
    if (dataOnly) userData.writeData(out);
    else userData.writeEnriched(out, body, scanner);
    if (performance.now() >= deadline) return empty(res, 'deadline', close);
    metrics.enriched('enriched');
    return sendBody(res, 200, JSON_TYPE, out.view(), close);
  }
}

const EMPTY_BODY: Buffer = Buffer.alloc(0);

// Header names as bytes: uWS converts a string key to UTF-8 on every call
// (getHeader 75 → 63 ns a call, in a uWS handler, best of 5 × 200k).
const AUTHORIZATION = Buffer.from('authorization');
const CONTENT_TYPE = Buffer.from('content-type');
const CONTENT_LENGTH = Buffer.from('content-length');

/** JSON.parse's message for malformed JSON: the answer names the fault as JSON.parse words it. */
function syntaxError(body: Buffer, at: number): string {
  try {
    JSON.parse(body.toString('utf8'));
  } catch (err) {
    return (err as Error).message;
  }
  return `malformed JSON at byte ${at}`;
}
