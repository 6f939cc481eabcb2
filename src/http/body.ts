// Reads a request body with a hard size limit and a deadline, following uWS's
// rules: onData is attached synchronously, every chunk is copied (uWS neuters
// it after the callback). Memory follows the bytes that actually arrived — a
// bounded first buffer that doubles as needed, never the declared
// Content-Length up front — and a body over the limit is refused as soon as
// it is seen, never buffered. A body still incomplete when its deadline
// passes is dropped: 408 and the connection closed (slow senders cannot hold
// a worker's admission budget). One sweep timer per worker checks deadlines,
// so a read costs no timer of its own, and no clock read either: the first
// sweep that sees a read sets its deadline (performance.now() is ≈ 53 ns in
// process on this machine, and a read took one per request).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type { HttpResponse } from 'uWebSockets.js';
import { sendError } from './respond.js';
import { answerFailure, currentRoute, enterCallback, openedPending, type RouteContext } from './guard.js';
import type { Pending } from './pending.js';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; reason: 'too-large' };

/** First buffer of a body: enough for most requests; larger ones grow by doubling. */
const FIRST_CHUNK = 16 * 1024;

// Borrowed bodies (see readBody): assembled in buffers kept here between
// requests, at most POOLED of them, none larger than POOLED_BYTES.
const POOLED = 8;
const POOLED_BYTES = 1024 * 1024;
const pool: Buffer[] = [];
const NO_BUFFER = Buffer.alloc(0);

let timeoutMs = 10_000;
/** The whole body must have arrived this long after its headers (set once per worker from SEGD_BODY_TIMEOUT_MS). */
export function setBodyTimeout(ms: number): void {
  timeoutMs = ms;
}

class Read {
  buf: Buffer;
  len = 0;
  finished = false;
  /** Neighbours in the list of reads in progress (see `reads`). */
  prev: Read | null = null;
  next: Read | null = null;
  /** performance.now() past which the body is late; 0 until the first sweep that sees this read sets it. */
  deadline = 0;

  constructor(
    readonly res: HttpResponse,
    readonly owner: Pending | null,
    readonly ctx: RouteContext | null,
    readonly declared: number,
    readonly maxBytes: number,
    readonly done: (r: BodyResult) => void,
    readonly borrowed: boolean,
  ) {
    this.buf = borrowed
      ? NO_BUFFER // taken from the pool if a second chunk comes
      : Buffer.allocUnsafe(Math.min(declared >= 0 ? declared : FIRST_CHUNK, FIRST_CHUNK, maxBytes));
  }

  onData(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.finished) return;
    const outer = enterCallback(this.res);
    try {
      const n = chunk.byteLength;
      if (this.len + n > this.maxBytes) {
        this.finish();
        this.done({ ok: false, reason: 'too-large' });
        return;
      }
      if (this.borrowed && isLast && this.len === 0) {
        // The whole body in one chunk: uWS's own bytes, valid while `done` runs.
        this.finish();
        this.done({ ok: true, body: Buffer.from(chunk) });
        return;
      }
      if (this.len + n > this.buf.length) this.grow(n);
      this.buf.set(new Uint8Array(chunk), this.len);
      this.len += n;
      if (isLast) {
        this.finish();
        this.done({ ok: true, body: this.buf.subarray(0, this.len) });
        if (this.borrowed && this.buf.length <= POOLED_BYTES && pool.length < POOLED) pool.push(this.buf);
      }
    } catch (err) {
      this.finish();
      if (this.owner !== null) this.owner.fail(err);
      else answerFailure(this.res, err, this.ctx);
    } finally {
      enterCallback(outer);
    }
  }

  /** Room for `n` more bytes: double, but never past the limit nor past what the client declared. */
  private grow(n: number): void {
    const need = this.len + n;
    if (this.borrowed && this.buf === NO_BUFFER) {
      const pooled = pool.pop();
      if (pooled !== undefined && pooled.length >= need) {
        this.buf = pooled;
        return;
      }
    }
    let size = Math.min(this.maxBytes, Math.max(this.buf.length * 2, need, this.borrowed ? FIRST_CHUNK : 0));
    if (this.declared >= need) size = Math.min(size, this.declared);
    const bigger = this.borrowed ? Buffer.allocUnsafeSlow(Math.max(size, need)) : Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  /** Past the deadline: 408 and close, through the request's pending answer. */
  expire(): void {
    this.finish();
    const { res } = this;
    const write = () => sendError(res, 'BODY_TIMEOUT', `no complete body within ${timeoutMs} ms`, true);
    if (this.owner !== null) this.owner.settle(write);
    else {
      try {
        res.cork(write);
      } catch {
        /* aborted already */
      }
    }
    this.ctx?.metrics?.guarded('body_timeout');
    this.ctx?.log.info(
      { route: this.ctx.route, method: this.ctx.method, received: this.len },
      'request body timed out; connection closed',
    );
  }

  /** Gone when answered or aborted (its pending is closed). */
  get live(): boolean {
    return !this.finished && (this.owner === null || this.owner.isOpen);
  }

  private finish(): void {
    this.finished = true;
    unlink(this);
  }
}

// The reads in progress, for the sweep: an intrusive list, not a Set. A Set
// that every request enters and leaves rehashes and shrinks as it empties
// (≈ 1.5% of the enrichment route's user CPU under wrk in perf: SetPrototypeAdd,
// SetPrototypeDelete, Runtime_SetShrink).
let reads: Read | null = null;

function link(r: Read): void {
  r.next = reads;
  if (reads !== null) reads.prev = r;
  reads = r;
}

/** Takes `r` out of the list; a no-op when it is not in it. */
function unlink(r: Read): void {
  if (r.prev !== null) r.prev.next = r.next;
  else if (reads === r) reads = r.next;
  if (r.next !== null) r.next.prev = r.prev;
  r.prev = r.next = null;
}

let sweeper: NodeJS.Timeout | null = null;

// The read began before this sweep, so its deadline counts from here: never
// dropped before timeoutMs, at most two sweep periods after it.
function sweep(): void {
  const now = performance.now();
  for (let r = reads; r !== null;) {
    const next = r.next;
    if (!r.live) unlink(r);
    else if (r.deadline === 0) r.deadline = now + timeoutMs;
    else if (now >= r.deadline) r.expire();
    r = next;
  }
  if (reads === null && sweeper !== null) {
    clearInterval(sweeper);
    sweeper = null;
  }
}

/**
 * `contentLength` is the header's value ('' when absent, e.g. chunked).
 * `done` is called exactly once unless the request is aborted first or its
 * body times out (then the request is answered 408 here); the caller's
 * onAborted handler (its `pending`) must already be attached.
 *
 * `borrowed`: `done` reads the body only while it runs and keeps nothing of
 * it. A body that comes in one chunk is then uWS's own bytes, not a copy;
 * one that comes in several is assembled in a buffer that goes back to a
 * small pool. Each copy takes a fresh buffer, and under load the external
 * memory of those buffers alone makes V8 run a full mark-compact every few
 * hundred milliseconds (enrichment with the 2.6 KB banner, --trace-gc over
 * ~70k requests: 11 mark-compacts copied, none borrowed).
 */
export function readBody(
  res: HttpResponse,
  contentLength: string,
  maxBytes: number,
  done: (r: BodyResult) => void,
  borrowed = false,
): void {
  const declared = contentLength === '' ? -1 : Number(contentLength);
  if (declared > maxBytes) {
    done({ ok: false, reason: 'too-large' });
    return;
  }
  if (sweeper === null) {
    // A quarter of the deadline, at most a second.
    sweeper = setInterval(sweep, Math.min(1000, Math.max(25, timeoutMs / 4))).unref();
  }
  const p = openedPending();
  const read = new Read(
    res,
    p !== null && p.owns(res) ? p : null,
    currentRoute(),
    Number.isFinite(declared) ? declared : -1,
    maxBytes,
    done,
    borrowed,
  );
  link(read);
  res.onData((chunk, isLast) => read.onData(chunk, isLast));
}
