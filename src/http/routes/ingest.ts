// POST /v1/ingest — server-to-server push of membership changes.
// Authorization: Bearer <ingest key>; body NDJSON (application/x-ndjson) or
// msgpack (application/msgpack: a stream of records, or one array); optional
// Idempotency-Key. The answer comes only after the batch is committed and
// flushed, with counts and every reject's line and reason.
import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { AppDeps } from '../deps.js';
import { BearerKeys } from '../auth.js';
import { readBody } from '../body.js';
import { sendError, sendBody, JSON_TYPE } from '../respond.js';
import { pending } from '../pending.js';
import { ERRORS } from '../../errors.js';
import { MAX_IDEMPOTENCY_KEY, type PushFormat } from '../../loader/push.js';

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
    const caller = keys.match(req.getHeader('authorization'));
    if (caller === null) return finish(sendError(res, 'UNAUTHORIZED', undefined, true));
    const ctype = req.getHeader('content-type');
    const format: PushFormat | null =
      ctype.startsWith('application/x-ndjson') || ctype.startsWith('application/jsonl')
        ? 'ndjson'
        : ctype.startsWith('application/msgpack') || ctype.startsWith('application/x-msgpack')
          ? 'msgpack'
          : null;
    if (!format)
      return finish(
        sendError(res, 'UNSUPPORTED_MEDIA_TYPE', 'ingest takes application/x-ndjson or application/msgpack', true),
      );
    const idem = req.getHeader('idempotency-key');
    if (idem !== '' && (idem.length > MAX_IDEMPOTENCY_KEY || !PRINTABLE.test(idem)))
      return finish(sendError(res, 'BAD_IDEMPOTENCY_KEY', undefined, true));

    const p = pending(res, inflight, () => deps.metrics.aborted());
    readBody(res, req.getHeader('content-length'), config.maxIngestBytes, (r) => {
      if (!r.ok) {
        p.settle(() =>
          finish(
            sendError(res, 'BODY_TOO_LARGE', `limit is ${config.maxIngestBytes} bytes; nothing was applied`, true),
          ),
        );
        return;
      }
      // Parsing happens on the loader thread: a large body must not stall this
      // worker's lookups. A fresh ArrayBuffer (never a pooled one) is transferred.
      const body = r.body.buffer.slice(r.body.byteOffset, r.body.byteOffset + r.body.length) as ArrayBuffer;
      deps.ingest({ body, format, caller, idempotencyKey: idem || undefined }, MAX_LISTED_REJECTS).then(
        // If the client went away, the batch is committed all the same: a retry with the key gets this result.
        (a) =>
          p.settle(() => {
            if (a.conflict) return finish(sendError(res, 'IDEMPOTENCY_KEY_REUSED'));
            if (a.full)
              return finish(
                sendError(res, 'STORE_FULL', a.full === 'map_full' ? 'LMDB map size reached' : 'disk full'),
              );
            const counts = {
              applied: a.applied,
              stale: a.stale,
              rejected: a.rejected,
              replay: a.replay,
              rejects: a.rejects,
            };
            if (a.applied + a.stale === 0 && a.rejected > 0) {
              const err = { error: { code: 'ALL_REJECTED', message: ERRORS.ALL_REJECTED.message } };
              finish(sendBody(res, ERRORS.ALL_REJECTED.status, JSON_TYPE, JSON.stringify({ ...err, ...counts })));
            } else {
              finish(sendBody(res, 200, JSON_TYPE, JSON.stringify(counts)));
            }
          }),
        (err: unknown) => {
          log.error({ err }, 'ingest failed; nothing was applied');
          p.settle(() =>
            finish(sendError(res, 'INTERNAL', 'the batch was not applied; retry with the same Idempotency-Key')),
          );
        },
      );
    });
  };
}
