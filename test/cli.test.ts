// The offline commands as ops use them: `segd import` and `segd status`.
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runSegd, startSegd, stopReport, CLEAN_STOP, tempDir, feedLine } from './helpers/server.js';

describe('segd import / status', () => {
  it('imports files and directories with a summary, rejects bad records, and status reports the store', async () => {
    const dataDir = tempDir();
    const src = tempDir();
    writeFileSync(
      join(src, 'a.ndjson'),
      feedLine({ op: 'add', uid: 'u1', segments: [1, 2] }) +
        'not json\n' +
        feedLine({ op: 'add', uid: 'u2', segments: [3] }),
    );
    writeFileSync(join(src, 'b.ndjson'), feedLine({ op: 'remove', uid: 'u1', segments: [2] }));
    writeFileSync(join(src, 'c.ndjson.tmp'), feedLine({ op: 'add', uid: 'never', segments: [9] }));
    const env = { SEGD_DATA_DIR: dataDir };
    const r = await runSegd(['import', src, '--quiet'], env);
    expect(r.stderr).toBe(
      'import: a.ndjson: 1 rejected → ' + join(dataDir, 'rejects', 'a.ndjson.rejects.ndjson') + '\n',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^import: 2 file\(s\), 3 applied, 0 stale, 1 rejected, 4 memberships in /);
    expect(JSON.parse(readFileSync(join(dataDir, 'rejects', 'a.ndjson.rejects.ndjson'), 'utf8'))).toMatchObject({
      line: 2,
    });

    // Nothing applicable → non-zero, so scripts notice.
    writeFileSync(join(src, 'bad.json'), '');
    const bad = join(tempDir(), 'bad.ndjson');
    writeFileSync(bad, '{"op":"nope"}\n');
    expect((await runSegd(['import', bad, '--quiet'], env)).code).toBe(1);

    mkdirSync(join(dataDir, 'inbox'), { recursive: true });
    writeFileSync(join(dataDir, 'inbox', 'waiting.ndjson'), feedLine({ op: 'add', uid: 'w', segments: [1] }));
    const st = await runSegd(['status', '--json'], env);
    expect(st.code).toBe(0);
    const j = JSON.parse(st.stdout) as {
      server: unknown;
      store: { users: number; commits: number };
      sources: { inbox: { waitingFiles: number } };
      filter: { state: string };
    };
    expect(j.server).toBe(null);
    expect(j.store.users).toBe(2);
    expect(j.store.commits).toBe(3); // a.ndjson, b.ndjson, and the all-rejected file's checkpoint
    expect(j.sources.inbox.waitingFiles).toBe(1);
    expect(j.filter.state).toMatch(/^missing/);
    expect((await runSegd(['status'], env)).stdout).toContain('2 users');

    // The server takes over: it sees the imported users, then import is refused while it runs.
    const segd = await startSegd({ dataDir });
    expect(await (await fetch(`${segd.url}/v1/segments?uid=u1`)).json()).toEqual({ uid: 'u1', segments: [1] });
    const refused = await runSegd(['import', bad, '--quiet'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`is serving ${dataDir}: drop the file into its inbox`);
    expect(JSON.parse((await runSegd(['status', '--json'], env)).stdout).server).toBe(segd.proc.pid);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });

  it('imports a snapshot file: the data set is replaced, and status names the live generation', async () => {
    const dataDir = tempDir();
    const src = tempDir();
    const env = { SEGD_DATA_DIR: dataDir };
    const ts = Math.floor(Date.now() / 1000) - 60;
    writeFileSync(
      join(src, '1-delta.ndjson'),
      feedLine({ op: 'add', uid: 'old', segments: [1], ts: ts - 100 }) +
        feedLine({ op: 'add', uid: 'kept', segments: [2], ts: ts + 10 }),
    );
    writeFileSync(join(src, '2-full.snapshot.csv'), 'uid,segments\nnew-1,5|6\nnew-2,7\n');
    // CSV rows are stamped with the load time: 'kept' (changed at ts + 10, before that) goes too.
    const r = await runSegd(['import', src, '--quiet'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^import: 2 file\(s\), 4 applied, 0 stale, 0 rejected, /);
    const j = JSON.parse((await runSegd(['status', '--json'], env)).stdout) as {
      store: { users: number; generation: number; snapshotTs: number };
    };
    expect(j.store).toMatchObject({ users: 2, generation: 1 });
    expect(j.store.snapshotTs).toBeGreaterThan(ts);
    expect((await runSegd(['status'], env)).stdout).toMatch(/snapshot generation 1, from a snapshot as of /);
    const segd = await startSegd({ dataDir });
    expect(await (await fetch(`${segd.url}/v1/segments?uid=new-1`)).json()).toEqual({ uid: 'new-1', segments: [5, 6] });
    expect(await (await fetch(`${segd.url}/v1/segments?uid=old`)).json()).toEqual({ uid: 'old', segments: [] });
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });
});
