// Faults on loopback, all real processes: a 3-node NATS JetStream cluster
// (stream replicated on all three), four segd nodes (2 shards × 2 replicas)
// and HAProxy with the shipped deploy/haproxy.cfg, under a light lookup load
// through HAProxy the whole time.
//   1. SIGKILL a segd node: HAProxy marks it down within 2 s; lookups see no
//      errors beyond the requests in flight to it.
//   2. SIGTERM a segd node: it drains (/readyz 503, in-flight answered),
//      HAProxy takes it out, no lookup fails.
//   3. SIGKILL the stream's leader while publishing: lookups go on, every
//      node catches up with every message.
//   4. Replace the killed node by one started from a backup of its peer taken
//      under load: HAProxy takes it back once /readyz says it caught up, and
//      it answers exactly like its peer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { startSegd, feedLine, waitFor, runSegd, tempDir, ROOT, type Segd } from './helpers/server.js';
import {
  requireProgram,
  startNats,
  startHaproxy,
  stopProc,
  type Haproxy,
  type NatsCluster,
} from './helpers/cluster.js';
import { shardOf, shardSubject } from '../src/shard/shard.js';

requireProgram('nats-server', '--version');
requireProgram('haproxy', '-v');

const K = 2;
const segmentsFor = (i: number, round: number) => [10 + (i % 30), 100 + round];

let nats: NatsCluster;
let haproxy: Haproxy;
const node: Record<string, Segd> = {}; // '0a', '0b', '1a', '1b'
let published = 0;

/** Publishes users f<from>…f<to-1> (round `round` of their segments), each with a message id so a retried publish is stored once. */
async function publish(from: number, to: number, round: number): Promise<void> {
  for (let i = from; i < to; i += 250) {
    const acks = [];
    for (let j = i; j < Math.min(to, i + 250); j++) {
      const uid = `f${j}`;
      acks.push(
        nats.js.publish(shardSubject(uid, K), feedLine({ op: 'replace', uid, segments: segmentsFor(j, round) }), {
          msgID: `${uid}:${round}`,
        }),
      );
    }
    await Promise.all(acks);
  }
  published = Math.max(published, to);
}

/** publish(), retried while the cluster elects a new leader. */
async function publishRetrying(from: number, to: number, round: number): Promise<void> {
  for (const end = Date.now() + 30_000; ;) {
    try {
      return await publish(from, to, round);
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const env = (shard: number, durable: string, extra: Record<string, string> = {}) => ({
  SEGD_NATS_URL: nats.urls.join(','),
  SEGD_SHARD: `${shard}/${K}`,
  SEGD_NATS_DURABLE: durable,
  SEGD_NATS_BATCH: '250',
  SEGD_BLOOM_SAVE_MS: '200',
  ...extra,
});

const lagOf = async (s: Segd) =>
  ((await (await fetch(`${s.url}/readyz`)).json()) as { lag?: { nats: number } }).lag?.nats;

/** One command on HAProxy's admin socket. */
function admin(cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const c = createConnection(haproxy.socket, () => c.write(`${cmd}\n`));
    c.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('end', () => resolve(out));
    c.on('error', reject);
  });
}
/** HAProxy's operational state of backend/server: 2 = running (UP), 0 = stopped (DOWN). */
async function serverState(backend: string, server: string): Promise<number> {
  const rows = (await admin(`show servers state ${backend}`)).split('\n').filter((l) => /^\d+ /.test(l));
  const row = rows.map((l) => l.split(' ')).find((f) => f[3] === server);
  return Number(row?.[5] ?? -1);
}

interface Outcome {
  at: number;
  status: number;
  by: string | null;
  error?: string;
}
/** `workers` loops of lookups through HAProxy, each pausing `pauseMs` between requests. */
function lookupLoad(workers = 4, pauseMs = 5) {
  const outcomes: Outcome[] = [];
  let stopping = false;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = w; !stopping; i += workers) {
      const at = performance.now();
      try {
        const r = await fetch(`${haproxy.url}/v1/segments?uid=f${(i * 7919) % published}`);
        await r.arrayBuffer();
        outcomes.push({ at, status: r.status, by: r.headers.get('x-segd-served-by') });
      } catch (err) {
        outcomes.push({ at, status: 0, by: null, error: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  return {
    outcomes,
    failures: () => outcomes.filter((o) => o.status !== 200),
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

async function allCaughtUp(nodes: Segd[], ms = 60_000): Promise<void> {
  await waitFor(async () => (await Promise.all(nodes.map(lagOf))).every((l) => l === 0), ms);
}

beforeAll(async () => {
  nats = await startNats(3);
  await publish(0, 2000, 0);
  const started = await Promise.all(
    ['0a', '0b', '1a', '1b'].map(async (name) => [name, await startSegd({ env: env(Number(name[0]), `s${name}`) })]),
  );
  for (const [name, s] of started) node[name as string] = s as Segd;
  await allCaughtUp(Object.values(node));
  const addr = (s: Segd) => `127.0.0.1:${s.port}`;
  haproxy = await startHaproxy(join(ROOT, 'deploy/haproxy.cfg'), {
    SEGD_0A: addr(node['0a']!),
    SEGD_0B: addr(node['0b']!),
    SEGD_1A: addr(node['1a']!),
    SEGD_1B: addr(node['1b']!),
  });
}, 90_000);

afterAll(async () => {
  await haproxy?.stop();
  await Promise.all(Object.values(node).map((s) => s.stop()));
  await nats?.stop();
});

describe('faults behind HAProxy on a NATS cluster', () => {
  it('a killed segd node is taken out within 2 s; lookups lose at most the requests in flight', async () => {
    const workers = 4;
    const load = lookupLoad(workers);
    await waitFor(async () => load.outcomes.some((o) => o.by === 'shard0/a'));
    const killedAt = performance.now();
    node['0a']!.proc.kill('SIGKILL');
    await node['0a']!.exited;
    let downAfter = Infinity;
    await waitFor(async () => {
      if ((await serverState('shard0', 'a')) !== 0) return false;
      downAfter = performance.now() - killedAt;
      return true;
    }, 5000);
    // Traffic goes on for a while with the node out.
    const until = load.outcomes.length + 200;
    await waitFor(async () => load.outcomes.length >= until);
    await load.stop();
    expect(downAfter).toBeLessThan(2000);
    const failures = load.failures();
    expect(failures.length, JSON.stringify(failures)).toBeLessThanOrEqual(workers);
    // Nothing reaches it after HAProxy marked it down.
    expect(load.outcomes.filter((o) => o.at > killedAt + downAfter && o.by === 'shard0/a')).toEqual([]);
    expect(load.outcomes.filter((o) => o.at > killedAt + downAfter && o.by === 'shard0/b').length).toBeGreaterThan(0);
    console.log(
      `segd node killed: HAProxy marked it down after ${downAfter.toFixed(0)} ms; ${failures.length} of ${load.outcomes.length} lookups failed`,
    );
  });

  it('a node told to stop (SIGTERM) drains: HAProxy takes it out and no lookup fails', async () => {
    const load = lookupLoad();
    await waitFor(async () => load.outcomes.some((o) => o.by === 'shard1/b'));
    const stoppedAt = performance.now();
    const stopped = node['1b']!.stop();
    await waitFor(async () => (await serverState('shard1', 'b')) === 0, 5000);
    const downAfter = performance.now() - stoppedAt;
    expect(await stopped).toBe(0);
    const until = load.outcomes.length + 100;
    await waitFor(async () => load.outcomes.length >= until);
    await load.stop();
    expect(downAfter).toBeLessThan(2000);
    expect(load.failures()).toEqual([]);
    expect(load.outcomes.filter((o) => o.at > stoppedAt + downAfter && o.by === 'shard1/b')).toEqual([]);
  });

  it('the stream leader is killed while publishing: lookups go on and every node catches up', async () => {
    const load = lookupLoad();
    const leader = await nats.leader();
    await stopProc(nats.nodes.get(leader)!, 'SIGKILL');
    await publishRetrying(2000, 3000, 1);
    const live = [node['0b']!, node['1a']!];
    const shardOfNode = (s: Segd) => (s === node['0b'] ? 0 : 1);
    const answer = async (s: Segd, i: number) =>
      ((await (await fetch(`${s.url}/v1/segments?uid=f${i}`)).json()) as { segments: number[] }).segments.join();
    // Caught up: each node holds the last user published on its shard (the lag gauge may lag a leader change).
    const lastOf = (shard: number) =>
      [...Array(1000).keys()].map((k) => 2999 - k).find((i) => shardOf(`f${i}`, K) === shard)!;
    await waitFor(async () => {
      const got = await Promise.all(live.map((s) => answer(s, lastOf(shardOfNode(s)))));
      return live.every((s, j) => got[j] === segmentsFor(lastOf(shardOfNode(s)), 1).join());
    }, 60_000);
    await load.stop();
    expect(load.failures()).toEqual([]);
    const wrong: string[] = [];
    for (let i = 0; i < 3000; i += 7)
      for (const s of live.filter((n) => shardOfNode(n) === shardOf(`f${i}`, K))) {
        const want = segmentsFor(i, i >= 2000 ? 1 : 0).join();
        const got = await answer(s, i);
        if (got !== want) wrong.push(`f${i} on ${s.url}: ${got}, want ${want}`);
      }
    expect(wrong).toEqual([]);
  });

  it('a node restored from a backup of its peer taken under load rejoins and answers like its peer', async () => {
    const load = lookupLoad();
    const feeding = publishRetrying(3000, 4000, 2);
    const copy = join(tempDir('segd-faults-'), 'copy');
    const backup = await runSegd(['backup', '--out', copy], {
      SEGD_DATA_DIR: node['0b']!.dataDir,
      SEGD_BLOOM_SAVE_MS: '200',
      SEGD_LOG_LEVEL: 'warn',
    });
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    await feeding;
    // The replacement: a new durable on the copy, kept out until its backlog is small.
    const restored = await startSegd({ dataDir: copy, env: env(0, 's0c', { SEGD_NATS_READY_LAG: '10' }) });
    node['0c'] = restored;
    await admin(`set server shard0/a addr 127.0.0.1 port ${restored.port}`);
    await waitFor(async () => (await serverState('shard0', 'a')) === 2, 30_000);
    await waitFor(async () => load.outcomes.some((o) => o.by === 'shard0/a'));
    await load.stop();
    expect(load.failures()).toEqual([]);
    await allCaughtUp([restored, node['0b']!]);
    const mismatches: string[] = [];
    for (let i = 0; i < published; i += 3) {
      const uid = `f${i}`;
      if (shardOf(uid, K) !== 0) continue;
      const [a, b] = await Promise.all(
        [restored, node['0b']!].map(async (s) => (await fetch(`${s.url}/v1/segments?uid=${uid}`)).text()),
      );
      const want = segmentsFor(i, i >= 3000 ? 2 : i >= 2000 ? 1 : 0);
      if (a !== b || (JSON.parse(a!) as { segments: number[] }).segments.join() !== want.join())
        mismatches.push(`${uid}: ${a} vs ${b}, want ${want}`);
    }
    expect(mismatches).toEqual([]);
  });
});
