// The node as ops see it: workers sharing a port, readiness, graceful
// shutdown with requests in flight, and refusing bad configuration or data.
import { describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { startSegd, runSegd, tempDir, feedLine, stopReport, CLEAN_STOP } from './helpers/server.js';

describe('workers', () => {
  it('two workers answer on one port', async () => {
    const segd = await startSegd({ env: { SEGD_WORKERS: '2' } });
    const seen = new Set<number>();
    // A fresh connection each time: the kernel spreads them over the workers.
    for (let i = 0; i < 60 && seen.size < 2; i++) {
      const r = await fetch(`${segd.url}/healthz`, { headers: { connection: 'close' } });
      seen.add(((await r.json()) as { worker: number }).worker);
    }
    expect([...seen].sort()).toEqual([0, 1]);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });
});

describe('readiness', () => {
  it('says loading until the initial load is done, then ready', async () => {
    const dir = tempDir();
    const seed = join(dir, 'big.ndjson');
    const gen = await runSegd(['gen', '--users', '200000', '--out', seed, '--quiet']);
    expect(gen.code).toBe(0);
    const segd = await startSegd({ env: { SEGD_SEED: seed }, waitReady: false });
    const early = await fetch(`${segd.url}/readyz`);
    expect(early.status).toBe(503);
    expect(await early.json()).toMatchObject({ status: 'loading' });
    // Alive while loading: health is not readiness.
    expect((await fetch(`${segd.url}/healthz`)).status).toBe(200);
    const ready = await segd.waitForLog((l) => l.msg === 'ready', 60_000);
    expect(ready.users).toBe(200000);
    const late = await fetch(`${segd.url}/readyz`);
    expect(late.status).toBe(200);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });
});

describe('graceful shutdown', () => {
  it('finishes a request in flight, refuses new connections, exits 0', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'seed.ndjson'), feedLine({ op: 'add', uid: 'alice', segments: [5] }));
    // A grace no loaded machine runs out of: the test ends the request itself.
    const segd = await startSegd({
      env: {
        SEGD_SEED: join(dir, 'seed.ndjson'),
        SEGD_SHUTDOWN_GRACE_MS: '120000',
        SEGD_SHUTDOWN_TIMEOUT_MS: '180000',
      },
    });
    const body = JSON.stringify({ uids: ['alice', 'bob'] });
    const sock = connect(segd.port, '127.0.0.1');
    let answer = '';
    sock.setEncoding('utf8').on('data', (d: string) => (answer += d));
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(
      `POST /v1/segments:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    sock.write(body.slice(0, 10));
    // The one worker reads connections in order: once it answers a later one, it holds ours.
    expect((await fetch(`${segd.url}/healthz`, { headers: { connection: 'close' } })).status).toBe(200);

    segd.proc.kill('SIGTERM');
    await segd.waitForLog((l) => l.msg === 'shutting down');
    // The listen socket closes: new connections are refused while the old one is served.
    let refused = false;
    for (let i = 0; i < 250 && !refused; i++) {
      refused = await fetch(`${segd.url}/healthz`, { headers: { connection: 'close' } }).then(
        () => false,
        () => true,
      );
      if (!refused) await new Promise((r) => setTimeout(r, 20));
    }
    expect(refused).toBe(true);
    expect(segd.proc.exitCode).toBe(null); // still waiting for our request

    sock.write(body.slice(10));
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(answer).toMatch(/\r\nConnection: close\r\n/i);
    expect(answer.slice(answer.indexOf('\r\n\r\n') + 4)).toBe(
      '{"results":[{"uid":"alice","segments":[5]},{"uid":"bob","segments":[]}]}',
    );
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });
});

describe('refusing to start', () => {
  it('names every bad setting at once and exits 2', async () => {
    const r = await runSegd(['serve'], { SEGD_PORT: 'eighty', SEGD_WORKERS: '0', SEGD_LOG_LEVEL: 'loud' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('SEGD_PORT: expected a whole number, got "eighty"');
    expect(r.stderr).toContain('SEGD_WORKERS: must be between 1 and 256, got 0');
    expect(r.stderr).toContain('SEGD_LOG_LEVEL: must be one of');
  });

  it('reads a config file, env wins, unknown keys are errors', async () => {
    const dir = tempDir();
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ kvKey: 'aud', port: 1 }));
    const seed = join(dir, 'seed.ndjson');
    writeFileSync(seed, feedLine({ op: 'add', uid: 'alice', segments: [1, 2] }));
    const segd = await startSegd({ env: { SEGD_CONFIG: good, SEGD_SEED: seed } }); // SEGD_PORT=0 from env wins over port 1
    expect(await (await fetch(`${segd.url}/v1/segments?uid=alice&format=kv`)).text()).toBe('aud=1,2');
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ prot: 8080, maxBatchKeys: 'many' }));
    const r = await runSegd(['serve'], { SEGD_CONFIG: bad });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown setting "prot"');
    expect(r.stderr).toContain('config file key "maxBatchKeys": expected a whole number');
  });

  it('will not share a port with another process (SO_REUSEPORT would let it)', async () => {
    const first = await startSegd();
    const r = await runSegd(['serve'], {
      SEGD_PORT: String(first.port),
      SEGD_HOST: '127.0.0.1',
      SEGD_DATA_DIR: tempDir(),
      SEGD_SEED: '',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`port ${first.port} on 127.0.0.1 is in use by another process`);
    expect(await stopReport(first)).toEqual(CLEAN_STOP);
  });

  it('refuses a store with an unknown schema version', async () => {
    const dataDir = tempDir();
    const first = await startSegd({ dataDir });
    expect(await stopReport(first)).toEqual(CLEAN_STOP);
    const env = open({ path: dataDir });
    const meta = env.openDB({ name: 'meta', encoding: 'msgpack' });
    await meta.put('schema', 99);
    await env.close();
    const r = await runSegd(['serve'], { SEGD_DATA_DIR: dataDir, SEGD_PORT: '0', SEGD_SEED: '' });
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('schema version 99 is not one this segd understands (1)');
  });
});
