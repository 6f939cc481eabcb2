// A store copied by `segd backup` (LMDB's compacting copy: no free pages, a
// long transaction history) takes a big first write transaction: here an
// import of 2,000 records onto a copy of 20,000 users, as a node restored from
// its own backup applies its first catch-up batch. lmdb-js's page allocator
// failed that transaction (MDB_BAD_VALSIZE, or an assertion abort) until the
// store settles the free list at open (store/env.ts).
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSegd, tempDir } from './helpers/server.js';

const USERS = 20_000;
const UPDATES = 2_000;

describe('a compacted copy (segd backup)', () => {
  it('takes a big first write transaction', async () => {
    const dir = tempDir('segd-compacted-');
    const data = join(dir, 'data');
    const feed = join(dir, 'users.ndjson');
    const env = { SEGD_DATA_DIR: data, SEGD_LOG_LEVEL: 'warn' };
    const gen = await runSegd(['gen', '--users', String(USERS), '--out', feed, '--seed', '3', '--quiet']);
    expect(gen.code).toBe(0);
    const imported = await runSegd(['import', feed, '--quiet'], env);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);

    const copy = join(dir, 'copy');
    const backup = await runSegd(['backup', '--out', copy, '--filter-wait', '0'], env);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);

    // Every update grows a user's set, so the transaction splits pages and needs many new ones.
    const uids = readFileSync(feed, 'utf8')
      .split('\n')
      .filter(Boolean)
      .slice(0, UPDATES)
      .map((line) => (JSON.parse(line) as { uid: string }).uid);
    const updates = join(dir, 'updates.ndjson');
    writeFileSync(
      updates,
      uids.map((uid, i) => JSON.stringify({ op: 'add', uid, segments: [4001 + (i % 7), 4101 + (i % 11)] })).join('\n') +
        '\n',
    );
    const onCopy = await runSegd(['import', updates, '--quiet'], { ...env, SEGD_DATA_DIR: copy });
    expect(onCopy.stderr).toBe('');
    expect(onCopy.code).toBe(0);
    expect(onCopy.stdout).toMatch(new RegExp(`\\b${UPDATES} applied\\b`));
  }, 120_000);
});
