// The JetStream source against a real `nats-server -js` (installed from Debian
// by .ci/setup-system.sh): records flow from the stream into lookups, poison
// messages are rejected without blocking, the consumer survives the server
// restarting, and a SIGKILLed segd resumes exactly after its checkpoint.
import { describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { pack } from 'msgpackr';
import {
  startSegd,
  stopReport,
  CLEAN_STOP,
  tempDir,
  feedLine,
  segmentsOf,
  waitFor,
  segdEnv,
  BIN,
} from './helpers/server.js';
import { spawnTracked } from './helpers/procs.js';
import { openStore } from '../src/store/env.js';
import { freePort, spawnNats, startNats } from './helpers/nats.js';

/** segd's `segd_nats_connected` gauge: 1 connected, 0 reconnecting, null before the feed is watched. */
async function natsConnected(url: string): Promise<number | null> {
  const m = await (await fetch(`${url}/metrics`)).text();
  const v = /^segd_nats_connected (\d+)$/m.exec(m)?.[1];
  return v === undefined ? null : Number(v);
}

async function client(url: string): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'SEGMENTS', subjects: ['segments.>'] }).catch(() => undefined);
  return { nc, js: jetstream(nc) };
}

type PublishOptions = Parameters<JetStreamClient['publish']>[2];

/**
 * Publishes messages `from` … `to - 1` to `subject` in order, 500 acks in
 * flight at a time: message `j`'s body is `bodyOf(j)`, its options `opts`
 * (or `opts(j)`: a message id per message).
 */
async function publishMany(
  js: JetStreamClient,
  subject: string,
  [from, to]: [number, number],
  bodyOf: (j: number) => string,
  opts: PublishOptions | ((j: number) => PublishOptions) = {},
): Promise<void> {
  for (let i = from; i < to; i += 500) {
    const acks = [];
    for (let j = i; j < Math.min(to, i + 500); j++)
      acks.push(js.publish(subject, bodyOf(j), typeof opts === 'function' ? opts(j) : opts));
    await Promise.all(acks);
  }
}

/** Polls the store at `dir` (read-only, as often as it commits) until its checkpoint `key` passes `pred`; that sequence. */
async function checkpointWhen(dir: string, key: string, pred: (seq: number) => boolean, ms = 30_000): Promise<number> {
  const end = Date.now() + ms;
  for (;;) {
    if (Date.now() > end) throw new Error(`checkpoint ${key} not reached in ${ms} ms`);
    try {
      const store = openStore(dir, { readOnly: true });
      try {
        while (Date.now() <= end) {
          const seq = (store.meta.get(key) as { seq: number } | undefined)?.seq ?? -1;
          if (pred(seq)) return seq;
          await new Promise((r) => setTimeout(r, 1));
        }
      } finally {
        await store.close();
      }
    } catch {
      // The store is not made yet (the node is starting): tried again.
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

describe('NATS JetStream source', () => {
  it('applies the stream, rejects poison without blocking, and survives the server restarting', async () => {
    const port = await freePort();
    const store = tempDir();
    let nats = await startNats(port, store);
    let { nc, js } = await client(nats.url);
    await js.publish(
      'segments.a',
      feedLine({ op: 'add', uid: 'n1', segments: [1, 2] }) + feedLine({ op: 'add', uid: 'n2', segments: [3] }),
    );
    await js.publish('segments.a', 'this is not a record');
    const h = natsHeaders();
    h.set('Content-Type', 'application/msgpack');
    await js.publish('segments.b', pack({ op: 'add', uid: 'n3', segments: [4] }), { headers: h });
    await js.publish('segments.a', feedLine({ op: 'remove', uid: 'n1', segments: [2] }));

    const segd = await startSegd({ env: { SEGD_NATS_URL: nats.url, SEGD_WORKERS: '2' } });
    await waitFor(async () => (await segmentsOf(segd, 'n3')).length === 1);
    expect(await segmentsOf(segd, 'n1')).toEqual([1]);
    expect(await segmentsOf(segd, 'n2')).toEqual([3]);
    const m = await (await fetch(`${segd.url}/metrics`)).text();
    expect(Number(/segd_loader_records_total\{source="nats",outcome="rejected"\} (\d+)/.exec(m)?.[1])).toBe(1);
    await waitFor(
      async () => ((await (await fetch(`${segd.url}/readyz`)).json()) as { lag?: { nats: number } }).lag?.nats === 0,
    );

    // The server goes away for a while and comes back on the same port and store.
    await nc.close();
    await nats.stop();
    await waitFor(async () => natsConnected(segd.url).then((c) => c === 0));
    expect(await segmentsOf(segd, 'n2')).toEqual([3]); // lookups go on meanwhile
    nats = await startNats(port, store);
    ({ nc, js } = await client(nats.url));
    await js.publish('segments.a', feedLine({ op: 'add', uid: 'after-restart', segments: [9] }));
    await waitFor(async () => (await segmentsOf(segd, 'after-restart')).length === 1, 30_000);
    expect(await natsConnected(segd.url)).toBe(1);
    await nc.close();
    expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
    await nats.stop();
  });

  // A server that vanishes (SIGKILL) leaves a fetch in progress that the
  // reconnecting client no longer times out: the stop must not wait for it.
  it.each(['SIGTERM', 'SIGKILL'] as const)('stops cleanly while the NATS server is gone (%s)', async (signal) => {
    const port = await freePort();
    const nats = await startNats(port, tempDir());
    const { nc, js } = await client(nats.url);
    await js.publish('segments.a', feedLine({ op: 'add', uid: 'g1', segments: [1] }));
    await nc.close();
    // Two more cluster URLs where nothing listens: the client cycles through all three.
    const urls = [nats.url, `nats://127.0.0.1:${await freePort()}`, `nats://127.0.0.1:${await freePort()}`];
    // A generous deadline: a loaded machine must not trip it; a stop that waits on NATS never ends.
    const segd = await startSegd({
      env: { SEGD_NATS_URL: urls.join(','), SEGD_SHUTDOWN_GRACE_MS: '1000', SEGD_SHUTDOWN_TIMEOUT_MS: '30000' },
    });
    await waitFor(async () => (await segmentsOf(segd, 'g1')).length === 1);
    await nats.stop(signal);
    await waitFor(async () => natsConnected(segd.url).then((c) => c === 0)); // the consumer is now reconnecting
    expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
  });

  it('commits a fetch of big messages in parts of at most SEGD_LOADER_BATCH records, each after a whole message', async () => {
    const nats = await startNats(await freePort(), tempDir());
    const { nc, js } = await client(nats.url);
    // 12 messages of 40 records: 480 records in one fetch.
    for (let m = 0; m < 12; m++) {
      let body = '';
      for (let r = 0; r < 40; r++) body += feedLine({ op: 'add', uid: `big-${m}-${r}`, segments: [5] });
      await js.publish('segments.big', body);
    }
    await nc.close();
    const admin = 'nats-admin-key-0123456789';
    const segd = await startSegd({
      env: { SEGD_NATS_URL: nats.url, SEGD_LOADER_BATCH: '100', SEGD_ADMIN_KEYS: admin },
    });
    try {
      await waitFor(async () => (await segmentsOf(segd, 'big-11-39')).length === 1);
      const tl = (await (
        await fetch(`${segd.url}/v1/admin/timeline`, { headers: { authorization: `Bearer ${admin}` } })
      ).json()) as { events: Array<{ kind: string; detail?: { records?: number } }> };
      const parts = tl.events.filter((e) => e.kind === 'commit' && (e.detail?.records ?? 0) > 0);
      // Whole messages of 40, cut once a part reaches 100: 120 each when one fetch takes all 12 (fewer at a fetch's end).
      const sizes = parts.map((e) => e.detail!.records!);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(480);
      expect(sizes.length).toBeGreaterThanOrEqual(4);
      for (const n of sizes) expect(n % 40 === 0 && n <= 120, `part of ${n}`).toBe(true);
      for (let m = 0; m < 12; m++) expect(await segmentsOf(segd, `big-${m}-0`)).toEqual([5]);
    } finally {
      expect(await stopReport(segd)).toEqual(CLEAN_STOP);
      await nats.stop();
    }
  });

  it('replays a backlog in one pull sized at attach, bigger than SEGD_NATS_BATCH, one transaction, on a consumer made with the default ack window', async () => {
    const nats = await startNats(await freePort(), tempDir());
    const { nc, js } = await client(nats.url);
    const N = 3000;
    await publishMany(js, 'segments.b', [0, N], (i) => feedLine({ op: 'add', uid: `b${i}`, segments: [1 + (i % 7)] }));
    // The durable exists already, as an older segd made it: the server's default window of 1,000 unacked messages.
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add('SEGMENTS', { durable_name: 'node-b', ack_policy: AckPolicy.All });
    expect((await jsm.consumers.info('SEGMENTS', 'node-b')).config.max_ack_pending).toBe(1000);
    const admin = 'nats-admin-key-0123456789';
    const segd = await startSegd({
      env: { SEGD_NATS_URL: nats.url, SEGD_NATS_BATCH: '100', SEGD_NATS_DURABLE: 'node-b', SEGD_ADMIN_KEYS: admin },
    });
    try {
      await waitFor(async () => (await segmentsOf(segd, `b${N - 1}`)).length === 1);
      const tl = (await (
        await fetch(`${segd.url}/v1/admin/timeline`, { headers: { authorization: `Bearer ${admin}` } })
      ).json()) as { events: Array<{ kind: string; detail?: { records?: number } }> };
      const sizes = tl.events
        .filter((e) => e.kind === 'commit' && (e.detail?.records ?? 0) > 0)
        .map((e) => e.detail!.records!);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(N);
      // The consumer's backlog at attach sizes the first pull: all of it in one pull, one
      // transaction (not 30 of 100 each; the server's window would have cut it at 1,000).
      expect(sizes).toEqual([N]);
      expect((await jsm.consumers.info('SEGMENTS', 'node-b')).config.max_ack_pending).toBeGreaterThan(1000);
      await waitFor(
        async () => ((await (await fetch(`${segd.url}/readyz`)).json()) as { lag?: { nats: number } }).lag?.nats === 0,
      );
      for (const i of [0, 99, 100, N - 1]) expect(await segmentsOf(segd, `b${i}`)).toEqual([1 + (i % 7)]);
    } finally {
      await nc.close();
      expect(await stopReport(segd)).toEqual(CLEAN_STOP);
      await nats.stop();
    }
  });

  it('SIGKILL mid-stream: the restart applies exactly the messages after its checkpoint', async () => {
    const port = await freePort();
    const nats = await startNats(port, tempDir());
    const { nc, js } = await client(nats.url);
    const N = 6000;
    await publishMany(js, 'segments.x', [0, N], (i) => feedLine({ op: 'add', uid: `k${i}`, segments: [i % 100] }));

    const dataDir = tempDir();
    // A backlog is pulled whole and committed in parts of SEGD_LOADER_BATCH, acked after the last:
    // the kill lands between parts, with messages delivered but neither committed nor acked.
    const env = {
      SEGD_NATS_URL: nats.url,
      SEGD_NATS_BATCH: '200',
      SEGD_LOADER_BATCH: '50',
      SEGD_NATS_DURABLE: 'node-a',
      SEGD_LOG_LEVEL: 'debug',
    };
    // The kill is timed by the store itself (its checkpoint, read as each part
    // commits), not by lookups: a small backlog can be replayed before the
    // node answers its first one.
    const victim = spawnTracked(process.execPath, [BIN, 'serve'], { env: segdEnv(dataDir, env), stdio: 'ignore' });
    const died = new Promise((r) => victim.once('exit', r));
    const killedAt = await checkpointWhen(dataDir, 'ckpt:nats:SEGMENTS:node-a', (seq) => seq >= 1000);
    victim.kill('SIGKILL');
    await died;
    expect(killedAt, 'the kill landed mid-replay').toBeLessThan(N);

    const segd = await startSegd({ dataDir, env });
    // Where the committed state ended when the process died (at or past what the poll saw).
    const cp = { seq: (await segd.waitForLog((l) => l.msg === 'jetstream source attached')).resumeAfter as number };
    expect(cp.seq).toBeGreaterThanOrEqual(killedAt);
    expect(cp.seq, 'the kill landed before the last part committed').toBeLessThan(N);
    await waitFor(async () => (await segmentsOf(segd, `k${N - 1}`)).length === 1, 30_000);
    await waitFor(
      async () => ((await (await fetch(`${segd.url}/readyz`)).json()) as { lag?: { nats: number } }).lag?.nats === 0,
    );
    const m = await (await fetch(`${segd.url}/metrics`)).text();
    // Exactly the messages after the checkpoint: none at or below it re-applied,
    // none the dead process had fetched but not committed lost.
    expect(Number(/segd_loader_records_total\{source="nats",outcome="applied"\} (\d+)/.exec(m)?.[1])).toBe(N - cp.seq);
    for (const i of [0, 999, cp.seq - 1, cp.seq, N - 1]) expect(await segmentsOf(segd, `k${i}`)).toEqual([i % 100]);
    expect(Number(/^segd_store_users (\d+)$/m.exec(m)?.[1])).toBe(N);
    await nc.close();
    expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
    await nats.stop();
  });
  // A backlog of more than two catch-up pulls (20,000 messages each): the
  // next pull is in flight while one commits (in parts of SEGD_LOADER_BATCH).
  describe('a backlog replayed with the next pull in flight', () => {
    const N = 45_000;
    const env = (nats: string, durable: string) => ({
      SEGD_NATS_URL: nats,
      SEGD_LOADER_BATCH: '500',
      SEGD_NATS_DURABLE: durable,
    });
    /** N messages of a record each; `padBytes`: a header segd does not read makes each message that much bigger. */
    async function backlog(url: string, padBytes = 0): Promise<NatsConnection> {
      const { nc, js } = await client(url);
      const headers = natsHeaders();
      if (padBytes > 0) headers.set('X-Pad', 'p'.repeat(padBytes));
      await publishMany(
        js,
        'segments.p',
        [0, N],
        (j) => feedLine({ op: 'add', uid: `p${j}`, segments: [j % 100] }),
        padBytes > 0 ? { headers } : {},
      );
      return nc;
    }
    const consumerState = async (nc: NatsConnection, durable: string) => {
      const info = await (await jetstreamManager(nc)).consumers.info('SEGMENTS', durable);
      return { delivered: info.delivered.stream_seq, ackFloor: info.ack_floor.stream_seq };
    };
    /** Restarts on `dataDir`: exactly the messages after the checkpoint are applied. */
    async function resumesExactly(url: string, dataDir: string, durable: string): Promise<number> {
      const segd = await startSegd({ dataDir, env: env(url, durable) });
      try {
        const resumeAfter = (await segd.waitForLog((l) => l.msg === 'jetstream source attached')).resumeAfter as number;
        await waitFor(
          async () =>
            ((await (await fetch(`${segd.url}/readyz`)).json()) as { lag?: { nats: number } }).lag?.nats === 0,
          60_000,
        );
        const m = await (await fetch(`${segd.url}/metrics`)).text();
        // None at or below the checkpoint applied again, none fetched but uncommitted lost.
        expect(Number(/segd_loader_records_total\{source="nats",outcome="applied"\} (\d+)/.exec(m)?.[1])).toBe(
          N - resumeAfter,
        );
        expect(Number(/^segd_store_users (\d+)$/m.exec(m)?.[1])).toBe(N);
        for (const i of [0, resumeAfter - 1, resumeAfter, 21_000, N - 1])
          expect(await segmentsOf(segd, `p${i}`)).toEqual([i % 100]);
        return resumeAfter;
      } finally {
        expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
      }
    }

    it('SIGKILL mid-replay, a pull delivered but not committed: the restart applies exactly the rest', async () => {
      const nats = await startNats(await freePort(), tempDir());
      const nc = await backlog(nats.url);
      const dataDir = tempDir();
      try {
        const victim = await startSegd({ dataDir, env: env(nats.url, 'node-k') });
        await waitFor(async () => (await segmentsOf(victim, 'p5000')).length === 1, 60_000);
        victim.proc.kill('SIGKILL');
        await victim.exited;
        const { delivered } = await consumerState(nc, 'node-k');
        const resumeAfter = await resumesExactly(nats.url, dataDir, 'node-k');
        // The server handed out more than the store had committed: a pull was in hand when the process died.
        expect(delivered).toBeGreaterThan(resumeAfter);
      } finally {
        await nc.close();
        await nats.stop();
      }
    });

    it('a server silent for 1.7 s mid-pull: the catch-up pull waits it out and goes on', async () => {
      const port = await freePort();
      const server = await spawnNats(port, tempDir());
      const url = `nats://127.0.0.1:${port}`;
      // ≈ 1 KB a message: a 20,000-message pull is more than the sockets hold, so most of it is still
      // at the server when it stops.
      const nc = await backlog(url, 1000);
      const dataDir = tempDir();
      try {
        const segd = await startSegd({ dataDir, env: { ...env(url, 'node-h'), SEGD_LOG_LEVEL: 'debug' } });
        try {
          // The first pull is in and the second asked for: the server then stalls (as a
          // CPU-starved or paused server does) for longer than a live pull's heartbeats allow.
          await segd.waitForLog((l) => l.msg === 'jetstream pull' && (l.got as number) > 0, 60_000);
          server.kill('SIGSTOP');
          try {
            await new Promise((r) => setTimeout(r, 1700));
          } finally {
            server.kill('SIGCONT');
          }
          await waitFor(
            async () =>
              ((await (await fetch(`${segd.url}/readyz`)).json()) as { lag?: { nats: number } }).lag?.nats === 0,
            60_000,
          );
          // Not ended on the silence: no consumer made anew, no message dropped and pulled again.
          const ended = segd.logs.filter((l) => /missed heartbeats|ahead of the store/.test(l.msg ?? ''));
          expect(ended.map((l) => l.msg)).toEqual([]);
          const m = await (await fetch(`${segd.url}/metrics`)).text();
          expect(Number(/segd_loader_records_total\{source="nats",outcome="applied"\} (\d+)/.exec(m)?.[1])).toBe(N);
        } finally {
          expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
        }
      } finally {
        server.kill('SIGCONT');
        await nc.close();
        await new Promise<void>((r) => {
          if (server.exitCode !== null || server.signalCode !== null) return r();
          server.once('exit', () => r());
          server.kill('SIGTERM');
        });
      }
    });

    it('a stop mid-replay acks what it committed, drops the pull arriving, and the restart applies exactly the rest', async () => {
      const nats = await startNats(await freePort(), tempDir());
      const nc = await backlog(nats.url);
      const dataDir = tempDir();
      try {
        const segd = await startSegd({ dataDir, env: env(nats.url, 'node-s') });
        await waitFor(async () => (await segmentsOf(segd, 'p5000')).length === 1, 60_000);
        expect(await stopReport(segd)).toEqual(CLEAN_STOP);
        const { delivered, ackFloor } = await consumerState(nc, 'node-s');
        const resumeAfter = await resumesExactly(nats.url, dataDir, 'node-s');
        // Everything committed was acked before the connection closed, and nothing past it.
        expect(ackFloor).toBe(resumeAfter);
        expect(delivered).toBeGreaterThanOrEqual(ackFloor);
      } finally {
        await nc.close();
        await nats.stop();
      }
    });

    it('a stop while a big group still commits in parts waits for them and acks the group', async () => {
      // 4,000 messages of 50 records: one catch-up pull, one group of 200,000
      // records, committed a message a part (SEGD_LOADER_BATCH 50), each part
      // with its sync: seconds, more than stop()'s grace for an ack.
      const M = 4_000;
      const R = 50;
      const nats = await startNats(await freePort(), tempDir());
      const { nc, js } = await client(nats.url);
      await publishMany(js, 'segments.g', [0, M], (j) => {
        let body = '';
        for (let k = 0; k < R; k++) body += feedLine({ op: 'add', uid: `g${j * R + k}`, segments: [k] });
        return body;
      });
      const dataDir = tempDir();
      try {
        const segd = await startSegd({
          dataDir,
          env: { ...env(nats.url, 'node-g'), SEGD_LOADER_BATCH: '50', SEGD_SHUTDOWN_TIMEOUT_MS: '120000' },
        });
        // The group's first part is in; the rest commit after the stop begins.
        await waitFor(async () => (await segmentsOf(segd, 'g0')).length === 1, 60_000);
        expect(await stopReport(segd)).toEqual(CLEAN_STOP);
        const { delivered, ackFloor } = await consumerState(nc, 'node-g');
        expect(delivered).toBe(M);
        // Every part committed before the connection closed, and the group's ack reached the server.
        expect(ackFloor).toBe(M);
        expect(await checkpointWhen(dataDir, 'ckpt:nats:SEGMENTS:node-g', (seq) => seq >= 0)).toBe(M);
      } finally {
        await nc.close();
        await nats.stop();
      }
    });
  });
});

describe('NATS JetStream 3-node cluster', () => {
  it('carries on when the stream leader is stopped mid-stream', async () => {
    const [p1, p2, p3, c1, c2, c3] = await Promise.all(Array.from({ length: 6 }, freePort));
    const clientPorts = [p1!, p2!, p3!];
    const routes = [c1!, c2!, c3!].map((p) => `nats://127.0.0.1:${p}`).join(',');
    const nodes = new Map<string, ChildProcess>();
    await Promise.all(
      clientPorts.map(async (port, i) => {
        const name = `n${i + 1}`;
        const cluster = [
          '-n',
          name,
          '--cluster_name',
          'segd-test',
          '--cluster',
          `nats://127.0.0.1:${[c1, c2, c3][i]}`,
          '--routes',
          routes,
        ];
        nodes.set(name, await spawnNats(port, tempDir(), cluster));
      }),
    );
    const urls = clientPorts.map((p) => `nats://127.0.0.1:${p}`);
    const nc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    // The cluster needs a moment to elect a meta leader.
    let leader = '';
    for (const end = Date.now() + 20_000; ;) {
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: 'SEGMENTS', subjects: ['segments.>'], num_replicas: 3 });
        leader = (await jsm.streams.info('SEGMENTS')).cluster!.leader!;
        break;
      } catch (err) {
        if (Date.now() > end) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const js = jetstream(nc);
    // A message id per record, as a real producer sets it: a publish retried
    // across the leader change is deduplicated by JetStream, not stored twice.
    const publish = (from: number, to: number) =>
      publishMany(
        js,
        'segments.c',
        [from, to],
        (j) => feedLine({ op: 'add', uid: `c${j}`, segments: [j % 50] }),
        (j) => ({ msgID: `c${j}` }),
      );
    await publish(0, 3000);
    const segd = await startSegd({ env: { SEGD_NATS_URL: urls.join(','), SEGD_NATS_BATCH: '100' } });
    await waitFor(async () => (await segmentsOf(segd, 'c500')).length === 1, 30_000);

    // Stop the stream's leader mid-stream; publishing and consuming go on.
    await new Promise<void>((r) => {
      const proc = nodes.get(leader)!;
      proc.once('exit', () => r());
      proc.kill('SIGTERM');
    });
    for (const end = Date.now() + 30_000; ;) {
      try {
        await publish(3000, 6000);
        break;
      } catch (err) {
        if (Date.now() > end) throw err; // a new leader is being elected
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    await waitFor(async () => (await segmentsOf(segd, 'c5999')).length === 1, 60_000);
    for (const i of [0, 2999, 3000, 4500, 5999]) expect(await segmentsOf(segd, `c${i}`)).toEqual([i % 50]);
    const m = await (await fetch(`${segd.url}/metrics`)).text();
    expect(Number(/^segd_store_users (\d+)$/m.exec(m)?.[1])).toBe(6000);
    expect(Number(/segd_loader_records_total\{source="nats",outcome="applied"\} (\d+)/.exec(m)?.[1])).toBe(6000);
    await nc.close();
    expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
    await Promise.all(
      [...nodes.values()]
        .filter((p) => p.exitCode === null)
        .map((p) => new Promise((r) => p.once('exit', r).kill('SIGTERM'))),
    );
  });
});
