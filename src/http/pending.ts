// A request answered after async work (a body to read, a round trip to the
// loader thread). uWS requires onAborted before anything async and forbids
// touching the response after an abort; an answer written outside the
// handler goes out corked. Graceful shutdown waits for these via `inflight`.
import type { HttpResponse } from 'uWebSockets.js';

export interface Pending {
  /** Writes the answer, once, unless the client has gone. */
  settle(write: () => void): void;
}

export function pending(res: HttpResponse, inflight: { n: number }, onAbort?: () => void): Pending {
  let open = true;
  inflight.n++;
  res.onAborted(() => {
    open = false;
    inflight.n--;
    onAbort?.();
  });
  return {
    settle(write) {
      if (!open) return;
      open = false;
      inflight.n--;
      res.cork(write);
    },
  };
}
