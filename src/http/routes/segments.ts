// GET /v1/segments?uid=U — the hot path. Also by any id of the ID graph
// (partner=&puid=, ifa=, eid_source=&eid=, login=): one more get. The
// answer's "uid" is what the caller may see of the segd uid (lookup/reveal.ts:
// the uid as sent; for graph ids only admin keys, or a partner's own uid).
// Synchronous from request to answer: read the query and headers, check the
// caller (partner key → licence), read (lookup/read.ts: one LMDB get from the
// memory map, filtered by licence in place), encode, end.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { checkUid } from '../../identity/uid.js';
import { nowSeconds } from '../../lookup/segments.js';
import { pickFormat, jsonAnswer, msgpackAnswer, kvAnswer, gamAnswer, keyPrefix, AnswerBuffer } from '../format.js';
import {
  sendError,
  sendBody,
  sendEmpty,
  JSON_TYPE,
  MSGPACK_TYPE,
  TEXT_TYPE,
  ALLOW_ORIGIN,
  ANY_ORIGIN,
} from '../respond.js';
import { Flag } from '../../shared-state.js';
import { readGraphKey } from './id-query.js';
import { ReadPath } from '../../lookup/read.js';
import { shownUid } from '../../lookup/reveal.js';

export function segmentsRoute(deps: AppDeps) {
  const { lookup, metrics, config, state, graph, callers, admission, capture } = deps;
  const gamPrefix = keyPrefix(config.gamKey);
  const gamMax = config.gamMaxBytes;
  const m = metrics.route('segments');
  const maxUid = config.maxUidBytes;
  const kvPrefix = keyPrefix(config.kvKey);
  const out = new AnswerBuffer();
  const reader = new ReadPath(lookup, graph, metrics);

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
    const uid = req.getQuery('uid');
    // Accept is read only when ?format= is absent (it decides nothing then): one string less.
    const formatParam = req.getQuery('format');
    const format = pickFormat(formatParam, formatParam ? '' : req.getHeader('accept'));
    // Off: one null check. The query as sent carries the key and the format.
    if (capture !== null && capture.sample()) capture.lookup(req.getQuery() ?? '', licence.partner, format ?? '');
    // Not by uid: by a graph id, resolved to the segd uid of its profile.
    let byGraph: { key: string } | { problem: string } | null = null;
    if (uid === undefined || uid === '') byGraph = readGraphKey(req, maxUid);
    const problem = byGraph === null ? checkUid(uid, maxUid) : null;
    if (problem !== null) {
      st = sendError(res, problem);
    } else if (byGraph !== null && 'problem' in byGraph) {
      st = sendError(res, 'BAD_ID_KEY', byGraph.problem);
    } else if (format === null) {
      st = sendError(res, 'BAD_FORMAT');
    } else {
      let count: number;
      let who: string | null;
      if (byGraph === null) {
        count = reader.read(uid as string, licence, nowSeconds());
        who = shownUid(licence, 'uid', uid as string, reader.profile, graph);
      } else {
        count = reader.read(graph.resolveKey(byGraph.key), licence, nowSeconds());
        who = shownUid(licence, named !== undefined ? 'own' : 'graph', null, reader.profile, graph);
      }
      const ids = reader.ids;
      // While draining, ask keep-alive clients to reconnect (to another node).
      const close = state.get(Flag.Draining);
      if (format === 'json') st = sendBody(res, 200, JSON_TYPE, jsonAnswer(out, who, ids, count), close);
      else if (format === 'kv') st = sendBody(res, 200, TEXT_TYPE, kvAnswer(out, kvPrefix, ids, count), close);
      else if (format === 'gam') {
        // Readable by the on-page snippet (a simple GET: no preflight).
        res.writeHeader(ALLOW_ORIGIN, ANY_ORIGIN);
        st = sendBody(res, 200, TEXT_TYPE, gamAnswer(out, gamPrefix, ids, count, gamMax), close);
      } else st = sendBody(res, 200, MSGPACK_TYPE, msgpackAnswer(out, who, ids, count), close);
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };
}
