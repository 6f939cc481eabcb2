// A real `nats-server -js` for the tests (installed from Debian by
// .ci/setup-system.sh), on a free loopback port, registered with the process
// registry so it is stopped after the file even when a test does not.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { spawnTracked } from './procs.js';

if (spawnSync('nats-server', ['--version']).status !== 0) {
  throw new Error('nats-server is not installed: run `bash .ci/setup-system.sh` (it installs it from Debian)');
}

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

export interface Nats {
  url: string;
  /** SIGTERM: the server tells its clients it shuts down; SIGKILL: it just vanishes. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}
/** Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR …` and waits until it is ready. */
export async function spawnNats(port: number, storeDir: string, extra: string[] = []): Promise<ChildProcess> {
  // Stopped after the file by the process registry (test/helpers/procs.ts) if a test does not.
  const proc = spawnTracked('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir, ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Server is ready')) resolve();
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (c) => reject(new Error(`nats-server exited ${c}: ${out}`)));
  });
  return proc;
}

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
