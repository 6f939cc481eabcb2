// Real NATS servers (one, or a 3-node JetStream cluster) and a real HAProxy
// for the scale-out tests, each registered with the process registry
// (procs.ts) so whatever a test leaves running is stopped after its file.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startNatsCluster, stopProc, type NatsCluster } from '../../src/loadtest/nats-cluster.js';
import { spawnTracked, track } from './procs.js';
import { tempDir } from './server.js';

export { freePort, stopProc, type NatsCluster };

export function requireProgram(cmd: string, versionFlag: string): void {
  if (spawnSync(cmd, [versionFlag]).status !== 0)
    throw new Error(`${cmd} is not installed: run \`bash .ci/setup-system.sh\` (it installs it from Debian)`);
}

/**
 * `size` nats-servers with JetStream (clustered when size > 1) and stream
 * SEGMENTS on `segments.>` replicated on every node.
 */
export const startNats = (size: 1 | 3): Promise<NatsCluster> =>
  startNatsCluster({ size, track: (p) => track(p), storeDir: () => tempDir('segd-nats-') });

export interface Haproxy {
  url: string;
  port: number;
  /** The stats socket answers `show servers state` etc. */
  socket: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Runs `haproxy -f CFG` in the foreground (-db) with `vars` exported to its environment. */
export async function startHaproxy(cfgPath: string, vars: Record<string, string>): Promise<Haproxy> {
  const port = await freePort();
  const dir = tempDir('segd-haproxy-');
  const socket = join(dir, 'admin.sock');
  const env = { PATH: process.env.PATH ?? '', HAPROXY_BIND: `127.0.0.1:${port}`, HAPROXY_SOCKET: socket, ...vars };
  const check = spawnSync('haproxy', ['-c', '-f', cfgPath], { env, encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy -c failed:\n${check.stdout}${check.stderr}`);
  const proc = spawnTracked('haproxy', ['-db', '-f', cfgPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  // Up once the default backend answers /healthz through it (its servers passed their first checks).
  for (const end = Date.now() + 10_000; ;) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited ${proc.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      async (r) => (await r.arrayBuffer(), r.status === 200),
      () => false,
    );
    if (ok) break;
    if (Date.now() > end) throw new Error('haproxy did not start listening');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `http://127.0.0.1:${port}`, port, socket, proc, stop: () => stopProc(proc) };
}

export function writeTemp(name: string, text: string): string {
  const p = join(tempDir('segd-cfg-'), name);
  writeFileSync(p, text);
  return p;
}
