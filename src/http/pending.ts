// A request answered after async work (a body to read, a round trip to the
// loader thread). uWS requires onAborted before anything async and forbids
// touching the response after an abort; an answer written outside the
// handler goes out corked. Graceful shutdown waits for these via `inflight`;
// admission counts them against the route's budget (admission.ts).
// The answer is written at most once: after settle, fail or an abort, every
// later attempt is a no-op, and a write that throws becomes a 500 (guard.ts).
import type { HttpResponse } from 'uWebSockets.js';
import type { Budget } from './admission.js';
import {
  answerFailure,
  corkedResponse,
  currentRoute,
  logFailure,
  setOpenedPending,
  type RouteContext,
} from './guard.js';

export class Pending {
  private open = true;
  private readonly ctx: RouteContext | null;
  private readonly budget: Budget | null;

  constructor(
    private readonly res: HttpResponse,
    private readonly inflight: { n: number },
    private readonly onAbort: (() => void) | undefined,
  ) {
    this.ctx = currentRoute();
    this.budget = this.ctx?.budget ?? null;
    inflight.n++;
    if (this.budget !== null) this.budget.n++;
    res.onAborted(() => {
      if (!this.open) return;
      this.release();
      try {
        this.onAbort?.();
      } catch (err) {
        logFailure(err, this.ctx);
      }
    });
    setOpenedPending(this);
  }

  /** True until answered or aborted. */
  get isOpen(): boolean {
    return this.open;
  }

  owns(res: HttpResponse): boolean {
    return this.res === res;
  }

  /** Writes the answer, once, unless the client has gone. A throw inside `write` becomes a 500. */
  settle(write: () => void): void {
    if (!this.open) return;
    this.release();
    try {
      // Inside this response's own uWS callback the socket is corked already:
      // a second cork is a native call and a call back into JS for nothing.
      if (corkedResponse() === this.res) write();
      else this.res.cork(write);
    } catch (err) {
      answerFailure(this.res, err, this.ctx);
    }
  }

  /** Ends the request with 500 for `err` (logged), unless it was answered or aborted already. */
  fail(err: unknown, url?: string): void {
    if (!this.open) {
      logFailure(err, this.ctx, url);
      return;
    }
    this.release();
    answerFailure(this.res, err, this.ctx, url);
  }

  private release(): void {
    this.open = false;
    this.inflight.n--;
    if (this.budget !== null) this.budget.n--;
  }
}

export function pending(res: HttpResponse, inflight: { n: number }, onAbort?: () => void): Pending {
  return new Pending(res, inflight, onAbort);
}
