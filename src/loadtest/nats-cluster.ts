// Real nats-servers with JetStream on loopback — one, or a cluster — and the
// stream SEGMENTS on `segments.>` replicated on every server: what the
// scale-out tests and benches run segd nodes against. The caller registers
// every process started (its `track`) and names the store directories, so a
// test's registry or a bench's cleanup stops them by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

/** Waits for `marker` on the process's output; rejects if it exits first. */
export function waitForOutput(proc: ChildProcess, marker: string, what: string): Promise<void> {
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

/** Registers a started process with the caller's registry (stopped by pid after a test file or a bench). */
export type Track = (proc: ChildProcess) => ChildProcess;

/** Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR …` and waits until it is ready. */
export async function spawnNatsServer(
  track: Track,
  port: number,
  storeDir: string,
  extra: string[] = [],
): Promise<ChildProcess> {
  const proc = track(
    spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  await waitForOutput(proc, 'Server is ready', 'nats-server');
  return proc;
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

export interface NatsClusterOptions {
  size: 1 | 3;
  track: Track;
  /** A fresh directory for one server's JetStream store. */
  storeDir: () => string;
}

/**
 * `size` nats-servers with JetStream (clustered when size > 1) and stream
 * SEGMENTS on `segments.>` replicated on every node.
 */
export async function startNatsCluster({ size, track, storeDir }: NatsClusterOptions): Promise<NatsCluster> {
  const ports = await Promise.all(Array.from({ length: size * 2 }, freePort));
  const clientPorts = ports.slice(0, size);
  const routePorts = ports.slice(size);
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const nodes = new Map<string, ChildProcess>();
  await Promise.all(
    clientPorts.map(async (port, i) => {
      const name = `n${i + 1}`;
      const args = ['-n', name];
      if (size > 1)
        args.push('--cluster_name', 'segd-test', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes);
      nodes.set(name, await spawnNatsServer(track, port, storeDir(), args));
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
