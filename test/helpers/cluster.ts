// Real NATS servers (one, or a 3-node JetStream cluster) and a real HAProxy
// for the scale-out tests, each registered with the process registry
// (procs.ts) so whatever a test leaves running is stopped after its file.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { spawnTracked } from './procs.js';
import { tempDir } from './server.js';

export function requireProgram(cmd: string, versionFlag: string): void {
  if (spawnSync(cmd, [versionFlag]).status !== 0)
    throw new Error(`${cmd} is not installed: run \`bash .ci/setup-system.sh\` (it installs it from Debian)`);
}

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

/** Waits for `marker` on the process's output; rejects if it exits first. */
function waitForOutput(proc: ChildProcess, marker: string, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes(marker)) resolve();
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', (c) => reject(new Error(`${what} exited ${c}: ${out}`)));
  });
}

export function stopProc(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise<void>((r) => {
    proc.once('exit', () => r());
    proc.kill(signal);
  });
}

export interface NatsCluster {
  urls: string[];
  /** server name → process */
  nodes: Map<string, ChildProcess>;
  nc: NatsConnection;
  js: JetStreamClient;
  /** The server name leading stream SEGMENTS. */
  leader(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * `size` nats-servers with JetStream (clustered when size > 1) and stream
 * SEGMENTS on `segments.>` replicated on every node.
 */
export async function startNats(size: 1 | 3): Promise<NatsCluster> {
  const ports = await Promise.all(Array.from({ length: size * 2 }, freePort));
  const clientPorts = ports.slice(0, size);
  const routePorts = ports.slice(size);
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const nodes = new Map<string, ChildProcess>();
  await Promise.all(
    clientPorts.map(async (port, i) => {
      const name = `n${i + 1}`;
      const args = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', tempDir('segd-nats-'), '-n', name];
      if (size > 1)
        args.push('--cluster_name', 'segd-test', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes);
      const proc = spawnTracked('nats-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      await waitForOutput(proc, 'Server is ready', 'nats-server');
      nodes.set(name, proc);
    }),
  );
  const urls = clientPorts.map((p) => `nats://127.0.0.1:${p}`);
  const nc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  // A cluster needs a moment to elect its meta leader.
  for (const end = Date.now() + 20_000; ;) {
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'SEGMENTS', subjects: ['segments.>'], num_replicas: size });
      break;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    urls,
    nodes,
    nc,
    js: jetstream(nc),
    async leader() {
      const jsm = await jetstreamManager(nc);
      return (await jsm.streams.info('SEGMENTS')).cluster?.leader ?? 'n1';
    },
    async stop() {
      await nc.close().catch(() => undefined);
      await Promise.all([...nodes.values()].map((p) => stopProc(p)));
    },
  };
}

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
