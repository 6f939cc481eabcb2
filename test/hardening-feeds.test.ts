// Hostile feed records through the real server: a record that cannot be
// parsed, validated or described (deep nesting, 64-bit integers) is one
// rejected record with a reason, whatever the source (inbox NDJSON, gzip,
// msgpack, snapshot, HTTP push); the records around it are applied and the
// files after it are imported.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync, existsSync, createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { gzipSync, createGzip } from 'node:zlib';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { pack } from 'msgpackr';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  startSegd,
  stopReport,
  CLEAN_STOP,
  dropFeed,
  feedLine,
  segmentsOf,
  tempDir,
  waitFor,
  type Segd,
} from './helpers/server.js';

const KEY = 'ingest-key-hardening-0123456789';
const DEPTH = 100_000;
const now = Math.floor(Date.now() / 1000);

/** `{"op":[[[…]]],"uid":"x"}`: a field of the wrong type, nested DEPTH deep. */
export const deepJson = () => `{"op":${'['.repeat(DEPTH)}${']'.repeat(DEPTH)},"uid":"x"}\n`;

/** The same as msgpack: a map whose "op" is DEPTH nested one-element arrays. */
export function deepMsgpack(): Buffer {
  return Buffer.concat([
    Buffer.from([0x82, 0xa2, 0x6f, 0x70]), // map of 2, "op"
    Buffer.alloc(DEPTH, 0x91), // fixarray of 1, DEPTH times
    Buffer.from([0x01, 0xa3, 0x75, 0x69, 0x64, 0xa1, 0x78]), // 1, "uid", "x"
  ]);
}

/** msgpack str (fixstr or str8) */
function str(s: string): Buffer {
  const b = Buffer.from(s);
  return b.length < 32
    ? Buffer.concat([Buffer.from([0xa0 | b.length]), b])
    : Buffer.concat([Buffer.from([0xd9, b.length]), b]);
}
const int64 = (n: bigint) => {
  const b = Buffer.alloc(9);
  b[0] = 0xd3;
  b.writeBigInt64BE(n, 1);
  return b;
};
const uint64 = (n: bigint) => {
  const b = Buffer.alloc(9);
  b[0] = 0xcf;
  b.writeBigUInt64BE(n, 1);
  return b;
};

/**
 * `{"op":"add","uid":uid,"segments":[seg, {"id":seg2,"ttl":ttl}],"ts":ts}` with
 * every number encoded as given (0xd3 int64 / 0xcf uint64, as Go and Java emit).
 */
export function wideRecord(uid: string, seg: Buffer, seg2: Buffer, ttl: Buffer, ts: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([0x84]),
    str('op'),
    str('add'),
    str('uid'),
    str(uid),
    str('segments'),
    Buffer.from([0x92]),
    seg,
    Buffer.from([0x82]),
    str('id'),
    seg2,
    str('ttl'),
    ttl,
    str('ts'),
    ts,
  ]);
}
const goodWide = (uid: string) => wideRecord(uid, uint64(41n), int64(42n), uint64(3600n), int64(BigInt(now)));

interface Reject {
  line: number;
  reason: string;
}
const readRejects = (inbox: string, file: string): Reject[] =>
  readFileSync(join(inbox, 'rejects', `${file}.rejects.ndjson`), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Reject);

describe('hostile records in the inbox, snapshots and HTTP push', () => {
  let segd: Segd;
  let inbox: string;
  beforeAll(async () => {
    segd = await startSegd({ env: { SEGD_INGEST_KEYS: KEY } });
    inbox = join(segd.dataDir, 'inbox');
  });
  afterAll(async () => {
    if (segd) expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  const imported = (file: string) => segd.waitForLog((l) => l.msg === 'inbox file imported' && l.file === file);
  const push = (body: string | Buffer, type = 'application/x-ndjson') =>
    fetch(`${segd.url}/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': type },
      body,
    });

  it('a deeply nested NDJSON line is one reject; the file and the next one are imported', async () => {
    const body =
      feedLine({ op: 'add', uid: 'nd-1', segments: [1] }) +
      deepJson() +
      feedLine({ op: 'add', uid: 'nd-2', segments: [2] });
    await dropFeed(inbox, '001-deep.ndjson', body);
    await dropFeed(inbox, '002-after.ndjson', feedLine({ op: 'add', uid: 'nd-after', segments: [3] }));
    const first = await imported('001-deep.ndjson');
    expect(first).toMatchObject({ applied: 2, rejected: 1 });
    await imported('002-after.ndjson');
    expect(await segmentsOf(segd, 'nd-1')).toEqual([1]);
    expect(await segmentsOf(segd, 'nd-2')).toEqual([2]);
    expect(await segmentsOf(segd, 'nd-after')).toEqual([3]);
    const [r] = readRejects(inbox, '001-deep.ndjson');
    expect(r!.line).toBe(2);
    expect(r!.reason).toMatch(/^"op" must be one of add, remove, replace, delete, match; got \[\[\[/);
    expect(r!.reason.length).toBeLessThan(200);
  });

  it('the same in a gzip file', async () => {
    const body =
      feedLine({ op: 'add', uid: 'gz-1', segments: [1] }) +
      deepJson() +
      feedLine({ op: 'add', uid: 'gz-2', segments: [2] });
    await dropFeed(inbox, '003-deep.ndjson.gz', gzipSync(body));
    await dropFeed(inbox, '004-after.ndjson', feedLine({ op: 'add', uid: 'gz-after', segments: [3] }));
    expect(await imported('003-deep.ndjson.gz')).toMatchObject({ applied: 2, rejected: 1 });
    await imported('004-after.ndjson');
    expect(await segmentsOf(segd, 'gz-2')).toEqual([2]);
    expect(await segmentsOf(segd, 'gz-after')).toEqual([3]);
    expect(readRejects(inbox, '003-deep.ndjson.gz').map((r) => r.line)).toEqual([2]);
  });

  it('a msgpack record too deep to decode is one reject; the records after it are applied', async () => {
    const body = Buffer.concat([
      pack({ op: 'add', uid: 'mp-1', segments: [1] }),
      deepMsgpack(),
      pack({ op: 'add', uid: 'mp-2', segments: [2] }),
    ]);
    await dropFeed(inbox, '005-deep.msgpack', body);
    await dropFeed(inbox, '006-after.ndjson', feedLine({ op: 'add', uid: 'mp-after', segments: [3] }));
    expect(await imported('005-deep.msgpack')).toMatchObject({ applied: 2, rejected: 1 });
    await imported('006-after.ndjson');
    expect(await segmentsOf(segd, 'mp-1')).toEqual([1]);
    expect(await segmentsOf(segd, 'mp-2')).toEqual([2]);
    const [r] = readRejects(inbox, '005-deep.msgpack');
    expect(r!.line).toBe(2);
    expect(r!.reason).toMatch(/cannot be decoded/);
  });

  it('a snapshot with a deeply nested record loads the rest; a later delta is imported', async () => {
    const body =
      feedLine({ op: 'add', uid: 'sn-1', segments: [7], ts: now - 5 }) +
      deepJson() +
      feedLine({ op: 'add', uid: 'sn-2', segments: [8], ts: now - 5 });
    await dropFeed(inbox, '007-full.snapshot.ndjson', body);
    await dropFeed(inbox, '008-after.ndjson', feedLine({ op: 'add', uid: 'sn-after', segments: [9] }));
    expect(await imported('007-full.snapshot.ndjson')).toMatchObject({ applied: 2, rejected: 1 });
    await imported('008-after.ndjson');
    expect(await segmentsOf(segd, 'sn-1')).toEqual([7]);
    expect(await segmentsOf(segd, 'sn-2')).toEqual([8]);
    expect(await segmentsOf(segd, 'sn-after')).toEqual([9]);
    expect(readRejects(inbox, '007-full.snapshot.ndjson').map((r) => r.line)).toEqual([2]);
  });

  it('HTTP push: the deep NDJSON line and the deep msgpack record are rejected with reasons, the rest applied', async () => {
    const nd = await push(
      feedLine({ op: 'add', uid: 'ps-1', segments: [1] }) +
        deepJson() +
        feedLine({ op: 'add', uid: 'ps-2', segments: [2] }),
    );
    expect(nd.status).toBe(200);
    const a = (await nd.json()) as { applied: number; rejected: number; rejects: Reject[] };
    expect(a).toMatchObject({ applied: 2, rejected: 1 });
    expect(a.rejects[0]!.line).toBe(2);
    expect(a.rejects[0]!.reason).toMatch(/^"op" must be one of/);

    const mp = await push(
      Buffer.concat([
        pack({ op: 'add', uid: 'ps-3', segments: [3] }),
        deepMsgpack(),
        pack({ op: 'add', uid: 'ps-4', segments: [4] }),
      ]),
      'application/msgpack',
    );
    expect(mp.status).toBe(200);
    const b = (await mp.json()) as { applied: number; rejected: number; rejects: Reject[] };
    expect(b).toMatchObject({ applied: 2, rejected: 1 });
    expect(b.rejects[0]).toMatchObject({ line: 2, reason: expect.stringMatching(/cannot be decoded/) });
    for (const [uid, seg] of [
      ['ps-1', 1],
      ['ps-2', 2],
      ['ps-3', 3],
      ['ps-4', 4],
    ] as const)
      expect(await segmentsOf(segd, uid)).toEqual([seg]);
    // And a later push goes through.
    expect((await push(feedLine({ op: 'add', uid: 'ps-5', segments: [5] }))).status).toBe(200);
    expect(await segmentsOf(segd, 'ps-5')).toEqual([5]);
  });

  it('msgpack int64/uint64 numbers are accepted wherever a number is; out of range is a reject with a reason (inbox)', async () => {
    const body = Buffer.concat([
      goodWide('w-1'),
      wideRecord('w-big-ts', uint64(41n), int64(42n), uint64(60n), uint64(0xffff_ffff_ffff_ffffn)),
      wideRecord('w-big-seg', int64(1n << 40n), int64(42n), uint64(60n), int64(BigInt(now))),
      wideRecord('w-neg-ttl', uint64(41n), int64(42n), int64(-5n), int64(BigInt(now))),
      goodWide('w-2'),
    ]);
    await dropFeed(inbox, '010-wide.msgpack', body);
    expect(await imported('010-wide.msgpack')).toMatchObject({ applied: 2, rejected: 3 });
    expect(await segmentsOf(segd, 'w-1')).toEqual([41, 42]);
    expect(await segmentsOf(segd, 'w-2')).toEqual([41, 42]);
    const rejects = readRejects(inbox, '010-wide.msgpack');
    expect(rejects.map((r) => r.line)).toEqual([2, 3, 4]);
    expect(rejects[0]!.reason).toBe('"ts" must be unix seconds (a positive integer); got 18446744073709551615');
    expect(rejects[1]!.reason).toMatch(/^segments\[0\] must be an integer 0\.\.4294967295/);
    expect(rejects[2]!.reason).toMatch(/^segments\[1\]\.ttl must be whole seconds/);
  });

  it('a file of nothing but bad records lists at most 100,000 rejects and counts them all', async () => {
    // 300,000 msgpack zeros: each a record that is not a map.
    await dropFeed(
      inbox,
      '011-zeros.msgpack',
      Buffer.concat([Buffer.alloc(300_000), pack({ op: 'add', uid: 'z-last', segments: [9] })]),
    );
    expect(await imported('011-zeros.msgpack')).toMatchObject({ applied: 1, rejected: 300_000 });
    expect(await segmentsOf(segd, 'z-last')).toEqual([9]);
    const rejects = readRejects(inbox, '011-zeros.msgpack');
    expect(rejects).toHaveLength(100_001);
    expect(rejects[0]).toEqual({ line: 1, reason: 'record must be a JSON object' });
    expect(rejects.at(-1)).toEqual({ line: 0, reason: '200000 more rejects not listed (at most 100000 are)' });
  });

  it('msgpack int64/uint64 numbers through HTTP push', async () => {
    const r = await push(
      Buffer.concat([goodWide('wp-1'), wideRecord('wp-bad', uint64(41n), int64(42n), uint64(60n), int64(-1n))]),
      'application/msgpack',
    );
    expect(r.status).toBe(200);
    const a = (await r.json()) as { applied: number; rejected: number; rejects: Reject[] };
    expect(a).toMatchObject({ applied: 1, rejected: 1 });
    expect(a.rejects[0]).toEqual({ line: 2, reason: '"ts" must be unix seconds (a positive integer); got -1' });
    expect(await segmentsOf(segd, 'wp-1')).toEqual([41, 42]);
  });
});

describe('hostile records on NATS JetStream', () => {
  const procs: ChildProcess[] = [];
  let segd: Segd | undefined;
  afterAll(async () => {
    if (segd && segd.proc.exitCode === null && segd.proc.signalCode === null) {
      segd.proc.kill('SIGKILL');
      await segd.exited;
    }
    for (const p of procs) p.kill('SIGKILL');
  });

  it('a deeply nested record is rejected and acked; the messages around and after it are applied', async () => {
    if (spawnSync('nats-server', ['--version']).status !== 0)
      throw new Error('nats-server is not installed: run `bash .ci/setup-system.sh`');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const nats = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', tempDir()], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(nats);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes('Server is ready')) resolve();
      };
      nats.stdout!.on('data', onData);
      nats.stderr!.on('data', onData);
      nats.once('exit', (c) => reject(new Error(`nats-server exited ${c}: ${out}`)));
    });
    const url = `nats://127.0.0.1:${port}`;
    const nc = await connect({ servers: url });
    try {
      await (await jetstreamManager(nc)).streams.add({ name: 'SEGMENTS', subjects: ['segments.>'] });
      const js = jetstream(nc);
      const h = natsHeaders();
      h.set('Content-Type', 'application/msgpack');
      await js.publish(
        'segments.a',
        feedLine({ op: 'add', uid: 'js-1', segments: [1] }) +
          deepJson() +
          feedLine({ op: 'add', uid: 'js-2', segments: [2] }),
      );
      await js.publish('segments.a', Buffer.concat([deepMsgpack(), pack({ op: 'add', uid: 'js-3', segments: [3] })]), {
        headers: h,
      });
      await js.publish('segments.a', goodWide('js-wide'), { headers: h });
      segd = await startSegd({ env: { SEGD_NATS_URL: url } });
      await waitFor(async () => (await segmentsOf(segd!, 'js-wide')).length === 2);
      // A message published after the poison ones is applied too: nothing is stuck.
      await js.publish('segments.a', feedLine({ op: 'add', uid: 'js-after', segments: [4] }));
      await waitFor(async () => (await segmentsOf(segd!, 'js-after')).length === 1);
      expect(await segmentsOf(segd, 'js-1')).toEqual([1]);
      expect(await segmentsOf(segd, 'js-2')).toEqual([2]);
      expect(await segmentsOf(segd, 'js-3')).toEqual([3]);
      expect(await segmentsOf(segd, 'js-wide')).toEqual([41, 42]);
      const m = await (await fetch(`${segd.url}/metrics`)).text();
      expect(Number(/segd_loader_records_total\{source="nats",outcome="rejected"\} (\d+)/.exec(m)?.[1])).toBe(2);
      const warned = segd.logs.filter((l) => l.msg === 'jetstream message rejected (acked, not retried)');
      expect(warned.map((l) => (l.rejects as Reject[])[0]!.reason)).toEqual([
        expect.stringMatching(/^"op" must be one of/),
        expect.stringMatching(/^msgpack record cannot be decoded/),
      ]);
      expect(segd.logs.filter((l) => l.msg === 'jetstream source: retrying')).toEqual([]);
    } finally {
      await nc.close();
    }
    const s = segd;
    segd = undefined;
    expect(await stopReport(s, { allowWarnings: true })).toEqual(CLEAN_STOP);
  });
});

describe('known-users filter across restarts', () => {
  it('a feed that only changes existing users does not make the saved filter stale', async () => {
    const dataDir = tempDir();
    const env = { SEGD_BLOOM_USERS: '1000', SEGD_INGEST_KEYS: KEY };
    const uids = Array.from({ length: 50 }, (_, i) => `ku-${i}`);
    const pushTo = (s: Segd, body: string) =>
      fetch(`${s.url}/v1/ingest`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-ndjson' },
        body,
      });
    const started: Segd[] = [];
    try {
      // New users.
      const first = await startSegd({ dataDir, env });
      started.push(first);
      expect(
        (await pushTo(first, uids.map((uid) => feedLine({ op: 'add', uid, segments: [1] })).join(''))).status,
      ).toBe(200);
      expect(await stopReport(first)).toEqual(CLEAN_STOP);

      // Restart: the filter loads; then only updates to existing users, in several commits.
      const second = await startSegd({ dataDir, env });
      started.push(second);
      expect(second.logs.some((l) => l.msg === 'known-users filter loaded' && l.keys === 50)).toBe(true);
      for (let round = 2; round <= 4; round++) {
        const r = await pushTo(second, uids.map((uid) => feedLine({ op: 'add', uid, segments: [round] })).join(''));
        expect(await r.json()).toMatchObject({ applied: 50 });
      }
      expect(await stopReport(second)).toEqual(CLEAN_STOP);

      // Restart again: the saved filter still matches the store.
      const third = await startSegd({ dataDir, env });
      started.push(third);
      expect(third.logs.filter((l) => /known-users filter/.test(String(l.msg))).map((l) => l.msg)).toEqual([
        'known-users filter loaded',
      ]);
      for (const uid of uids) expect(await segmentsOf(third, uid)).toEqual([1, 2, 3, 4]);
      expect(await stopReport(third)).toEqual(CLEAN_STOP);
    } finally {
      for (const s of started) {
        if (s.proc.exitCode === null && s.proc.signalCode === null) {
          s.proc.kill('SIGKILL');
          await s.exited;
        }
      }
    }
  });
});

/** Peak resident memory of a process (kB), from /proc. */
const vmHwmKb = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

/** Writes `total` bytes of `line` repeated, gzipped, to `path` (streamed: the plain bytes never exist whole). */
async function writeGzipBomb(path: string, line: string, total: number): Promise<void> {
  const block = Buffer.from(line.repeat(Math.floor((1 << 20) / line.length)));
  const chunks = Math.ceil(total / block.length);
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0; i < chunks; i++) yield block;
      })(),
    ),
    createGzip({ level: 9 }),
    createWriteStream(path),
  );
}

describe('snapshot and inbox files that could take the process down', () => {
  const started: Segd[] = [];
  afterAll(async () => {
    for (const s of started) {
      if (s.proc.exitCode === null && s.proc.signalCode === null) {
        s.proc.kill('SIGKILL');
        await s.exited;
      }
    }
  });

  it('a gzip-bomb snapshot is refused with bounded memory; the next file is imported', async () => {
    const segd = await startSegd({ env: { SEGD_INBOX_POLL_MS: '100' } });
    started.push(segd);
    const inbox = join(segd.dataDir, 'inbox');
    // 1 GiB of records (≈ 25M users' worth) in ≈ 3 MB of gzip.
    const line = feedLine({ op: 'add', uid: 'bomb-user-00000001', segments: [1, 2, 3], ts: now });
    await writeGzipBomb(join(inbox, '001-bomb.snapshot.ndjson.gz.tmp'), line, 1 << 30);
    expect(statSync(join(inbox, '001-bomb.snapshot.ndjson.gz.tmp')).size).toBeLessThan(8 << 20);
    await rename(join(inbox, '001-bomb.snapshot.ndjson.gz.tmp'), join(inbox, '001-bomb.snapshot.ndjson.gz'));
    await dropFeed(inbox, '002-after.ndjson', feedLine({ op: 'add', uid: 'after-bomb', segments: [5] }));
    const refused = await segd.waitForLog(
      (l) => l.msg === 'inbox snapshot refused; moved to done/ with its reason in rejects/',
      50_000,
    );
    expect(String(refused.reason)).toMatch(/gzip expands more than 100× its compressed size/);
    await segd.waitForLog((l) => l.msg === 'inbox file imported' && l.file === '002-after.ndjson');
    expect(await segmentsOf(segd, 'after-bomb')).toEqual([5]);
    expect(await segmentsOf(segd, 'bomb-user-00000001')).toEqual([]);
    // Held whole, the bomb's records alone would take GBs.
    expect(vmHwmKb(segd.proc.pid!)).toBeLessThan(500 * 1024);
    expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
  });

  it('a gzip-bomb delta keeps what came before the limit and rejects the rest with the reason', async () => {
    const segd = await startSegd({ env: { SEGD_INBOX_POLL_MS: '100' } });
    started.push(segd);
    const inbox = join(segd.dataDir, 'inbox');
    const line = feedLine({ op: 'add', uid: 'delta-bomb', segments: [7] });
    await writeGzipBomb(join(inbox, '001-bomb.ndjson.gz.tmp'), line, 1 << 30);
    await rename(join(inbox, '001-bomb.ndjson.gz.tmp'), join(inbox, '001-bomb.ndjson.gz'));
    await dropFeed(inbox, '002-after.ndjson', feedLine({ op: 'add', uid: 'after-delta-bomb', segments: [8] }));
    const done = await segd.waitForLog(
      (l) => l.msg === 'inbox file imported' && l.file === '001-bomb.ndjson.gz',
      50_000,
    );
    expect(done.rejected).toBe(1);
    expect(done.applied as number).toBeGreaterThan(0);
    const [r] = readRejects(inbox, '001-bomb.ndjson.gz');
    expect(r!.reason).toMatch(
      /^gzip expands more than 100× its compressed size .*; the rest of the file is not applied$/,
    );
    await segd.waitForLog((l) => l.msg === 'inbox file imported' && l.file === '002-after.ndjson');
    expect(await segmentsOf(segd, 'delta-bomb')).toEqual([7]);
    expect(await segmentsOf(segd, 'after-delta-bomb')).toEqual([8]);
    expect(vmHwmKb(segd.proc.pid!)).toBeLessThan(500 * 1024);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('a file the process dies on every time is moved to failed/ after SEGD_INBOX_MAX_ATTEMPTS; the files after it go on', async () => {
    const dataDir = tempDir();
    const inbox = join(dataDir, 'inbox');
    const env = { SEGD_INBOX_MAX_ATTEMPTS: '2', SEGD_LOG_LEVEL: 'debug' };
    const lines = Array.from({ length: 600_000 }, (_, i) =>
      feedLine({ op: 'add', uid: `crash-${i}`, segments: [i % 7], ts: now }),
    ).join('');
    await dropFeed(inbox, '001-crash.snapshot.ndjson', lines);
    await dropFeed(inbox, '002-after.ndjson', feedLine({ op: 'add', uid: 'after-crash', segments: [6] }));
    // Two attempts the process does not survive (as if it ran out of memory on the file).
    for (let i = 0; i < 2; i++) {
      const victim = await startSegd({ dataDir, env, waitReady: false });
      started.push(victim);
      await victim.waitForLog((l) => l.msg === 'inbox batch committed' && l.file === '001-crash.snapshot.ndjson');
      victim.proc.kill('SIGKILL');
      await victim.exited;
      expect(existsSync(join(inbox, '001-crash.snapshot.ndjson'))).toBe(true); // killed before it finished
    }
    const segd = await startSegd({ dataDir, env, waitReady: false });
    started.push(segd);
    const q = await segd.waitForLog(
      (l) => l.msg === 'inbox file quarantined: moved to failed/ after failing repeatedly',
    );
    expect(q).toMatchObject({ file: '001-crash.snapshot.ndjson', attempts: 2 });
    await segd.waitForLog((l) => l.msg === 'inbox file imported' && l.file === '002-after.ndjson');
    await segd.waitForLog((l) => l.msg === 'ready');
    expect(await segmentsOf(segd, 'after-crash')).toEqual([6]);
    expect(await segmentsOf(segd, 'crash-1')).toEqual([]);
    expect(existsSync(join(inbox, 'failed', '001-crash.snapshot.ndjson'))).toBe(true);
    expect(readRejects(inbox, '001-crash.snapshot.ndjson').at(-1)!.reason).toMatch(
      /^moved to failed\/ after 2 attempts: the process stopped during each attempt/,
    );
    const m = await (await fetch(`${segd.url}/metrics`)).text();
    expect(/^segd_loader_files_quarantined_total (\d+)$/m.exec(m)?.[1]).toBe('1');
    expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
  });
});

describe('a snapshot too large for the heap', () => {
  let segd: Segd | undefined;
  afterAll(async () => {
    if (segd && segd.proc.exitCode === null && segd.proc.signalCode === null) {
      segd.proc.kill('SIGKILL');
      await segd.exited;
    }
  });

  it('is refused whole with the reason instead of taking the process down; the next file is imported', async () => {
    // A small heap stands in for a snapshot larger than the machine's memory.
    segd = await startSegd({ env: { NODE_OPTIONS: '--max-old-space-size=128' } });
    const inbox = join(segd.dataDir, 'inbox');
    const pad = 'x'.repeat(100);
    const lines = Array.from({ length: 600_000 }, (_, i) =>
      feedLine({ op: 'add', uid: `heap-user-${pad}-${i}`, segments: [1, 2], ts: now }),
    ).join('');
    await dropFeed(inbox, '001-huge.snapshot.ndjson', lines);
    await dropFeed(inbox, '002-after.ndjson', feedLine({ op: 'add', uid: 'after-huge', segments: [4] }));
    const refused = await segd.waitForLog(
      (l) => l.msg === 'inbox snapshot refused; moved to done/ with its reason in rejects/',
      50_000,
    );
    expect(String(refused.reason)).toMatch(/too large to hold in memory/);
    await segd.waitForLog((l) => l.msg === 'inbox file imported' && l.file === '002-after.ndjson');
    expect(await segmentsOf(segd, 'after-huge')).toEqual([4]);
    expect(await segmentsOf(segd, `heap-user-${pad}-1`)).toEqual([]);
    const s = segd;
    segd = undefined;
    expect(await stopReport(s, { allowWarnings: true })).toEqual(CLEAN_STOP);
  });
});
