// Shards and replicas on real processes: a nats-server, four segd nodes
// (2 shards × 2 replicas, each its own durable consumer of its shard's
// subjects) and HAProxy running the shipped deploy/haproxy.cfg. The feed
// producer's shard function (src/shard) and HAProxy's routing agree for every
// key of a varied set — the uid exactly as segd decoded it decides — batches
// fan out through the client, a record published on the wrong shard is
// rejected, and replicas answer identically once caught up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { startSegd, feedLine, waitFor, runSegd, tempDir, ROOT, type Segd } from './helpers/server.js';
import { requireProgram, startNats, startHaproxy, type Haproxy, type NatsCluster } from './helpers/cluster.js';
import { shardOf, shardSubject } from '../src/shard/shard.js';
import { ShardedClient } from '../src/client/shard-client.js';

requireProgram('nats-server', '--version');
requireProgram('haproxy', '-v');

const K = 2;
/** Keys a URL can mangle: reserved and encoded characters, spaces, pluses, non-ASCII, long ones. */
function varietyOfKeys(n: number): string[] {
  const odd = [
    'a+b',
    'a b',
    'x%20y',
    '100%',
    'k&uid=evil',
    'k=v',
    'é',
    'ü/ß',
    '漢字',
    '🙂',
    '#frag',
    '?q',
    ';',
    "'",
    '"',
  ];
  const keys: string[] = [...odd];
  for (let i = 0; keys.length < n; i++) {
    const base = i % 3 === 0 ? crypto.randomUUID() : i % 3 === 1 ? `u${i}` : `${odd[i % odd.length]}-${i}`;
    // Some at the longest key segd accepts (SEGD_MAX_UID_BYTES, 128 UTF-8 bytes).
    keys.push(i % 97 === 0 ? base.padEnd(128 - (Buffer.byteLength(base) - base.length), 'z') : base);
  }
  return keys;
}
const KEYS = varietyOfKeys(1500);
const expected = (i: number) => [shardOf(KEYS[i]!, K) + 1, 10 + (i % 40)];

let nats: NatsCluster;
let haproxy: Haproxy;
const nodes: Segd[][] = [[], []]; // shard → replicas

beforeAll(async () => {
  nats = await startNats(1);
  const acks = KEYS.map((uid, i) =>
    nats.js.publish(shardSubject(uid, K), feedLine({ op: 'add', uid, segments: expected(i) })),
  );
  // One user published on the other shard's subjects: its node must reject it.
  acks.push(
    nats.js.publish(
      `segments.${1 - shardOf('misrouted', K)}.feed`,
      feedLine({ op: 'add', uid: 'misrouted', segments: [1] }),
    ),
  );
  await Promise.all(acks);
  const started = await Promise.all(
    [0, 1].flatMap((shard) =>
      ['a', 'b'].map((r) =>
        startSegd({
          env: { SEGD_NATS_URL: nats.urls[0]!, SEGD_SHARD: `${shard}/${K}`, SEGD_NATS_DURABLE: `s${shard}${r}` },
        }),
      ),
    ),
  );
  nodes[0] = started.slice(0, 2);
  nodes[1] = started.slice(2);
  // Caught up: every node's backlog is 0 (readyz reports it).
  await waitFor(async () => {
    const lags = await Promise.all(
      started.map(
        async (s) => ((await (await fetch(`${s.url}/readyz`)).json()) as { lag?: { nats: number } }).lag?.nats,
      ),
    );
    return lags.every((l) => l === 0);
  }, 30_000);
  const addr = (s: Segd) => `127.0.0.1:${s.port}`;
  haproxy = await startHaproxy(join(ROOT, 'deploy/haproxy.cfg'), {
    SEGD_0A: addr(nodes[0][0]!),
    SEGD_0B: addr(nodes[0][1]!),
    SEGD_1A: addr(nodes[1][0]!),
    SEGD_1B: addr(nodes[1][1]!),
  });
}, 60_000);

afterAll(async () => {
  await haproxy?.stop();
  await Promise.all(nodes.flat().map((s) => s.stop()));
  await nats?.stop();
});

/** GET through HAProxy with the query as given (already encoded). */
async function viaHaproxy(query: string) {
  const r = await fetch(`${haproxy.url}/v1/segments?${query}`);
  const body = (await r.json()) as { uid: string; segments: number[] };
  return { status: r.status, backend: r.headers.get('x-segd-served-by')?.split('/')[0], ...body };
}

describe('shards behind HAProxy', () => {
  it('routes every key to the shard the feed placed it on', async () => {
    const misses: string[] = [];
    for (let i = 0; i < KEYS.length; i += 8) {
      await Promise.all(
        KEYS.slice(i, i + 8).map(async (uid, j) => {
          const a = await viaHaproxy(`uid=${encodeURIComponent(uid)}`);
          const want = `shard${shardOf(uid, K)}`;
          if (a.status !== 200 || a.backend !== want || a.uid !== uid || `${a.segments}` !== `${expected(i + j)}`)
            misses.push(`${JSON.stringify(uid)}: ${a.status} ${a.backend} (want ${want}) ${a.segments}`);
        }),
      );
    }
    expect(misses).toEqual([]);
    // Both shards were used, and each key was answered by a node holding it (segments above).
    expect(new Set(KEYS.map((k) => shardOf(k, K))).size).toBe(K);
  });

  it('agrees with segd on how a query is decoded (raw +, %20, lower-case escapes, other params)', async () => {
    for (const q of [
      'uid=a+b',
      'uid=x%20y',
      'uid=%c3%a9',
      'uid=%C3%A9',
      'foo=1&uid=k%26uid%3Devil&bar=2',
      'uid=100%25',
      'uid=50%zz',
      'uid=%',
      'uid=a&uid=b',
      'uid=%E2%82',
      'uid=%00x',
    ]) {
      const a = await viaHaproxy(q);
      // A key segd refuses is refused the same through HAProxy; any key it accepts…
      const direct = await fetch(`${nodes[0]![0]!.url}/v1/segments?${q}`);
      await direct.arrayBuffer();
      expect(a.status, q).toBe(direct.status);
      // …is routed by the uid segd decoded and looked up.
      if (a.status === 200) expect(a.backend, `${q} → ${JSON.stringify(a.uid)}`).toBe(`shard${shardOf(a.uid, K)}`);
    }
  });

  it('fans a batch out by shard through the client, answers in request order; an unknown shard is refused', async () => {
    const client = new ShardedClient({ url: haproxy.url, shards: K });
    const pick = Array.from({ length: 200 }, (_, i) => (i * 37) % KEYS.length);
    const items = await client.batch(pick.map((i) => KEYS[i]!));
    expect(items.map((it) => it.uid)).toEqual(pick.map((i) => KEYS[i]));
    expect(items.map((it) => it.segments)).toEqual(pick.map(expected));
    // An enrichment goes to the shard of the user its bid request names.
    for (const uid of KEYS.slice(0, 6)) {
      const e = await client.enrich(JSON.stringify({ id: 'r1', imp: [{ id: '1' }], user: { id: uid } }), uid);
      await e.arrayBuffer();
      expect(e.headers.get('x-segd-served-by')?.split('/')[0], uid).toBe(`shard${shardOf(uid, K)}`);
    }
    const r = await fetch(`${haproxy.url}/v1/segments?uid=u1`, { headers: { 'x-segd-shard': String(K) } });
    expect(r.status).toBe(421);
    await r.arrayBuffer();
  });

  it('rejects a record published on another shard; replicas of a shard answer identically', async () => {
    const owner = nodes[shardOf('misrouted', K)]!;
    const other = nodes[1 - shardOf('misrouted', K)]!;
    for (const s of [...owner, ...other]) {
      const r = (await (await fetch(`${s.url}/v1/segments?uid=misrouted`)).json()) as { segments: number[] };
      expect(r.segments).toEqual([]);
    }
    for (const s of other) {
      const m = await (await fetch(`${s.url}/metrics`)).text();
      expect(Number(/segd_loader_records_total\{source="nats",outcome="rejected"\} (\d+)/.exec(m)?.[1])).toBe(1);
    }
    for (let i = 0; i < KEYS.length; i += 5) {
      const uid = KEYS[i]!;
      const [a, b] = nodes[shardOf(uid, K)]!;
      const q = `/v1/segments?uid=${encodeURIComponent(uid)}`;
      const [ra, rb] = await Promise.all([a!, b!].map(async (s) => (await fetch(`${s.url}${q}`)).text()));
      expect(rb, uid).toBe(ra);
    }
  });
});

describe('shard settings and deploy files', () => {
  it('refuses a shard spec that is not I/K with I < K', async () => {
    for (const [spec, why] of [
      ['2/2', 'the shard index must be below the count'],
      ['1', 'expected I/K'],
      ['0/0', 'the shard count must be between 1 and 1024'],
    ]) {
      const r = await runSegd(['status'], { SEGD_SHARD: spec!, SEGD_DATA_DIR: tempDir() });
      expect(r.code, spec).toBe(2);
      expect(r.stderr, spec).toContain(why);
    }
  });

  it('gives HAProxy every address its config names, in docker-compose and Kubernetes', () => {
    const cfg = readFileSync(join(ROOT, 'deploy/haproxy.cfg'), 'utf8');
    // ${NAME} without a default (`${NAME-default}` has one) must be set by whoever runs the file.
    const needed = [...new Set([...cfg.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!))].filter((v) => v !== 'SEGD_SHARDS');
    expect(needed).toEqual(['SEGD_0A', 'SEGD_0B', 'SEGD_1A', 'SEGD_1B']);
    for (const file of ['deploy/docker-compose.yml', 'deploy/k8s/haproxy.yaml']) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const v of needed) expect(text, `${file} sets ${v}`).toMatch(new RegExp(`\\b${v}\\b`));
    }
    // One backend per shard of SEGD_SHARDS, and the Kubernetes shards agree on K.
    const k = Number(/setenv SEGD_SHARDS (\d+)/.exec(cfg)?.[1]);
    expect([...cfg.matchAll(/^backend shard(\d+)$/gm)].map((m) => Number(m[1]))).toEqual([...Array(k).keys()]);
    for (let i = 0; i < k; i++)
      expect(readFileSync(join(ROOT, `deploy/k8s/segd-shard${i}.yaml`), 'utf8')).toContain(`value: '${i}/${k}'`);
  });
});
