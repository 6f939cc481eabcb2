// The same-run baselines of `--compare`: a bare uWebSockets.js hello-world
// (what uWS itself does on this machine) and Fastify + Redis holding the same
// generated users (what teams usually build). redis-server is started here on
// a free loopback port with persistence off and loaded from the generator, so
// it holds exactly what `segd gen --users N --seed S` wrote into the target.
import { performance } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createClient } from 'redis';
import { Synthetic, DEFAULT_SYNTHETIC } from '../gen/synthetic.js';
import { Progress } from '../terminal/progress.js';
import { alive, hasCommand, startServer, track, type Server } from './processes.js';

const DIST = resolve(import.meta.dirname);
const HOST = '127.0.0.1';

export interface Baselines {
  hello: Server;
  fastify: Server;
  /** Every pid started (servers and redis), for pinning. */
  pids: number[];
  redis: { port: number; users: number; loadS: number };
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, HOST, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

async function startRedis(): Promise<{ port: number; pid: number }> {
  if (!hasCommand('redis-server'))
    throw new Error(
      '--compare needs redis-server (Debian package redis-server; `bash .ci/setup-system.sh` installs it)',
    );
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = track(
      spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          HOST,
          '--save',
          '',
          '--appendonly',
          'no',
          '--protected-mode',
          'no',
          '--daemonize',
          'no',
          '--loglevel',
          'warning',
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && alive(proc)) {
      const c = createClient({ url: `redis://${HOST}:${port}`, socket: { reconnectStrategy: false } });
      c.on('error', () => {});
      try {
        await c.connect();
        await c.ping();
        await c.quit();
        return { port, pid: proc.pid! };
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // The port may have been taken between probe and bind: try another.
    if (alive(proc)) proc.kill('SIGKILL');
    if (attempt === 2) throw new Error(`redis-server did not start: ${out.trim().slice(-500)}`);
  }
  throw new Error('unreachable');
}

/** Writes users 0..N-1 of the data set as uid → JSON array of segment ids. */
async function loadRedis(port: number, users: number, seed: number, quiet: boolean): Promise<number> {
  const t0 = performance.now();
  const gen = new Synthetic({ ...DEFAULT_SYNTHETIC, seed });
  const c = createClient({ url: `redis://${HOST}:${port}` });
  await c.connect();
  const progress = new Progress('redis load', users, 'users', { quiet });
  const BATCH = 5000;
  for (let from = 0; from < users; from += BATCH) {
    const sets: Promise<unknown>[] = [];
    for (let i = from; i < Math.min(users, from + BATCH); i++) {
      const u = gen.user(i);
      const ids = u.segments.map((s) => (typeof s === 'number' ? s : s.id)).sort((a, b) => a - b);
      sets.push(c.set(u.uid, JSON.stringify(ids)));
    }
    await Promise.all(sets);
    progress.update(Math.min(users, from + BATCH));
  }
  progress.done();
  const n = await c.dbSize();
  await c.quit();
  if (n !== users) throw new Error(`redis holds ${n} keys after loading ${users} users`);
  return (performance.now() - t0) / 1000;
}

/** redis-server loaded with users 0..N-1 of the data set, and Fastify in front of it. */
export async function startFastifyRedis(o: {
  users: number;
  seed: number;
  quiet: boolean;
  say: (m: string) => void;
}): Promise<{ fastify: Server; redis: { port: number; pid: number; loadS: number } }> {
  o.say('compare: starting redis-server');
  const redis = await startRedis();
  o.say(`compare: loading ${o.users.toLocaleString('en-US')} users (seed ${o.seed}) into redis on port ${redis.port}`);
  const loadS = await loadRedis(redis.port, o.users, o.seed, o.quiet);
  o.say(`compare: redis loaded in ${loadS.toFixed(1)} s; starting Fastify`);
  const fastify = await startServer('fastify+redis', [join(DIST, 'fastify-redis.js')], {
    PATH: process.env.PATH ?? '',
    REDIS_URL: `redis://${HOST}:${redis.port}`,
    PORT: '0',
    HOST,
  });
  return { fastify, redis: { ...redis, loadS } };
}

export async function startBaselines(o: {
  users: number;
  seed: number;
  quiet: boolean;
  say: (m: string) => void;
}): Promise<Baselines> {
  o.say('compare: starting the uWebSockets.js hello-world');
  const hello = await startServer('hello-world', [join(DIST, 'hello-world.js'), '0'], {
    PATH: process.env.PATH ?? '',
    HELLO_HOST: HOST,
  });
  const { fastify, redis } = await startFastifyRedis(o);
  return {
    hello,
    fastify,
    pids: [hello.proc.pid!, fastify.proc.pid!, redis.pid],
    redis: { port: redis.port, users: o.users, loadS: redis.loadS },
  };
}
