// POST /v1/ingest — server-to-server push of membership changes.
// Authorization: Bearer <ingest key>; body NDJSON (application/x-ndjson) or
// msgpack (application/msgpack: a stream of records, or one array); optional
// Idempotency-Key. The answer comes only after the batch is committed and
// flushed, with counts and every reject's line and reason.
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { BearerKeys } from '../auth.js';
import { readBody } from '../body.js';
import { sendError, sendBody, corked, JSON_TYPE } from '../respond.js';
import { errorBody, ERRORS } from '../../errors.js';
import { parseNdjson, parseMsgpack, MAX_IDEMPOTENCY_KEY, type ParsedPush } from '../../loader/push.js';
import { nowSeconds } from '../../lookup/segments.js';

/** Rejects listed in one answer; the counts are always complete. */
const MAX_LISTED_REJECTS = 1000;
const PRINTABLE = /^[\x21-\x7e]+$/;

export function ingestRoute(deps: AppDeps) {
  const keys = new BearerKeys(deps.config.ingestKeys);
  const m = deps.metrics.route('ingest');
  const { config, log, inflight } = deps;

  return (res: HttpResponse, req: HttpRequest): void => {
    const t0 = performance.now();
    const finish = (st: number) => m.observe(st, (performance.now() - t0) / 1000);
    if (!keys.allows(req.getHeader('authorization'))) return finish(sendError(res, 'UNAUTHORIZED', undefined, true));
    const ctype = req.getHeader('content-type');
    const parse = ctype.startsWith('application/x-ndjson') || ctype.startsWith('application/jsonl') ? parseNdjson
      : ctype.startsWith('application/msgpack') || ctype.startsWith('application/x-msgpack') ? parseMsgpack
      : null;
    if (!parse) return finish(sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'ingest takes application/x-ndjson or application/msgpack', true));
    const idem = req.getHeader('idempotency-key');
    if (idem !== '' && (idem.length > MAX_IDEMPOTENCY_KEY || !PRINTABLE.test(idem))) return finish(sendError(res, 'BAD_IDEMPOTENCY_KEY', undefined, true));

    let aborted = false;
    inflight.n++;
    res.onAborted(() => {
      aborted = true;
      inflight.n--;
      deps.metrics.aborted();
    });
    readBody(res, req.getHeader('content-length'), config.maxIngestBytes, (r) => {
      if (aborted) return;
      if (!r.ok) {
        inflight.n--;
        corked(res, () => finish(sendError(res, 'BODY_TOO_LARGE', `limit is ${config.maxIngestBytes} bytes; nothing was applied`, true)));
        return;
      }
      let parsed: ParsedPush;
      try {
        parsed = parse(r.body, nowSeconds(), config.maxUidBytes);
      } catch (err) {
        inflight.n--;
        log.error({ err }, 'ingest parse failed');
        corked(res, () => finish(sendError(res, 'INTERNAL')));
        return;
      }
      // A batch with nothing valid is answered here; the writer is not bothered.
      const work = parsed.changes.length === 0
        ? Promise.resolve({ applied: 0, stale: 0, rejected: parsed.rejects.length, replay: false })
        : deps.ingest(parsed.changes, parsed.rejects.length, idem || undefined);
      work.then(
        (result) => {
          if (aborted) return; // committed all the same: a retry with the key gets this result
          inflight.n--;
          const body = {
            applied: result.applied,
            stale: result.stale,
            rejected: result.rejected,
            replay: result.replay,
            rejects: result.replay ? [] : parsed.rejects.slice(0, MAX_LISTED_REJECTS),
          };
          corked(res, () => {
            if (result.applied + result.stale === 0 && result.rejected > 0) {
              const err = JSON.parse(errorBody('ALL_REJECTED')) as object;
              finish(sendBody(res, ERRORS.ALL_REJECTED.status, JSON_TYPE, JSON.stringify({ ...err, ...body })));
            } else {
              finish(sendBody(res, 200, JSON_TYPE, JSON.stringify(body)));
            }
          });
        },
        (err: unknown) => {
          if (aborted) return;
          inflight.n--;
          log.error({ err, records: parsed.changes.length }, 'ingest apply failed; nothing was applied');
          corked(res, () => finish(sendError(res, 'INTERNAL', 'the batch was not applied; retry with the same Idempotency-Key')));
        },
      );
    });
  };
}
