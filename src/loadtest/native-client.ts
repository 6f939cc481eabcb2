// Which program drives an open loop: the native client (native/openloop,
// C: epoll, a timerfd and a short spin keep its sends within µs of the
// schedule) or the Node one (open-loop-client.ts, whose event loop sends up
// to milliseconds late at 20k req/s on 2 cores). Both take the same flags and
// print the same JSON line, so drive-http.ts runs either the same way. The
// native one is the default wherever it has been built (`npm run build:native`).
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';

export type OpenLoopClient = 'native' | 'node';

export const OPEN_LOOP_CLIENTS: readonly OpenLoopClient[] = ['native', 'node'];

const NODE_CLIENT_JS = resolve(import.meta.dirname, 'open-loop-client.js');

// From src/loadtest (tests) or dist/src/loadtest (the built CLI): the binary sits under the repository root.
const NATIVE_CANDIDATES = [
  resolve(import.meta.dirname, '../../native/build/openloop'),
  resolve(import.meta.dirname, '../../../native/build/openloop'),
];

/** The built native client, or null when it has not been built here. */
export function nativeClientPath(): string | null {
  for (const p of NATIVE_CANDIDATES) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** `--client` absent: the native client when it is built, else the Node one. */
export function defaultClient(): OpenLoopClient {
  return nativeClientPath() ? 'native' : 'node';
}

/** The command line (program and leading arguments) that runs `client`. */
export function clientCommand(client: OpenLoopClient): string[] {
  if (client === 'node') return [process.execPath, NODE_CLIENT_JS];
  const bin = nativeClientPath();
  if (!bin) throw new Error('the native open-loop client is not built: run `npm run build:native` (needs gcc)');
  return [bin];
}
