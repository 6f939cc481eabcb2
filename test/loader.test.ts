// The inbox loader through the real server: files dropped while it runs are
// applied, bad records are rejected with line and reason while the good ones
// around them are kept, and a crash mid-file resumes from the checkpoint.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  startSegd,
  dropFeed,
  feedLine,
  tempDir,
  stopReport,
  CLEAN_STOP,
  runSegd,
  type Segd,
  segmentsOf,
  waitFor,
} from './helpers/server.js';

describe('inbox loader', () => {
  let segd: Segd;
  let inbox: string;
  beforeAll(async () => {
    segd = await startSegd();
    inbox = join(segd.dataDir, 'inbox');
  });
  afterAll(async () => {
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('applies a file dropped while serving and moves it to done/', async () => {
    await dropFeed(inbox, '001-delta.ndjson', feedLine({ op: 'add', uid: 'late', segments: [11, 12] }));
    await waitFor(async () => (await segmentsOf(segd, 'late')).length === 2);
    await waitFor(async () => existsSync(join(inbox, 'done', '001-delta.ndjson')));
    expect(readdirSync(inbox).filter((n) => n.endsWith('.ndjson'))).toEqual([]);
  });

  it('ignores files still being written (.tmp, .part, dot-files)', async () => {
    writeFileSync(join(inbox, '002.ndjson.tmp'), feedLine({ op: 'add', uid: 'partial', segments: [1] }));
    writeFileSync(join(inbox, '.003.ndjson'), feedLine({ op: 'add', uid: 'partial', segments: [2] }));
    writeFileSync(join(inbox, '004.ndjson.part'), feedLine({ op: 'add', uid: 'partial', segments: [3] }));
    await dropFeed(inbox, '005-marker.ndjson', feedLine({ op: 'add', uid: 'marker', segments: [1] }));
    await waitFor(async () => (await segmentsOf(segd, 'marker')).length === 1);
    expect(await segmentsOf(segd, 'partial')).toEqual([]);
    expect(existsSync(join(inbox, '002.ndjson.tmp'))).toBe(true);
  });

  it('rejects bad records with line number and reason and keeps the good ones around them', async () => {
    const lines = [
      feedLine({ op: 'add', uid: 'good-1', segments: [1] }), // 1
      '{"op":"add","uid":"broken", "segments":[1\n', // 2 malformed JSON
      feedLine({ op: 'upsert', uid: 'x', segments: [1] }), // 3 unknown op
      feedLine({ op: 'add', uid: 'y'.repeat(129), segments: [1] }), // 4 uid too long
      feedLine({ op: 'add', uid: 'z', segments: [4294967296] }), // 5 segment out of u32
      feedLine({ op: 'add', uid: 'z', segments: [-1] }), // 6 negative
      feedLine({ op: 'add', uid: 'z', segments: ['12'] }), // 7 wrong type
      feedLine({ op: 'add', uid: 'z', segments: [{ id: 1, ttl: 'soon' }] }), // 8 bad ttl
      feedLine({ op: 'add', uid: 'z', segments: [1], ts: 'yesterday' }), // 9 bad ts
      feedLine({ op: 'add', uid: 12345, segments: [1] }), // 10 uid not a string
      '\n', // 11 blank: allowed
      '[1,2,3]\n', // 12 not an object
      feedLine({ op: 'add', uid: 'good-2', segments: [2] }), // 13
    ];
    const invalidUtf8 = Buffer.from([0x7b, 0x22, 0x6f, 0x70, 0xc3, 0x28, 0x7d, 0x0a]); // 14
    const tail = Buffer.from('{"op":"add","uid":"good-3","segments":[3]}'); // 15: no final newline
    await dropFeed(inbox, '010-mixed.ndjson', Buffer.concat([Buffer.from(lines.join('')), invalidUtf8, tail]));
    await waitFor(async () => existsSync(join(inbox, 'done', '010-mixed.ndjson')));
    expect(await segmentsOf(segd, 'good-1')).toEqual([1]);
    expect(await segmentsOf(segd, 'good-2')).toEqual([2]);
    expect(await segmentsOf(segd, 'good-3')).toEqual([3]);
    expect(await segmentsOf(segd, 'z')).toEqual([]);
    const rejects = readFileSync(join(inbox, 'rejects', '010-mixed.ndjson.rejects.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; reason: string });
    expect(rejects.map((r) => r.line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14]);
    const reason = (n: number) => rejects.find((r) => r.line === n)!.reason;
    expect(reason(2)).toMatch(/^malformed JSON/);
    expect(reason(3)).toContain('"op" must be one of add, remove, replace, delete');
    expect(reason(4)).toContain('at most 128 UTF-8 bytes');
    expect(reason(5)).toContain('segments[0] must be an integer 0..4294967295');
    expect(reason(8)).toContain('segments[0].ttl');
    expect(reason(9)).toContain('"ts" must be unix seconds');
    expect(reason(10)).toContain('"uid" must be a string');
    expect(reason(12)).toBe('record must be a JSON object');
    expect(reason(14)).toBe('invalid UTF-8');
  });

  it('rejects an over-long line without losing the next one', async () => {
    const huge = `{"op":"add","uid":"huge","segments":[${'1,'.repeat(700_000)}1]}\n`; // > 1 MiB
    await dropFeed(inbox, '020-long.ndjson', huge + feedLine({ op: 'add', uid: 'after-huge', segments: [7] }));
    await waitFor(async () => (await segmentsOf(segd, 'after-huge')).length === 1);
    // The rejects file is appended after the commit that makes the next line visible; the file reaches done/ after both.
    await waitFor(async () => existsSync(join(inbox, 'done', '020-long.ndjson')));
    const rejects = readFileSync(join(inbox, 'rejects', '020-long.ndjson.rejects.ndjson'), 'utf8');
    expect(JSON.parse(rejects)).toMatchObject({ line: 1, reason: 'line longer than 1048576 bytes' });
    expect(await segmentsOf(segd, 'huge')).toEqual([]);
  });

  it('reads gzip files, and keeps what comes before a gzip that breaks off half-way', async () => {
    const { gzipSync } = await import('node:zlib');
    const lines = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, i) => feedLine({ op: 'add', uid: `${prefix}${i}`, segments: [i % 7] })).join('');
    await dropFeed(inbox, '040-ok.ndjson.gz', gzipSync(lines('gz', 500)));
    await waitFor(async () => existsSync(join(inbox, 'done', '040-ok.ndjson.gz')));
    expect(await segmentsOf(segd, 'gz499')).toEqual([499 % 7]);

    // Incompressible-ish content so the cut falls well inside the stream.
    const big = Array.from({ length: 20000 }, (_, i) =>
      feedLine({ op: 'add', uid: `cut${i}-${(i * 2654435761) >>> 0}`, segments: [i % 1000] }),
    ).join('');
    const gz = gzipSync(big);
    await dropFeed(inbox, '041-cut.ndjson.gz', gz.subarray(0, Math.floor(gz.length * 0.6)));
    await waitFor(async () => existsSync(join(inbox, 'done', '041-cut.ndjson.gz')));
    expect(await segmentsOf(segd, `cut0-0`)).toEqual([0]);
    const rejects = readFileSync(join(inbox, 'rejects', '041-cut.ndjson.gz.rejects.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; reason: string });
    const last = rejects[rejects.length - 1]!;
    expect(last.reason).toMatch(/^corrupt or truncated gzip after line \d+/);
    // Every line before the break was applied.
    const kept = last.line - 1;
    expect(kept).toBeGreaterThan(1000);
    const k = kept - 1;
    expect(await segmentsOf(segd, `cut${k}-${(k * 2654435761) >>> 0}`)).toEqual([k % 1000]);
  });

  it('reads CSV (BOM, header, CRLF, quoted uids, TTLs) and rejects bad rows with reasons', async () => {
    const csv = [
      '\uFEFFuid,segments', // 1: BOM + header, skipped
      'csv-a,10|11:3600', // 2
      '"csv,b ""quoted""",12', // 3: quoted uid with a comma and quotes
      'csv-c,', // 4: no segments
      'csv-d,13|x', // 5: bad segment
      'csv-e,14,15', // 6: three fields
      '"csv-f,16', // 7: unterminated quote
      'csv-g,4294967296', // 8: out of u32 range
      'csv-h, 17 | 18 ', // 9: spaces are fine
    ].join('\r\n');
    await dropFeed(inbox, '050-audience.csv', csv);
    await waitFor(async () => existsSync(join(inbox, 'done', '050-audience.csv')));
    expect(await segmentsOf(segd, 'csv-a')).toEqual([10, 11]);
    expect(await segmentsOf(segd, 'csv,b "quoted"')).toEqual([12]);
    expect(await segmentsOf(segd, 'csv-h')).toEqual([17, 18]);
    const rejects = readFileSync(join(inbox, 'rejects', '050-audience.csv.rejects.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; reason: string });
    expect(rejects.map((r) => [r.line, r.reason])).toEqual([
      [4, 'no segments'],
      [5, 'bad segment "x" (want id or id:ttl)'],
      [6, 'expected two fields: uid,seg|seg|…'],
      [7, 'unterminated quoted uid'],
      [8, 'segments[0] must be an integer 0..4294967295 or {"id":…,"ttl":…}; got 4294967296'],
    ]);
  });

  it('reads msgpack record streams across read chunks, keeps records before a truncated tail', async () => {
    const { pack } = await import('msgpackr');
    const recs: Buffer[] = [];
    // Over 1 MiB, so records straddle the reader's chunks.
    for (let i = 0; i < 20000; i++)
      recs.push(
        pack({ op: 'add', uid: `mp${i}`, segments: [i % 9, { id: 100 + (i % 5), ttl: 3600 }], pad: 'x'.repeat(40) }),
      );
    recs.push(pack({ op: 'add', uid: 'mp-bad', segments: ['nope'] })); // record 20001: rejected
    recs.push(pack({ op: 'add', uid: 'mp-last', segments: [1] })); // 20002
    const full = pack({ op: 'add', uid: 'mp-cut', segments: [2] });
    recs.push(full.subarray(0, full.length - 3)); // 20003: truncated
    await dropFeed(inbox, '060-stream.msgpack', Buffer.concat(recs));
    await waitFor(async () => existsSync(join(inbox, 'done', '060-stream.msgpack')));
    expect(await segmentsOf(segd, 'mp0')).toEqual([0, 100]);
    expect(await segmentsOf(segd, 'mp19999')).toEqual([19999 % 9, 100 + (19999 % 5)].sort((a, b) => a - b));
    expect(await segmentsOf(segd, 'mp-last')).toEqual([1]);
    expect(await segmentsOf(segd, 'mp-cut')).toEqual([]);
    const rejects = readFileSync(join(inbox, 'rejects', '060-stream.msgpack.rejects.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; reason: string });
    expect(rejects.map((r) => r.line)).toEqual([20001, 20003]);
    expect(rejects[1]!.reason).toMatch(/^truncated msgpack record at byte \d+/);
  });

  it('never lets an older change overwrite a newer one', async () => {
    const t = Math.floor(Date.now() / 1000);
    await dropFeed(inbox, '030-new.ndjson', feedLine({ op: 'replace', uid: 'ordered', segments: [2], ts: t }));
    await waitFor(async () => (await segmentsOf(segd, 'ordered')).length === 1);
    await dropFeed(inbox, '031-old.ndjson', feedLine({ op: 'replace', uid: 'ordered', segments: [1], ts: t - 60 }));
    // The file is counted just after it moves to done/, and a scrape may be served from the
    // last collection (SEGD_METRICS_CACHE_MS): wait for the count itself.
    const stale = async () =>
      Number(
        /segd_loader_records_total\{source="inbox",outcome="stale"\} (\d+)/.exec(
          await (await fetch(`${segd.url}/metrics`)).text(),
        )?.[1],
      );
    await waitFor(async () => (await stale()) === 1);
    expect(existsSync(join(inbox, 'done', '031-old.ndjson'))).toBe(true);
    expect(await segmentsOf(segd, 'ordered')).toEqual([2]);
  });
});

describe('crash safety of the inbox', () => {
  it('SIGKILL mid-file, restart: the store ends as if nothing happened', async () => {
    const dataDir = tempDir();
    const inbox = join(dataDir, 'inbox');
    const feed = join(tempDir(), 'feed.ndjson');
    const N = 150_000;
    expect((await runSegd(['gen', '--users', String(N), '--out', feed, '--quiet', '--ts', '1700000000'])).code).toBe(0);
    // Then a second pass over the first users (removes after the adds).
    const content = readFileSync(feed, 'utf8');
    const firstLines = content.split('\n').slice(0, 1000);
    const removes = firstLines.map((l) => {
      const r = JSON.parse(l) as { uid: string; segments: Array<number | { id: number }> };
      const first = r.segments[0]!;
      return feedLine({
        op: 'remove',
        uid: r.uid,
        segments: [typeof first === 'number' ? first : first.id],
        ts: 1700000001,
      });
    });
    await dropFeed(inbox, 'feed.ndjson', content + removes.join(''));

    const env = { SEGD_LOADER_BATCH: '2000', SEGD_LOG_LEVEL: 'debug' };
    const victim = await startSegd({ dataDir, env, waitReady: false });
    // Kill it right after a batch has committed, long before the file is done.
    await victim.waitForLog((l) => l.msg === 'inbox batch committed');
    victim.proc.kill('SIGKILL');
    await victim.exited;
    expect(existsSync(join(inbox, 'feed.ndjson'))).toBe(true); // not finished
    // What the store holds as committed when the process died.
    const { open } = await import('lmdb');
    const env0 = open({ path: dataDir, readOnly: true });
    const cp = env0.openDB({ name: 'meta', encoding: 'msgpack' }).get('ckpt:inbox') as { line: number; offset: number };
    await env0.close();
    const total = N + 1000;
    expect(cp.line).toBeGreaterThan(0);
    expect(cp.line).toBeLessThan(total);

    const segd = await startSegd({ dataDir, env });
    const done = segd.logs.find((l) => l.msg === 'inbox file imported')!;
    expect(done.resumedFrom).toBe(cp.offset);
    // Exactly the lines after the checkpoint were applied on restart: none twice, none lost.
    expect((done.applied as number) + (done.stale as number) + (done.rejected as number)).toBe(total - cp.line);

    // Compare with a clean import of the same file into a fresh store.
    const ref = await startSegd({ env: { SEGD_SEED: join(inbox, 'done', 'feed.ndjson') } });
    const uids = content
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { uid: string }).uid);
    const batch = async (s: Segd, keys: string[]) =>
      (await (
        await fetch(`${s.url}/v1/segments:batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ uids: keys }),
        })
      ).json()) as unknown;
    for (let i = 0; i < uids.length; i += 1000) {
      const keys = uids.slice(i, i + 1000);
      expect(await batch(segd, keys)).toEqual(await batch(ref, keys));
    }
    const users = async (s: Segd) =>
      Number(/segd_store_users (\d+)/.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1]);
    expect(await users(segd)).toBe(await users(ref));
    // The kill also left the known-users filter behind the store: detected and rebuilt.
    expect(segd.logs.filter((l) => (l.level ?? 0) >= 40).map((l) => l.msg)).toEqual([
      'known-users filter is stale; rebuilding',
    ]);
    expect(await stopReport(segd, { allowWarnings: true })).toEqual(CLEAN_STOP);
    expect(await stopReport(ref)).toEqual(CLEAN_STOP);
  });
});

describe('TTL sweep', () => {
  it('removes expired memberships in the background and keeps segment counts right', async () => {
    const { open } = await import('lmdb');
    const seed = join(tempDir(), 'seed.ndjson');
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++) {
      // Every user keeps segment 1; half also hold 2 for one second; a fifth only hold 3 for one second.
      if (i % 5 === 0) lines.push(feedLine({ op: 'add', uid: `s${i}`, segments: [{ id: 3, ttl: 1 }] }));
      else lines.push(feedLine({ op: 'add', uid: `s${i}`, segments: i % 2 ? [1, { id: 2, ttl: 1 }] : [1] }));
    }
    writeFileSync(seed, lines.join(''));
    const dataDir = tempDir();
    const segd = await startSegd({ dataDir, env: { SEGD_SEED: seed, SEGD_SWEEP_MS: '300' } });
    const users = async () =>
      Number(/^segd_store_users (\d+)$/m.exec(await (await fetch(`${segd.url}/metrics`)).text())?.[1]);
    // All 5,000 loaded (by the seed's count: the sweep may already have removed the 1,000 that only held segment 3).
    const metrics = await (await fetch(`${segd.url}/metrics`)).text();
    expect(Number(/^segd_loader_records_total\{source="seed",outcome="applied"\} (\d+)$/m.exec(metrics)?.[1])).toBe(
      5000,
    );
    const removed = () =>
      segd.logs
        .filter((l) => l.msg === 'ttl sweep removed expired memberships')
        .reduce((a, l) => a + (l.removed as number), 0);
    // On a busy machine the expiries can land in more than one sweep pass, and the user count
    // reaches 4000 before the last segment-2 removals: wait for those too (never more than 3000).
    await waitFor(async () => (await users()) === 4000 && removed() >= 3000, 15_000);
    expect(removed()).toBe(1000 + 2000); // 1000 users' segment 3, 2000 users' segment 2
    expect(Number(/^segd_ttl_swept_total (\d+)$/m.exec(await (await fetch(`${segd.url}/metrics`)).text())?.[1])).toBe(
      3000,
    );
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);

    const env = open({ path: dataDir, readOnly: true });
    const counts = env.openDB<number, number>({ name: 'counts', keyEncoding: 'uint32' });
    expect(Object.fromEntries([...counts.getRange()].map(({ key, value }) => [key, value]))).toEqual({ 1: 4000 });
    await env.close();
  });
});
