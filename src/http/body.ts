// Reads a request body with a hard size limit, following uWS's rules: onData
// is attached synchronously, every chunk is copied (uWS neuters it after the
// callback), the buffer is preallocated from Content-Length, and a body over
// the limit is refused as soon as it is seen, never buffered.
import type { HttpResponse } from 'uWebSockets.js';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; reason: 'too-large' };

/**
 * `contentLength` is the header's value ('' when absent, e.g. chunked).
 * `done` is called exactly once unless the request is aborted first; the
 * caller's onAborted handler must already be attached.
 */
export function readBody(res: HttpResponse, contentLength: string, maxBytes: number, done: (r: BodyResult) => void): void {
  const declared = contentLength === '' ? -1 : Number(contentLength);
  if (declared > maxBytes) {
    done({ ok: false, reason: 'too-large' });
    return;
  }
  let buf = Buffer.allocUnsafe(declared >= 0 ? declared : Math.min(16 * 1024, maxBytes));
  let len = 0;
  let finished = false;
  res.onData((chunk, isLast) => {
    if (finished) return;
    const n = chunk.byteLength;
    if (len + n > maxBytes) {
      finished = true;
      done({ ok: false, reason: 'too-large' });
      return;
    }
    if (len + n > buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(buf.length * 2, len + n)));
      buf.copy(bigger, 0, 0, len);
      buf = bigger;
    }
    buf.set(new Uint8Array(chunk), len);
    len += n;
    if (isLast) {
      finished = true;
      done({ ok: true, body: buf.subarray(0, len) });
    }
  });
}
