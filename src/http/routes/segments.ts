// GET /v1/segments?uid=U — the hot path. Synchronous from request to answer:
// read the query and headers, one LMDB get from the memory map, encode, end.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { checkUid } from '../../lookup/keys.js';
import { nowSeconds } from '../../lookup/segments.js';
import { pickFormat, jsonAnswer, msgpackAnswer, kvAnswer } from '../format.js';
import { sendError, sendBody, JSON_TYPE, MSGPACK_TYPE, TEXT_TYPE } from '../respond.js';
import { Flag } from '../../server/state.js';

export function segmentsRoute(deps: AppDeps) {
  const { lookup, metrics, config, state } = deps;
  const m = metrics.route('segments');
  const maxUid = config.maxUidBytes;
  const kvKey = config.kvKey;

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const uid = req.getQuery('uid');
    const format = pickFormat(req.getQuery('format'), req.getHeader('accept'));
    let st: number;
    const problem = checkUid(uid, maxUid);
    if (problem !== null) {
      st = sendError(res, problem);
    } else if (format === null) {
      st = sendError(res, 'BAD_FORMAT');
    } else {
      const n = lookup.find(uid as string, nowSeconds());
      if (n < 0) metrics.miss();
      else metrics.hit();
      const count = n < 0 ? 0 : n;
      const ids = lookup.ids;
      // While draining, ask keep-alive clients to reconnect (to another node).
      const close = state.get(Flag.Draining);
      if (format === 'json') st = sendBody(res, 200, JSON_TYPE, jsonAnswer(uid as string, ids, count), close);
      else if (format === 'kv') st = sendBody(res, 200, TEXT_TYPE, kvAnswer(kvKey, ids, count), close);
      else st = sendBody(res, 200, MSGPACK_TYPE, msgpackAnswer(uid as string, ids, count), close);
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };
}
