// Cookie sync.
//
//   GET /sync/in?partner=P&puid=X&gdpr=&gdpr_consent=&us_privacy=&gpp=&gpp_sid=&f=i|b|n[&ts=&sig=]
//       (sig: identity/signature.ts — bound to this browser's segd uid)
//       A partner's pixel sends the browser here with its own uid: the segd
//       cookie is read or created and partner uid → segd uid goes to the ID
//       graph. Answers a 1×1 GIF (f=i, default), an empty 200 HTML (f=b) or a
//       204 (f=n) — never a redirect.
//   GET|POST /sync/out   the partners this browser should sync with now, their
//       URLs filled from their registered templates (JSON, like Prebid
//       Server's /cookie_sync).
//   GET /sync/script.js  a script for a page: adds a hidden iframe on segd's
//       origin, /sync/frame.html, which holds the same list and fires it, so
//       the page never sees the uid (identity/sync-frame.ts).
//
// Privacy first, as Prebid Server's /setuid: opt-out cookie, then consent,
// then anything else. A request that may not store or sync gets a fast
// no-op (204, no cookie, no write) — never an error, never a 5xx.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import type { Partner } from '../../partners/types.js';
import { sendError, sendBody, status, CT, JSON_TYPE } from '../respond.js';
import type { SyncOutcome } from '../../metrics/http.js';
import { readBody } from '../body.js';
import { queryParam } from '../query.js';
import { pending } from '../pending.js';
import { checkUid } from '../../identity/uid.js';
import { nowSeconds } from '../../lookup/segments.js';
import { parseConsent, mayStore, maySync, type Consent, type ConsentInput } from '../../privacy/consent.js';
import { partnerKey } from '../../identity/graph-keys.js';
import { checkSignature } from '../../identity/signature.js';
import { TemplateCache, type MacroValues } from '../../identity/sync-template.js';
import { LOADER_SCRIPT, FRAME_CSP, frameHtml } from '../../identity/sync-frame.js';
import { readUid, isOptedOut, newUid, uidCookie, cookieSettings, type CookieSettings } from '../../identity/cookie.js';

/** The smallest valid transparent 1×1 GIF. */
export const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
const NO_STORE = 'no-store';

/**
 * Consent fields from the query (copied synchronously: uWS requests live on
 * the stack), read from its raw query `raw` (http/query.ts) when the caller
 * has it.
 */
export function consentQuery(req: HttpRequest, raw: string = req.getQuery() ?? ''): ConsentInput {
  return {
    gdpr: queryParam(req, raw, 'gdpr'),
    gdprConsent: queryParam(req, raw, 'gdpr_consent'),
    usPrivacy: queryParam(req, raw, 'us_privacy'),
    gpp: queryParam(req, raw, 'gpp'),
    gppSid: queryParam(req, raw, 'gpp_sid'),
  };
}

/**
 * Partner uids that are not ids: unfilled macros and "not recognised"
 * sentinels (Audience Network's "0", Prebid Server #106). Stored, they would
 * join every browser that sends them into one profile.
 */
const PLACEHOLDER =
  /^(0|-1|null|undefined|none|nil|\$\{?[A-Za-z_]+\}?|\{\{?[A-Za-z_.]+\}?\}|\[[A-Za-z_]+\]|%[A-Za-z_]+%)$/i;

/** A no-op answer: nothing stored, no cookie. */
export function noop(res: HttpResponse): number {
  res.writeStatus(status(204)).writeHeader('Cache-Control', NO_STORE).end();
  return 204;
}

export function syncInRoute(deps: AppDeps) {
  const { config, registry, matches } = deps;
  const m = deps.metrics.route('sync');
  const outcomes = deps.metrics.sync;
  const cs = cookieSettings(config);

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const outcome = (o: SyncOutcome<'in'>, st: number) => {
      outcomes.record('in', o);
      done(st);
    };
    const cookie = req.getHeader('cookie');
    if (isOptedOut(cookie, cs)) return outcome('opted_out', noop(res));
    const pid = req.getQuery('partner') ?? '';
    const p = registry.partner(pid);
    if (!p || p.disabled || !p.sync) return outcome('bad_partner', sendError(res, 'SYNC_NOT_CONFIGURED'));
    const puid = req.getQuery('puid');
    const bad = checkUid(puid, config.maxUidBytes);
    if (bad !== null) return outcome('bad_uid', sendError(res, bad, 'puid'));
    if (PLACEHOLDER.test(puid!))
      return outcome('bad_uid', sendError(res, 'UID_INVALID', 'puid is a placeholder, not a user id'));
    const consent = parseConsent(consentQuery(req));
    if (!mayStore(consent, config.gvlVendorId)) return outcome('no_consent', noop(res));
    if (!maySync(consent)) return outcome('privacy_blocked', noop(res));
    const known = readUid(cookie, cs);
    const key = p.sync.hmacKey;
    if (key !== null) {
      // Bound to the browser's own uid: a callback made for another browser does not verify here.
      const why = checkSignature(
        key,
        p.id,
        puid!,
        req.getQuery('ts') ?? '',
        req.getQuery('sig') ?? '',
        nowSeconds(),
        config.syncSignatureWindow,
        known,
      );
      if (why !== 'ok')
        return outcome(
          'bad_signature',
          sendError(
            res,
            'BAD_SIGNATURE',
            why === 'no_uid' ? 'no segd uid in this browser: a signed callback must answer a segd-initiated sync' : why,
          ),
        );
    }
    const f = req.getQuery('f');
    const uid = known ?? newUid();
    if (!matches.push({ key: partnerKey(p.id, puid!), uid })) return outcome('overloaded', noop(res));
    res
      .writeStatus(status(f === 'n' ? 204 : 200))
      .writeHeader('Cache-Control', NO_STORE)
      .writeHeader('Set-Cookie', uidCookie(cs, uid));
    if (f === 'n') res.end();
    else if (f === 'b') res.writeHeader(CT, 'text/html; charset=utf-8').end('');
    else res.writeHeader(CT, 'image/gif').end(PIXEL);
    outcome('stored', f === 'n' ? 204 : 200);
  };
}

interface OutRequest {
  consent: ConsentInput;
  /** Partner ids asked for; null = every partner with sync set up. */
  partners: string[] | null;
  limit: number | null;
  cookie: string;
}

type PartnerStatus = { partner: string; status: string; usersync?: { url: string; type: string } };

interface OutAnswer {
  status: 'ok' | 'opted_out' | 'no_consent' | 'privacy_blocked';
  partners: PartnerStatus[];
  /** Set-Cookie values to send. */
  cookies: string[];
}

/** The outbound sync decision, shared by /sync/out and /sync/frame.html. */
function planSync(deps: AppDeps, templates: TemplateCache, cs: CookieSettings, r: OutRequest): OutAnswer {
  const { config, registry } = deps;
  const asked =
    r.partners ??
    registry
      .partners()
      .filter((p) => p.sync && !p.disabled)
      .map((p) => p.id);
  const all = (st: string) => asked.map((partner) => ({ partner, status: st }));
  if (isOptedOut(r.cookie, cs)) return { status: 'opted_out', partners: all('opted_out'), cookies: [] };
  const consent: Consent = parseConsent(r.consent);
  if (!mayStore(consent, config.gvlVendorId))
    return { status: 'no_consent', partners: all('blocked_by_consent'), cookies: [] };
  if (!maySync(consent)) return { status: 'privacy_blocked', partners: all('blocked_by_privacy'), cookies: [] };
  const known = readUid(r.cookie, cs);
  const uid = known ?? newUid();
  const times = known !== null ? deps.graph.syncTimes(known) : {};
  const now = nowSeconds();
  const limit = Math.min(r.limit ?? config.syncLimit, config.syncLimit);
  const values: MacroValues = {
    UID: uid,
    GDPR: consent.gdprApplies ? '1' : '0',
    GDPR_CONSENT: r.consent.gdprConsent ?? '',
    US_PRIVACY: r.consent.usPrivacy ?? '',
    GPP: r.consent.gpp ?? '',
    GPP_SID: r.consent.gppSid ?? '',
  };
  let n = 0;
  const seen = new Set<string>();
  const out: PartnerStatus[] = [];
  for (const id of asked) {
    if (seen.has(id)) continue;
    seen.add(id);
    const p: Partner | undefined = registry.partner(id);
    if (!p) out.push({ partner: id, status: 'unknown_partner' });
    else if (p.disabled || !p.sync) out.push({ partner: id, status: 'not_configured' });
    else if (now - (times[id] ?? -Infinity) < config.syncIntervalSeconds)
      out.push({ partner: id, status: 'already_synced' });
    else if (n >= limit) out.push({ partner: id, status: 'over_limit' });
    else {
      const t = templates.get(p.id, p.sync.url, registry.version);
      if (t === null) out.push({ partner: id, status: 'not_configured' });
      else {
        out.push({ partner: id, status: 'ok', usersync: { url: t.fill(values), type: p.sync.type } });
        n++;
      }
    }
  }
  return { status: 'ok', partners: out, cookies: [uidCookie(cs, uid)] };
}

const LIST = /^[a-z0-9_,-]{0,4100}$/;

/** `partners=a,b` or `*`; `limit=N`. Null = malformed. */
function readOutParams(partners: unknown, limit: unknown): { partners: string[] | null; limit: number | null } | null {
  let list: string[] | null = null;
  if (Array.isArray(partners)) {
    if (partners.length > 200 || !partners.every((x) => typeof x === 'string' && /^[a-z0-9_-]{1,40}$/.test(x)))
      return null;
    list = partners as string[];
  } else if (typeof partners === 'string' && partners !== '' && partners !== '*') {
    if (!LIST.test(partners)) return null;
    list = partners.split(',').filter(Boolean);
  } else if (partners !== undefined && partners !== '' && partners !== '*') return null;
  let lim: number | null = null;
  if (limit !== undefined && limit !== '') {
    // Types first: String() of a caller's nested array recurses without bound.
    const n =
      typeof limit === 'number' ? limit : typeof limit === 'string' && /^\d{1,4}$/.test(limit) ? Number(limit) : NaN;
    if (!Number.isInteger(n) || n < 1) return null;
    lim = n;
  }
  return { partners: list, limit: lim };
}

const GPP_SID = /^(?:\d{1,5}(?:,\d{1,5}){0,63})?$/;

/**
 * `gpp_sid` of a POST body: a string like "2,6", or an array of section ids
 * (Prebid Server #3787) joined into that string. Checked by type and size
 * before any join: an array's join (or String()) recurses into nested arrays
 * without bound. Undefined = absent; null = malformed.
 */
function readGppSid(v: unknown): string | undefined | null {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return GPP_SID.test(v) ? v : null;
  if (!Array.isArray(v) || v.length > 64) return null;
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 65_535) return null;
    out += (i ? ',' : '') + x;
  }
  return out;
}

function writeCookies(res: HttpResponse, cookies: string[]): void {
  for (const c of cookies) res.writeHeader('Set-Cookie', c);
}

function outJson(a: OutAnswer): string {
  return JSON.stringify({ status: a.status, partners: a.partners });
}

export function syncOutRoutes(deps: AppDeps) {
  const { config } = deps;
  const m = deps.metrics.route('sync');
  const cs = cookieSettings(config);
  const templates = new TemplateCache();
  const plan = (r: OutRequest): OutAnswer => {
    const a = planSync(deps, templates, cs, r);
    deps.metrics.sync.record('out', a.status);
    return a;
  };
  const badRequest = (res: HttpResponse, detail: string) => {
    deps.metrics.sync.record('out', 'bad_request');
    return sendError(res, 'BAD_SYNC_REQUEST', detail);
  };

  const get = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const params = readOutParams(req.getQuery('partners'), req.getQuery('limit'));
    let st: number;
    if (params === null)
      st = badRequest(res, 'partners must be "*" or a comma-separated list of partner ids; limit a positive integer');
    else {
      const a = plan({ consent: consentQuery(req), ...params, cookie: req.getHeader('cookie') });
      res.writeHeader('Cache-Control', NO_STORE);
      writeCookies(res, a.cookies);
      st = sendBody(res, 200, JSON_TYPE, outJson(a));
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };

  /** POST: a JSON body like Prebid Server's /cookie_sync: {"partners":[…]|"*","limit":N,"gdpr":1,"gdpr_consent":"…","us_privacy":"…","gpp":"…","gpp_sid":"2,6"}. */
  const post = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const done = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const cookie = req.getHeader('cookie');
    const p = pending(res, deps.inflight, () => deps.metrics.aborted());
    readBody(res, req.getHeader('content-length'), Math.min(config.maxBodyBytes, 65_536), (r) => {
      p.settle(() => {
        if (!r.ok) return done(sendError(res, 'BODY_TOO_LARGE', undefined, true));
        let body: Record<string, unknown>;
        try {
          const v: unknown = r.body.length ? JSON.parse(r.body.toString('utf8')) : {};
          if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
          body = v as Record<string, unknown>;
        } catch {
          deps.metrics.sync.record('out', 'bad_request');
          return done(sendError(res, 'BAD_JSON', 'the body must be a JSON object'));
        }
        const params = readOutParams(body.partners, body.limit);
        if (params === null)
          return done(badRequest(res, 'partners must be "*" or an array of partner ids; limit a positive integer'));
        const sid = readGppSid(body.gpp_sid);
        if (sid === null)
          return done(
            badRequest(res, 'gpp_sid must be an array of section ids (integers 0-65535) or a string like "2,6"'),
          );
        const str = (v: unknown) =>
          v === undefined || v === null
            ? undefined
            : typeof v === 'string'
              ? v
              : typeof v === 'number'
                ? String(v)
                : '\u0000';
        const consent = {
          gdpr: str(body.gdpr),
          gdprConsent: str(body.gdpr_consent),
          usPrivacy: str(body.us_privacy),
          gpp: str(body.gpp),
          gppSid: sid,
        };
        const a = plan({ consent, ...params, cookie });
        res.writeHeader('Cache-Control', NO_STORE);
        writeCookies(res, a.cookies);
        done(sendBody(res, 200, JSON_TYPE, outJson(a)));
      });
    });
  };

  /**
   * A script tag's worth of sync: `<script async src="https://segd.example/sync/script.js?gdpr=…&gdpr_consent=…"></script>`.
   * The same script for every browser (identity/sync-frame.ts): it only adds the frame.
   */
  const script = (res: HttpResponse): void => {
    const t0 = performance.now();
    res.writeHeader('Cache-Control', 'public, max-age=3600').writeHeader('X-Content-Type-Options', 'nosniff');
    const st = sendBody(res, 200, 'application/javascript; charset=utf-8', LOADER_SCRIPT);
    m.observe(st, (performance.now() - t0) / 1000);
  };

  /** The frame on segd's origin that holds this browser's sync list and fires it. */
  const frame = (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const params = readOutParams(req.getQuery('partners'), req.getQuery('limit')) ?? { partners: [], limit: null };
    const a = plan({ consent: consentQuery(req), ...params, cookie: req.getHeader('cookie') });
    const list = a.partners.filter((x) => x.usersync).map((x) => x.usersync!);
    res
      .writeHeader('Cache-Control', NO_STORE)
      .writeHeader('Content-Security-Policy', FRAME_CSP)
      .writeHeader('X-Content-Type-Options', 'nosniff')
      .writeHeader('Referrer-Policy', 'no-referrer');
    writeCookies(res, a.cookies);
    const st = sendBody(res, 200, 'text/html; charset=utf-8', frameHtml(list));
    m.observe(st, (performance.now() - t0) / 1000);
  };

  return { get, post, script, frame };
}
