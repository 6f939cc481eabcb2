// POST /v1/segments:batch — many keys in one request, answers in request order.
// Body: {"uids":[…]} as JSON or msgpack. A bad key fails only its own entry
// (an ad server batching 100 impressions should not lose 99 for one cookie).
import { isUtf8 } from 'node:buffer';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { unpack, pack } from 'msgpackr';
import type { AppDeps } from '../deps.js';
import { readBody } from '../body.js';
import { checkUid } from '../../lookup/keys.js';
import { nowSeconds } from '../../lookup/segments.js';
import { idList, pickFormat } from '../format.js';
import { sendError, sendBody, sendEmpty, JSON_TYPE, MSGPACK_TYPE } from '../respond.js';
import type { Licence } from '../../lookup/licences.js';
import { pending } from '../pending.js';
import { ERRORS, type ErrorCode } from '../../errors.js';
import { Flag } from '../../server/state.js';
import { graphKeyOf } from './id-query.js';

type BodyKind = 'json' | 'msgpack';

function bodyKind(contentType: string): BodyKind | null {
  if (contentType === '' || contentType.startsWith('application/json')) return 'json';
  if (contentType.startsWith('application/msgpack') || contentType.startsWith('application/x-msgpack')) return 'msgpack';
  return null;
}

export function batchRoute(deps: AppDeps) {
  const { lookup, metrics, config, state, inflight, log, graph, callers, admission } = deps;
  const m = metrics.route('batch');

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    // req is only valid now: copy what we need before the body arrives.
    const kind = bodyKind(req.getHeader('content-type'));
    const format = pickFormat(req.getQuery('format'), req.getHeader('accept'));
    const contentLength = req.getHeader('content-length');
    const finish = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const licence = callers.licence(req.getHeader('authorization'));

    if (licence === null) return finish(sendError(res, 'UNAUTHORIZED', undefined, true));
    if (admission.overloaded()) {
      metrics.shed('batch', 'overload');
      return finish(sendEmpty(res, 'overload', true)); // the body is left unread: close
    }
    if (kind === null) return finish(sendError(res, 'UNSUPPORTED_MEDIA_TYPE', undefined, true));
    if (format === null || format === 'kv' || format === 'gam') return finish(sendError(res, 'BAD_FORMAT', 'batch answers are json or msgpack', true));

    const p = pending(res, inflight, () => metrics.aborted());
    readBody(res, contentLength, config.maxBodyBytes, (r) => {
      const close = state.get(Flag.Draining);
      p.settle(() => {
        if (!r.ok) return finish(sendError(res, 'BODY_TOO_LARGE', `limit is ${config.maxBodyBytes} bytes`, true));
        let st: number;
        // One generation for the whole batch: a snapshot swap mid-batch must not mix data sets.
        lookup.pin();
        try {
          st = answer(res, r.body, kind, format, close, licence);
        } catch (err) {
          log.error({ err }, 'batch lookup failed');
          st = sendError(res, 'INTERNAL', undefined, close);
        } finally {
          lookup.unpin();
        }
        finish(st);
      });
    });
  };

  function answer(res: HttpResponse, body: Buffer, kind: BodyKind, format: 'json' | 'msgpack', close: boolean, licence: Licence): number {
    let doc: unknown;
    if (kind === 'json') {
      if (!isUtf8(body)) return sendError(res, 'BAD_JSON', 'not UTF-8', close);
      try {
        doc = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return sendError(res, 'BAD_JSON', (err as Error).message, close);
      }
    } else {
      try {
        doc = unpack(body);
      } catch (err) {
        return sendError(res, 'BAD_MSGPACK', (err as Error).message, close);
      }
    }
    let uids = doc !== null && typeof doc === 'object' ? (doc as { uids?: unknown }).uids : undefined;
    const keys = doc !== null && typeof doc === 'object' ? (doc as { keys?: unknown }).keys : undefined;
    // {"keys":[…]}: ids of the ID graph, resolved to segd uids first (errors stay per item).
    let keyErrors: Array<string | null> | null = null;
    if (uids === undefined && Array.isArray(keys) && keys.length <= config.maxBatchKeys) {
      keyErrors = new Array(keys.length).fill(null);
      uids = keys.map((k, i) => {
        const g = graphKeyOf(k, config.maxUidBytes);
        if ('problem' in g) {
          keyErrors![i] = g.problem;
          return null;
        }
        // A partner names only its own uids (anonymous callers, where allowed, are trusted).
        const named = (k as { partner?: unknown }).partner;
        if (licence.partner !== '' && named !== undefined && named !== licence.partner) {
          keyErrors![i] = 'a partner key may only look up its own partner uids';
          return null;
        }
        return 'uid' in g ? graph.profileOf(g.uid) : graph.resolveKey(g.key);
      });
    } else if (uids === undefined && Array.isArray(keys)) uids = keys;
    if (!Array.isArray(uids)) return sendError(res, 'BAD_BATCH', undefined, close);
    if (uids.length > config.maxBatchKeys) {
      return sendError(res, 'BATCH_TOO_LARGE', `${uids.length} keys, limit is ${config.maxBatchKeys}`, close);
    }
    const now = nowSeconds();
    const maxUid = config.maxUidBytes;
    const ids = lookup.ids;
    let hits = 0;
    let misses = 0;

    if (format === 'json') {
      let out = '{"results":[';
      for (let i = 0; i < uids.length; i++) {
        const uid: unknown = uids[i];
        if (i > 0) out += ',';
        if (keyErrors !== null && (uid === null || keyErrors[i] !== null)) {
          out += '{"uid":null,"segments":[]' + (keyErrors[i] !== null ? ',"error":' + JSON.stringify({ code: 'BAD_ID_KEY', message: keyErrors[i] }) : '') + '}';
          if (keyErrors[i] === null) misses++;
          continue;
        }
        const problem = checkUid(uid, maxUid);
        if (problem !== null) {
          out += '{"uid":' + (typeof uid === 'string' ? JSON.stringify(uid) : 'null') + ',"segments":[],"error":' + itemError(problem) + '}';
          continue;
        }
        const n = lookup.find(uid as string, now);
        if (n < 0) misses++;
        else hits++;
        out += '{"uid":' + JSON.stringify(uid) + ',"segments":[' + idList(ids, licence.filter(ids, n < 0 ? 0 : n)) + ']}';
      }
      out += ']}';
      metrics.hit(hits);
      metrics.miss(misses);
      return sendBody(res, 200, JSON_TYPE, out, close);
    }

    const results = new Array(uids.length);
    for (let i = 0; i < uids.length; i++) {
      const uid: unknown = uids[i];
      if (keyErrors !== null && (uid === null || keyErrors[i] !== null)) {
        results[i] = keyErrors[i] !== null ? { uid: null, segments: [], error: { code: 'BAD_ID_KEY', message: keyErrors[i] } } : { uid: null, segments: [] };
        if (keyErrors[i] === null) misses++;
        continue;
      }
      const problem = checkUid(uid, maxUid);
      if (problem !== null) {
        results[i] = { uid: typeof uid === 'string' ? uid : null, segments: [], error: { code: problem, message: ERRORS[problem].message } };
        continue;
      }
      let n = lookup.find(uid as string, now);
      if (n < 0) misses++;
      else hits++;
      n = licence.filter(ids, n < 0 ? 0 : n);
      results[i] = { uid, segments: n === 0 ? [] : Array.from(ids.subarray(0, n)) };
    }
    metrics.hit(hits);
    metrics.miss(misses);
    return sendBody(res, 200, MSGPACK_TYPE, pack({ results }), close);
  }
}

const ITEM_ERRORS = new Map<ErrorCode, string>();
function itemError(code: ErrorCode): string {
  let s = ITEM_ERRORS.get(code);
  if (s === undefined) ITEM_ERRORS.set(code, (s = JSON.stringify({ code, message: ERRORS[code].message })));
  return s;
}
