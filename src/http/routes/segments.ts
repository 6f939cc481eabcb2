// GET /v1/segments?uid=U (or ?partner=P&puid=X, or ?ifa=D) — the hot path.
// Synchronous from request to answer: read the query and headers, check the
// caller, one LMDB get from the memory map, filter by licence in place, encode, end.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { checkUid } from '../../lookup/keys.js';
import { nowSeconds } from '../../lookup/segments.js';
import { pickFormat, jsonAnswer, msgpackAnswer, kvAnswer, gamAnswer } from '../format.js';
import { sendError, sendBody, sendEmpty, JSON_TYPE, MSGPACK_TYPE, TEXT_TYPE } from '../respond.js';
import { Flag } from '../../server/state.js';
import type { ErrorCode } from '../../errors.js';

export function segmentsRoute(deps: AppDeps) {
  const { lookup, metrics, config, state, callers, admission, resolver } = deps;
  const m = metrics.route('segments');
  const maxUid = config.maxUidBytes;
  const kvKey = config.kvKey;
  const gamKey = config.gamKey;
  const gamMax = config.gamMaxBytes;

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const licence = callers.licence(req.getHeader('authorization'));
    let st: number;
    if (licence === null) {
      st = sendError(res, 'UNAUTHORIZED');
    } else if (admission.overloaded()) {
      metrics.shed('segments', 'overload');
      st = sendEmpty(res, 'overload');
    } else {
      // `asked` is echoed back; `uid` is the segd user it resolved to ('' = none).
      let asked = req.getQuery('uid');
      let uid = asked;
      let problem: ErrorCode | null = null;
      if (asked === undefined) {
        // The other key kinds go through the ID graph; the caller may only name itself.
        const partner = req.getQuery('partner');
        const puid = req.getQuery('puid');
        const ifa = req.getQuery('ifa');
        if (puid !== undefined && partner !== undefined && partner !== licence.partner) problem = 'FORBIDDEN';
        else if (puid !== undefined || ifa !== undefined) {
          asked = puid ?? ifa;
          problem = checkUid(asked, maxUid);
          if (problem === null) uid = resolver.resolve({ partner: licence.partner || null, buyeruid: puid, ifa }) ?? '';
        } else problem = 'UID_MISSING';
      } else problem = checkUid(asked, maxUid);
      const format = pickFormat(req.getQuery('format'), req.getHeader('accept'));
      if (problem !== null) {
        st = sendError(res, problem);
      } else if (format === null) {
        st = sendError(res, 'BAD_FORMAT');
      } else {
        // '' = a partner/device key that resolves to no segd user: an unknown user.
        let n = uid === '' ? -1 : lookup.find(uid as string, nowSeconds());
        if (n < 0) metrics.miss();
        else metrics.hit();
        const ids = lookup.ids;
        n = licence.filter(ids, n < 0 ? 0 : n);
        // While draining, ask keep-alive clients to reconnect (to another node).
        const close = state.get(Flag.Draining);
        const key = asked as string;
        if (format === 'json') st = sendBody(res, 200, JSON_TYPE, jsonAnswer(key, ids, n), close);
        else if (format === 'kv') st = sendBody(res, 200, TEXT_TYPE, kvAnswer(kvKey, ids, n), close);
        else if (format === 'gam') {
          // Readable by the on-page snippet (a simple GET: no preflight).
          res.writeHeader('Access-Control-Allow-Origin', '*');
          st = sendBody(res, 200, TEXT_TYPE, gamAnswer(gamKey, ids, n, gamMax), close);
        }
        else st = sendBody(res, 200, MSGPACK_TYPE, msgpackAnswer(key, ids, n), close);
      }
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };
}
