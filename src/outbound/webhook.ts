// The webhook adapter: one POST of a batch's JSON body (batcher.ts), and what
// its answer means for delivery. Headers: Content-Type, Idempotency-Key
// (stable per batch), the destination's own headers and bearer, and an
// HMAC-SHA256 of the body when the destination has a secret. postBatch is
// shared by the adapters that POST.
import { createHmac } from 'node:crypto';
import type { Destination } from '../partners/types.js';
import { retryAfterMs } from './backoff.js';
import { encodeBatch, type Batch } from './batcher.js';
import type { Adapter, Outcome } from './adapter.js';

export const SIGNATURE_HEADER = 'x-segd-signature';

export function signature(secret: string, body: Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/** Answers we read for a `failed` list: past this the list is ignored (whole batch delivered). */
export const MAX_ANSWER_BYTES = 1 << 20;

export const webhook: Adapter = {
  encode: encodeBatch,
  send: (dest, batch, signal) => postBatch(dest, batch, signal, failedIds),
};

/**
 * POSTs the batch's body; a 2xx answer's text goes through `failedOf` for
 * the ids of lines the receiver did not take.
 */
export async function postBatch(
  dest: Destination,
  batch: Batch,
  signal: AbortSignal | undefined,
  failedOf: (answer: string, batch: Batch) => Set<string>,
  contentType = 'application/json',
): Promise<Outcome> {
  const { key, body } = batch;
  const headers: Record<string, string> = {
    ...dest.headers,
    'content-type': contentType,
    'idempotency-key': key,
  };
  // The Trade Desk takes its token in a header of its own.
  if (dest.bearer && dest.type === 'ttd') headers['ttd-auth'] = dest.bearer;
  else if (dest.bearer) headers.authorization = `Bearer ${dest.bearer}`;
  if (dest.hmacSecret) headers[SIGNATURE_HEADER] = signature(dest.hmacSecret, body);
  const timeout = AbortSignal.timeout(dest.timeoutMs);
  let res: Response;
  try {
    res = await fetch(dest.url, {
      method: 'POST',
      headers,
      body,
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      redirect: 'error',
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = timeout.aborted
      ? `timed out after ${dest.timeoutMs} ms`
      : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { kind: 'retry', status: 0, afterMs: null, error: why };
  }
  let text = '';
  try {
    text = await res.text();
  } catch (err) {
    // The answer's body was cut: its status still stands, but a 2xx without its failed list is not trusted.
    if (res.ok)
      return { kind: 'retry', status: res.status, afterMs: null, error: `answer cut: ${(err as Error).message}` };
  }
  const st = res.status;
  if (st >= 200 && st < 300) return { kind: 'delivered', status: st, failed: failedOf(text, batch) };
  if (st === 429 || st === 408 || st >= 500)
    return { kind: 'retry', status: st, afterMs: retryAfterMs(res.headers.get('retry-after')), error: `HTTP ${st}` };
  if (st === 413) return { kind: 'too-large', status: st };
  return { kind: 'refused', status: st, error: `HTTP ${st}: ${text.slice(0, 200)}` };
}

/** The ids a 2xx answer names as failed: `{"failed":["id", …]}` or `{"failed":[{"id":"…"}, …]}`. */
function failedIds(text: string): Set<string> {
  const out = new Set<string>();
  if (text.length === 0 || text.length > MAX_ANSWER_BYTES || !text.includes('failed')) return out;
  try {
    const v = JSON.parse(text) as { failed?: unknown };
    if (Array.isArray(v.failed))
      for (const f of v.failed) {
        if (typeof f === 'string') out.add(f);
        else if (f && typeof f === 'object' && typeof (f as { id?: unknown }).id === 'string')
          out.add((f as { id: string }).id);
      }
  } catch {
    // Not JSON: nothing named, the batch is delivered.
  }
  return out;
}
