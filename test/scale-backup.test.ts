// Hot backup and bootstrap against a real nats-server: `segd backup` copies a
// node's store while it serves lookups and consumes the stream; a node started
// on the copy (its own durable consumer) adopts the copied checkpoint, applies
// exactly the messages after it, answers 503 "catching up" on /readyz until
// its backlog is under SEGD_NATS_READY_LAG, loads the copied filter instead of
// rebuilding it, and then answers like the node it was copied from.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  startSegd,
  stopReport,
  CLEAN_STOP,
  tempDir,
  feedLine,
  segmentsOf,
  waitFor,
  runSegd,
} from './helpers/server.js';
import type { Segd } from './helpers/server.js';
import { requireProgram, startNats, type NatsCluster } from './helpers/cluster.js';

requireProgram('nats-server', '--version');

const running: { nats?: NatsCluster; segds: Segd[] } = { segds: [] };
afterAll(async () => {
  await Promise.all(running.segds.map((s) => s.stop()));
  await running.nats?.stop();
});

const lag = async (s: Segd) =>
  ((await (await fetch(`${s.url}/readyz`)).json()) as { lag?: { nats: number | string } }).lag?.nats;
const applied = async (s: Segd) =>
  Number(
    /segd_loader_records_total\{source="nats",outcome="applied"\} (\d+)/.exec(
      await (await fetch(`${s.url}/metrics`)).text(),
    )?.[1] ?? 0,
  );

describe('segd backup', () => {
  it('copies a serving node; a node started on the copy resumes after its checkpoint, ready once caught up', async () => {
    const nats = (running.nats = await startNats(1));
    const publish = async (from: number, to: number, rec: (i: number) => Record<string, unknown>) => {
      for (let i = from; i < to; i += 500) {
        const acks = [];
        for (let j = i; j < Math.min(to, i + 500); j++) acks.push(nats.js.publish('segments.x', feedLine(rec(j))));
        await Promise.all(acks);
      }
    };
    await publish(0, 3000, (i) => ({ op: 'add', uid: `b${i}`, segments: [i % 40, 100 + (i % 7)] }));
    const a = await startSegd({
      env: {
        SEGD_NATS_URL: nats.urls[0]!,
        SEGD_NATS_DURABLE: 'node-a',
        SEGD_NATS_BATCH: '200',
        SEGD_BLOOM_SAVE_MS: '200',
        SEGD_WORKERS: '2',
      },
    });
    running.segds.push(a);
    await waitFor(async () => (await segmentsOf(a, 'b2999')).length === 2, 30_000);

    // Lookups and the stream go on while the copy is made.
    let stopLookups = false;
    const lookups = { ok: 0, failed: [] as string[], maxMs: 0 };
    const lookupLoop = (async () => {
      for (let i = 0; !stopLookups; i++) {
        const t0 = performance.now();
        const r = await fetch(`${a.url}/v1/segments?uid=b${(i * 7919) % 3000}`).catch((e: Error) => e);
        lookups.maxMs = Math.max(lookups.maxMs, performance.now() - t0);
        if (r instanceof Error || r.status !== 200) lookups.failed.push(r instanceof Error ? r.message : `${r.status}`);
        else lookups.ok++;
        if (!(r instanceof Error)) await r.arrayBuffer();
      }
    })();
    const feeding = publish(3000, 4000, (i) => ({ op: 'add', uid: `b${i}`, segments: [i % 40] }));
    const out = join(tempDir('segd-backup-'), 'copy');
    const backup = await runSegd(['backup', '--out', out], {
      SEGD_DATA_DIR: a.dataDir,
      SEGD_BLOOM_SAVE_MS: '200',
      SEGD_LOG_LEVEL: 'warn',
    });
    await feeding;
    stopLookups = true;
    await lookupLoop;
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    expect(lookups.failed).toEqual([]);
    expect(lookups.ok).toBeGreaterThan(0);
    const manifest = JSON.parse(readFileSync(join(out, 'backup.json'), 'utf8')) as {
      checkpoints: Record<string, { seq: number; subject: string }>;
      filter: string;
      users: number;
    };
    const cp = manifest.checkpoints['ckpt:nats:SEGMENTS:node-a']!;
    expect(cp.subject).toBe('segments.>');
    expect(cp.seq).toBeGreaterThanOrEqual(3000);
    expect(manifest.users).toBe(cp.seq); // one new user per message so far
    expect(manifest.filter).toBe('copied');

    // After the copy: removals, changes and new users; a backlog for the new node to work through.
    await publish(4000, 9000, (i) =>
      i % 3 === 0
        ? { op: 'remove', uid: `b${i % 4000}`, segments: [(i % 4000) % 40] }
        : { op: 'add', uid: `b${i}`, segments: [i % 40, 200 + (i % 5)] },
    );
    // The stream's server stalls (SIGSTOP) while B starts: B loads and listens
    // but cannot reach the stream, and must not say ready before it has caught
    // up. (With the server running, B can replay this backlog before the first
    // /readyz reaches it.)
    const natsPid = [...nats.nodes.values()][0]!.pid!;
    const seen: string[] = [];
    const readyz = async (s: Segd) => {
      const r = await fetch(`${s.url}/readyz`);
      const body = (await r.json()) as { status: string; lag?: { nats: number | string } };
      if (seen.at(-1) !== body.status) seen.push(body.status);
      if (r.status === 200) expect(Number(body.lag?.nats)).toBeLessThanOrEqual(5);
      return r.status === 200;
    };
    process.kill(natsPid, 'SIGSTOP');
    let b: Segd;
    try {
      b = await startSegd({
        dataDir: out,
        env: {
          SEGD_NATS_URL: nats.urls[0]!,
          SEGD_NATS_DURABLE: 'node-b',
          SEGD_NATS_BATCH: '10',
          SEGD_NATS_READY_LAG: '5',
        },
      });
      running.segds.push(b);
      expect(await readyz(b)).toBe(false);
    } finally {
      process.kill(natsPid, 'SIGCONT');
    }
    const adopted = await b.waitForLog((l) => l.msg === 'jetstream checkpoint adopted from the copied store');
    expect(adopted.seq).toBe(cp.seq);
    expect(b.logs.some((l) => l.msg === 'known-users filter loaded')).toBe(true);
    // Ready once the backlog was under the threshold.
    await waitFor(() => readyz(b), 60_000);
    expect(seen).toEqual(['catching up', 'ready']);

    await waitFor(async () => (await lag(a)) === 0 && (await lag(b)) === 0, 30_000);
    // Exactly the messages after the copied checkpoint: none re-applied, none lost.
    expect(await applied(b)).toBe(9000 - cp.seq);
    const sample = [...Array.from({ length: 300 }, (_, i) => (i * 7919) % 9000), cp.seq - 1, cp.seq, cp.seq + 1, 8999];
    for (const i of sample) expect(await segmentsOf(b, `b${i}`), `b${i}`).toEqual(await segmentsOf(a, `b${i}`));

    expect(await stopReport(b, { allowWarnings: true })).toEqual(CLEAN_STOP);
    expect(await stopReport(a, { allowWarnings: true })).toEqual(CLEAN_STOP);
  });
});
