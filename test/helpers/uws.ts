// An in-process uWebSockets.js app on an ephemeral loopback port, for tests
// that exercise the HTTP layer's pieces without the whole server.
import uWS, { type TemplatedApp } from 'uWebSockets.js';

export interface LocalApp {
  port: number;
  /** Stops listening and closes every connection (a thread may only end with none open). */
  close(): void;
}

export function listenLocal(app: TemplatedApp): Promise<LocalApp> {
  return new Promise((resolve, reject) =>
    app.listen('127.0.0.1', 0, (ls) => {
      if (!ls) return reject(new Error('no listen'));
      resolve({
        port: uWS.us_socket_local_port(ls),
        close() {
          uWS.us_listen_socket_close(ls);
          // `close` is in uWS.js ≥ 20.x at runtime though missing from this build's typings.
          (app as unknown as { close(): void }).close();
        },
      });
    }),
  );
}
