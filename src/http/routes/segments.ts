// GET /v1/segments?uid=U — the hot path. Also by any id of the ID graph
// (partner=&puid=, ifa=, eid_source=&eid=, login=): one more get, and the
// answer's "uid" is the segd uid it resolved to (null when unknown). Synchronous from request to answer:
// read the query and headers, check the caller (partner key → licence), one
// LMDB get from the memory map, filter by licence in place, encode, end.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { checkUid } from '../../lookup/keys.js';
import { nowSeconds } from '../../lookup/segments.js';
import { pickFormat, jsonAnswer, msgpackAnswer, kvAnswer, gamAnswer } from '../format.js';
import { sendError, sendBody, sendEmpty, JSON_TYPE, MSGPACK_TYPE, TEXT_TYPE } from '../respond.js';
import { Flag } from '../../server/state.js';
import { readGraphKey } from './id-query.js';

export function segmentsRoute(deps: AppDeps) {
  const { lookup, metrics, config, state, graph, callers, admission } = deps;
  const gamKey = config.gamKey;
  const gamMax = config.gamMaxBytes;
  const m = metrics.route('segments');
  const maxUid = config.maxUidBytes;
  const kvKey = config.kvKey;

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    let st: number;
    // Who is asking comes first: a 401/403 says nothing about the user.
    const licence = callers.licence(req.getHeader('authorization'));
    if (licence === null) return m.observe(sendError(res, 'UNAUTHORIZED'), (performance.now() - t0) / 1000);
    const named = req.getQuery('partner');
    if (named !== undefined && licence.partner !== '' && named !== licence.partner) {
      return m.observe(sendError(res, 'FORBIDDEN'), (performance.now() - t0) / 1000);
    }
    if (admission.overloaded()) {
      metrics.shed('segments', 'overload');
      return m.observe(sendEmpty(res, 'overload'), (performance.now() - t0) / 1000);
    }
    let uid = req.getQuery('uid');
    const format = pickFormat(req.getQuery('format'), req.getHeader('accept'));
    // Not by uid: by a graph id, resolved to the segd uid of its profile.
    let byGraph: { key: string } | { problem: string } | null = null;
    if (uid === undefined || uid === '') {
      byGraph = readGraphKey(req, maxUid);
      if (byGraph !== null && 'key' in byGraph) uid = graph.resolveKey(byGraph.key) ?? '';
    }
    const problem = byGraph === null ? checkUid(uid, maxUid) : null;
    if (problem !== null) {
      st = sendError(res, problem);
    } else if (byGraph !== null && 'problem' in byGraph) {
      st = sendError(res, 'BAD_ID_KEY', byGraph.problem);
    } else if (format === null) {
      st = sendError(res, 'BAD_FORMAT');
    } else {
      const now = nowSeconds();
      let n = uid === '' ? -1 : lookup.find(uid as string, now);
      // A device uid merged into another profile (cross-device linking) reads
      // as that profile. Merged uids are in the known-users filter, so a
      // filtered miss (most misses) skips this get.
      if (n < 0 && byGraph === null && !lookup.filtered) {
        const profile = graph.profileOf(uid as string);
        if (profile !== uid) n = lookup.find(profile, now);
      }
      if (n < 0) metrics.miss();
      else metrics.hit();
      const ids = lookup.ids;
      const count = licence.filter(ids, n < 0 ? 0 : n);
      // While draining, ask keep-alive clients to reconnect (to another node).
      const close = state.get(Flag.Draining);
      const who = uid === '' ? null : (uid as string);
      if (format === 'json') st = sendBody(res, 200, JSON_TYPE, jsonAnswer(who, ids, count), close);
      else if (format === 'kv') st = sendBody(res, 200, TEXT_TYPE, kvAnswer(kvKey, ids, count), close);
      else if (format === 'gam') {
        // Readable by the on-page snippet (a simple GET: no preflight).
        res.writeHeader('Access-Control-Allow-Origin', '*');
        st = sendBody(res, 200, TEXT_TYPE, gamAnswer(gamKey, ids, count, gamMax), close);
      }
      else st = sendBody(res, 200, MSGPACK_TYPE, msgpackAnswer(who, ids, count), close);
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };
}
