// GET /v1/segments?uid=U — the hot path. Also by any id of the ID graph
// (partner=&puid=, ifa=, eid_source=&eid=, login=): one more get. The
// answer's "uid" is what the caller may see of the segd uid (lookup/reveal.ts:
// the uid as sent; for graph ids only admin keys, or a partner's own uid).
// Synchronous from request to answer: read the query and headers, check the
// caller (partner key → licence), read (lookup/read.ts: one LMDB get from the
// memory map, filtered by licence in place), encode, end. By uid, a hot user's
// encoded answer may come from the worker's hot answers (lookup/hot-answers.ts).
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { checkUid } from '../../identity/uid.js';
import { secondsAt } from '../../lookup/segments.js';
import { pickFormat, answerIn, keyPrefix, AnswerBuffer, FORMATS, type Format } from '../format.js';
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
import { queryParam } from '../query.js';
import { ReadPath } from '../../lookup/read.js';
import { HotAnswers } from '../../lookup/hot-answers.js';
import { shownUid } from '../../lookup/reveal.js';

export function segmentsRoute(deps: AppDeps) {
  const { lookup, metrics, config, state, graph, callers, admission, capture } = deps;
  const keys = { kv: keyPrefix(config.kvKey), gam: keyPrefix(config.gamKey), gamMaxBytes: config.gamMaxBytes };
  const m = metrics.route('segments');
  const maxUid = config.maxUidBytes;
  const out = new AnswerBuffer();
  const hot = config.hotAnswers > 0 ? HotAnswers.of(state.flags, config.hotAnswers) : null;
  const reader = new ReadPath(lookup, graph, metrics, hot);
  const send = (res: HttpResponse, format: Format, body: Buffer): number => {
    // While draining, ask keep-alive clients to reconnect (to another node).
    const close = state.get(Flag.Draining);
    if (format === 'json') return sendBody(res, 200, JSON_TYPE, body, close);
    if (format === 'msgpack') return sendBody(res, 200, MSGPACK_TYPE, body, close);
    // Readable by the on-page snippet (a simple GET: no preflight).
    if (format === 'gam') res.writeHeader(ALLOW_ORIGIN, ANY_ORIGIN);
    return sendBody(res, 200, TEXT_TYPE, body, close);
  };

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    let st: number;
    // Who is asking comes first: a 401/403 says nothing about the user.
    const licence = callers.licence(req.getHeader('authorization'));
    if (licence === null) return m.observe(sendError(res, 'UNAUTHORIZED'), (performance.now() - t0) / 1000);
    // The query as sent: its values are found in it (http/query.ts), and it is what a capture keeps.
    const query = req.getQuery() ?? '';
    const named = queryParam(req, query, 'partner');
    if (named !== undefined && licence.partner !== '' && named !== licence.partner) {
      return m.observe(sendError(res, 'FORBIDDEN'), (performance.now() - t0) / 1000);
    }
    if (admission.overloaded()) {
      metrics.shed('segments', 'overload');
      return m.observe(sendEmpty(res, 'overload'), (performance.now() - t0) / 1000);
    }
    const uid = queryParam(req, query, 'uid');
    // Accept is read only when ?format= is absent (it decides nothing then): one string less.
    const formatParam = queryParam(req, query, 'format');
    const format = pickFormat(formatParam, formatParam ? '' : req.getHeader('accept'));
    // Off: one null check. The query as sent carries the key and the format.
    if (capture !== null && capture.sample()) capture.lookup(query, licence.partner, format ?? '');
    // Not by uid: by a graph id, resolved to the segd uid of its profile.
    let byGraph: { key: string } | { problem: string } | null = null;
    if (uid === undefined || uid === '') byGraph = readGraphKey(req, query, maxUid);
    const problem = byGraph === null ? checkUid(uid, maxUid) : null;
    if (problem !== null) {
      st = sendError(res, problem);
    } else if (byGraph !== null && 'problem' in byGraph) {
      st = sendError(res, 'BAD_ID_KEY', byGraph.problem);
    } else if (format === null) {
      st = sendError(res, 'BAD_FORMAT');
    } else if (byGraph === null) {
      // By segd uid: the answer may be remembered (lookup/hot-answers.ts).
      const nowSec = secondsAt(t0);
      const variant = FORMATS.indexOf(format);
      let body = reader.remembered(uid as string, licence, variant, nowSec);
      if (body === undefined) {
        const count = reader.read(uid as string, licence, nowSec);
        const who = shownUid(licence, 'uid', uid as string, reader.profile, graph);
        body = answerIn(format, out, keys, who, reader.ids, count);
        reader.keep(variant, body);
      }
      st = send(res, format, body);
    } else {
      const count = reader.read(graph.resolveKey(byGraph.key), licence, secondsAt(t0));
      const who = shownUid(licence, named !== undefined ? 'own' : 'graph', null, reader.profile, graph);
      st = send(res, format, answerIn(format, out, keys, who, reader.ids, count));
    }
    m.observe(st, (performance.now() - t0) / 1000);
  };
}
