// A real `nats-server -js` for the tests (installed from Debian by
// .ci/setup-system.sh), on a free loopback port, registered with the process
// registry so it is stopped after the file even when a test does not.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { freePort, spawnNatsServer } from '../../src/loadtest/nats-cluster.js';
import { track } from './procs.js';

if (spawnSync('nats-server', ['--version']).status !== 0) {
  throw new Error('nats-server is not installed: run `bash .ci/setup-system.sh` (it installs it from Debian)');
}

export { freePort };

export interface Nats {
  url: string;
  /** SIGTERM: the server tells its clients it shuts down; SIGKILL: it just vanishes. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}
/** Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR …` and waits until it is ready. */
export const spawnNats = (port: number, storeDir: string, extra: string[] = []): Promise<ChildProcess> =>
  spawnNatsServer((p) => track(p), port, storeDir, extra);

export async function startNats(port: number, storeDir: string): Promise<Nats> {
  const proc = await spawnNats(port, storeDir);
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: (signal: NodeJS.Signals = 'SIGTERM') =>
      new Promise<void>((r) => {
        proc.once('exit', () => r());
        proc.kill(signal);
      }),
  };
}
