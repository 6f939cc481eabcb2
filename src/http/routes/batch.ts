// POST /v1/segments:batch — many keys in one request, answers in request order.
// Body: {"uids":[…]} or {"keys":[…]} (graph ids) as JSON or msgpack. A bad key
// fails only its own entry (an ad server batching 100 impressions should not
// lose 99 for one cookie). Every item reads as GET does (lookup/read.ts) and
// shows only the uid the caller may see (lookup/reveal.ts).
import { performance } from 'node:perf_hooks';
import { isUtf8 } from 'node:buffer';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { unpack } from 'msgpackr';
import type { AppDeps } from '../deps.js';
import { readBody } from '../body.js';
import { checkUid } from '../../identity/uid.js';
import { nowSeconds } from '../../lookup/segments.js';
import { AnswerBuffer, FORMATS, JSON_ITEMS, MSGPACK_ITEMS, pickFormat } from '../format.js';
import { sendError, sendBody, sendEmpty, JSON_TYPE, MSGPACK_TYPE } from '../respond.js';
import type { Licence } from '../../lookup/licences.js';
import { pending } from '../pending.js';
import { ERRORS } from '../../errors.js';
import { Flag } from '../../shared-state.js';
import { graphKeyOf } from './id-query.js';
import { ReadPath } from '../../lookup/read.js';
import { shownUid } from '../../lookup/reveal.js';
import { UidListScanner } from '../../codec/uid-list.js';
import { HotAnswers } from '../../lookup/hot-answers.js';

type BodyKind = 'json' | 'msgpack';

/** The answer variants the hot answers tell apart (lookup/hot-answers.ts): a format's index. */
const JSON_VARIANT = FORMATS.indexOf('json');
const MSGPACK_VARIANT = FORMATS.indexOf('msgpack');

/** The answer buffer kept between batches: the answers of batches up to ~10k keys. */
const BATCH_KEPT_BYTES = 1024 * 1024;

function bodyKind(contentType: string): BodyKind | null {
  if (contentType === '' || contentType.startsWith('application/json')) return 'json';
  if (contentType.startsWith('application/msgpack') || contentType.startsWith('application/x-msgpack'))
    return 'msgpack';
  return null;
}

export function batchRoute(deps: AppDeps) {
  const { lookup, metrics, config, state, inflight, log, graph, callers, admission, capture } = deps;
  const m = metrics.route('batch');
  // The GET route's hot answers: a batch item by segd uid is that uid's GET answer.
  const hot = config.hotAnswers > 0 ? HotAnswers.of(state.flags, config.hotAnswers) : null;
  const reader = new ReadPath(lookup, graph, metrics, hot);
  // A 1000-key answer is ≈ 90 KB: a buffer let go after each one grew again
  // from 4 KB through five copies per batch (room, replace and the copies were
  // ≈ 4% of the worker's batch CPU in its profile).
  const out = new AnswerBuffer(BATCH_KEPT_BYTES);
  const uidList = new UidListScanner();
  /** Per uid of a simple body: whether the known-users filter let it through. */
  let maybe = new Uint8Array(1024);

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    // req is only valid now: copy what we need before the body arrives.
    const kind = bodyKind(req.getHeader('content-type'));
    const format = pickFormat(req.getQuery('format'), req.getHeader('accept'));
    const contentLength = req.getHeader('content-length');
    const finish = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    const licence = callers.licence(req.getHeader('authorization'));

    if (licence === null) return finish(sendError(res, 'UNAUTHORIZED', undefined, true));
    // Off: one null check. Sampled now, while the query can still be read; written once the body is in.
    const query = capture !== null && capture.sample() ? (req.getQuery() ?? '') : null;
    if (admission.overloaded()) {
      metrics.shed('batch', 'overload');
      return finish(sendEmpty(res, 'overload', true)); // the body is left unread: close
    }
    if (kind === null) return finish(sendError(res, 'UNSUPPORTED_MEDIA_TYPE', undefined, true));
    if (format === null || format === 'kv' || format === 'gam')
      return finish(sendError(res, 'BAD_FORMAT', 'batch answers are json or msgpack', true));

    const p = pending(res, inflight, () => metrics.aborted());
    readBody(
      res,
      contentLength,
      config.maxBodyBytes,
      (r) => {
        const close = state.get(Flag.Draining);
        p.settle(() => {
          if (!r.ok) return finish(sendError(res, 'BODY_TOO_LARGE', `limit is ${config.maxBodyBytes} bytes`, true));
          if (query !== null) capture!.batch(r.body, kind, query, licence.partner);
          let st: number;
          // One generation for the whole batch: a snapshot swap mid-batch must not mix data sets.
          reader.pin();
          try {
            st = answer(res, r.body, kind, format, close, licence);
          } catch (err) {
            log.error({ err }, 'batch lookup failed');
            st = sendError(res, 'INTERNAL', undefined, close);
          } finally {
            reader.unpin();
          }
          finish(st);
        });
      },
      true,
    ); // borrowed: parsed, captured and answered before the callback returns
  };

  function answer(
    res: HttpResponse,
    body: Buffer,
    kind: BodyKind,
    format: 'json' | 'msgpack',
    close: boolean,
    licence: Licence,
  ): number {
    const enc = format === 'json' ? JSON_ITEMS : MSGPACK_ITEMS;
    const now = nowSeconds();
    if (kind === 'json') {
      const count = uidList.scan(body, config.maxBatchKeys, config.maxUidBytes);
      if (count >= 0) return answerSimple(res, body, count, enc, close, licence, now);
    }
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
    const o = doc !== null && typeof doc === 'object' ? (doc as { uids?: unknown; keys?: unknown }) : {};
    // {"uids":[…]}: segd uids. {"keys":[…]}: ids of the ID graph (errors stay per item).
    const byKeys = o.uids === undefined && o.keys !== undefined;
    const items = byKeys ? o.keys : o.uids;
    if (!Array.isArray(items)) return sendError(res, 'BAD_BATCH', undefined, close);
    if (items.length > config.maxBatchKeys) {
      return sendError(res, 'BATCH_TOO_LARGE', `${items.length} keys, limit is ${config.maxBatchKeys}`, close);
    }
    const maxUid = config.maxUidBytes;
    // One pass from keys to answer bytes: each item is encoded as it is read
    // (format.ts), with no per-item objects.
    out.reset();
    enc.open(out, items.length);

    for (let i = 0; i < items.length; i++) {
      const item: unknown = items[i];
      // Per item: the uid the answer shows, the licensed count in reader.ids, or an error.
      let who: string | null = null;
      let n = 0;
      let code: string | null = null;
      let message = '';
      // A segd uid (every item of "uids", a {"uid"} key) or a graph id key.
      let uid: unknown = item;
      let key: string | null = null;
      if (byKeys) {
        const g = graphKeyOf(item, maxUid);
        if ('problem' in g) {
          code = 'BAD_ID_KEY';
          message = g.problem;
        } else if ('uid' in g) uid = g.uid;
        else key = g.key;
      }
      // An item in error is counted as neither hit nor miss.
      if (code === null && key === null) {
        const problem = checkUid(uid, maxUid);
        if (problem !== null) {
          code = problem;
          message = ERRORS[problem].message;
          who = typeof uid === 'string' ? uid : null;
        } else {
          n = reader.read(uid as string, licence, now);
          who = shownUid(licence, 'uid', uid as string, reader.profile, graph);
        }
      } else if (code === null && key !== null) {
        // A partner names only its own uids (anonymous callers, where allowed, are trusted).
        const named = (item as { partner?: unknown }).partner;
        if (licence.partner !== '' && named !== undefined && named !== licence.partner) {
          code = 'BAD_ID_KEY';
          message = 'a partner key may only look up its own partner uids';
        } else {
          n = reader.read(graph.resolveKey(key), licence, now);
          who = shownUid(licence, named !== undefined ? 'own' : 'graph', null, reader.profile, graph);
        }
      }
      enc.item(out, i === 0, who, reader.ids, n, code, message);
    }
    enc.close(out);
    return sendBody(res, 200, format === 'json' ? JSON_TYPE : MSGPACK_TYPE, out.view(), close);
  }

  /**
   * A `{"uids":[…]}` body of plain ASCII uids (codec/uid-list.ts), answered
   * from its bytes: the same answer as the JSON reading, with a string made
   * only for a uid the known-users filter may know and LMDB does not. The filter is asked for
   * every uid first, in a loop of its own: its probes (a cache miss each on a
   * large filter) overlap there instead of waiting between LMDB reads.
   */
  function answerSimple(
    res: HttpResponse,
    body: Buffer,
    count: number,
    enc: typeof JSON_ITEMS,
    close: boolean,
    licence: Licence,
    now: number,
  ): number {
    const { starts, ends } = uidList;
    if (maybe.length < count) maybe = new Uint8Array(count);
    for (let i = 0; i < count; i++) maybe[i] = lookup.screen(body, starts[i]!, ends[i]!) ? 1 : 0;
    out.reset();
    enc.open(out, count);
    const variant = enc === JSON_ITEMS ? JSON_VARIANT : MSGPACK_VARIANT;
    for (let i = 0; i < count; i++) {
      const start = starts[i]!;
      const end = ends[i]!;
      if (maybe[i] === 0) {
        reader.unknown();
        enc.asciiItem(out, i === 0, body, start, end, reader.ids, 0);
        continue;
      }
      const remembered = reader.rememberedAscii(body, start, end, licence, variant, now);
      if (remembered !== undefined) {
        // The item is the GET answer's bytes (format.ts: both are ItemEncoder.item).
        enc.keptItem(out, i === 0, remembered);
        continue;
      }
      const n = reader.readAscii(body, start, end, licence, now);
      const at = out.pos + enc.separatorLength(i === 0);
      // A lookup by segd uid answers the uid as sent (lookup/reveal.ts): its bytes.
      enc.asciiItem(out, i === 0, body, start, end, reader.ids, n);
      if (reader.keeps(variant)) reader.keepBytes(out.view(), at, out.pos);
    }
    enc.close(out);
    return sendBody(res, 200, enc === JSON_ITEMS ? JSON_TYPE : MSGPACK_TYPE, out.view(), close);
  }
}
