// SEGD_UNKNOWN_SEGMENTS=reject: feed records that add ids missing from the
// taxonomy are rejected with the ids named; the rest of the batch applies;
// a segment added to the taxonomy at run time is accepted from then on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, runSegd, tempDir, stopReport, CLEAN_STOP, segmentsOf, type Segd } from './helpers/server.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INGEST = 'ingest-key-0123456789abcdef';
let segd: Segd;
beforeAll(async () => {
  const config = join(tempDir('segd-unknown-'), 'segd.json');
  writeFileSync(
    config,
    JSON.stringify({
      segments: [
        { id: 1, name: 'one', segtax: 4 },
        { id: 2, name: 'two', segtax: 4 },
      ],
    }),
  );
  segd = await startSegd({
    env: { SEGD_CONFIG: config, SEGD_UNKNOWN_SEGMENTS: 'reject', SEGD_ADMIN_KEYS: ADMIN, SEGD_INGEST_KEYS: INGEST },
  });
});
afterAll(async () => {
  expect(await stopReport(segd)).toEqual(CLEAN_STOP);
});

const push = async (lines: object[]) => {
  const r = await fetch(`${segd.url}/v1/ingest`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${INGEST}`, 'Content-Type': 'application/x-ndjson' },
    body: lines.map((l) => JSON.stringify(l)).join('\n'),
  });
  return (await r.json()) as { applied: number; rejected: number; rejects: Array<{ line: number; reason: string }> };
};

describe('SEGD_UNKNOWN_SEGMENTS=reject', () => {
  it('rejects records adding unknown ids, keeps the others, and follows taxonomy changes', async () => {
    const a = await push([
      { op: 'add', uid: 'u1', segments: [1, 2] },
      { op: 'add', uid: 'u2', segments: [1, 9999] },
      { op: 'replace', uid: 'u3', segments: [{ id: 8888, ttl: 60 }] },
      { op: 'remove', uid: 'u1', segments: [9999] }, // removing an unknown id is harmless
    ]);
    expect(a.applied).toBe(2);
    expect(a.rejects).toEqual([
      { line: 2, reason: 'segment 9999 not in the taxonomy (SEGD_UNKNOWN_SEGMENTS=reject)' },
      { line: 3, reason: 'segment 8888 not in the taxonomy (SEGD_UNKNOWN_SEGMENTS=reject)' },
    ]);
    expect(await segmentsOf(segd, 'u1')).toEqual([1, 2]);
    expect(await segmentsOf(segd, 'u2')).toEqual([]);

    const put = await fetch(`${segd.url}/v1/admin/segments/9999`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'new', segtax: 4 }),
    });
    expect(put.status).toBe(201);
    const b = await push([{ op: 'add', uid: 'u2', segments: [1, 9999] }]);
    expect(b).toMatchObject({ applied: 1, rejected: 0 });
    expect(await segmentsOf(segd, 'u2')).toEqual([1, 9999]);
  });
});

describe('segd import with SEGD_UNKNOWN_SEGMENTS=reject', () => {
  it('takes the same records the server would: unknown ids rejected with a reason, the rest applied', async () => {
    const dataDir = tempDir();
    const config = join(tempDir('segd-unknown-'), 'segd.json');
    writeFileSync(config, JSON.stringify({ segments: [{ id: 1, name: 'one', segtax: 4 }] }));
    const env = { SEGD_CONFIG: config, SEGD_DATA_DIR: dataDir, SEGD_UNKNOWN_SEGMENTS: 'reject', SEGD_SEED: '' };
    // The taxonomy reaches the store when a server starts with the config file.
    const s = await startSegd({ dataDir, env: { SEGD_CONFIG: config } });
    expect(await stopReport(s)).toEqual(CLEAN_STOP);
    const feed = join(tempDir('segd-unknown-'), 'feed.ndjson');
    writeFileSync(
      feed,
      [
        { op: 'add', uid: 'i1', segments: [1] },
        { op: 'add', uid: 'i2', segments: [1, 77] },
      ]
        .map((l) => JSON.stringify(l))
        .join('\n') + '\n',
    );
    const r = await runSegd(['import', feed, '--quiet', '--rejects', join(dataDir, 'rej')], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^import: 1 file\(s\), 1 applied, 0 stale, 1 rejected, /);
    expect(readFileSync(join(dataDir, 'rej', 'feed.ndjson.rejects.ndjson'), 'utf8')).toContain(
      'segment 77 not in the taxonomy',
    );
  });
});
