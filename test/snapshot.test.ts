// Snapshot files through the real server: the data set is replaced by a
// generation swap (readers see the old set or the new one, never a mix), the
// merge with what the store holds follows the timestamps (deletions stay
// deleted, newer deltas survive, older ones cannot come back), and a SIGKILL
// mid-snapshot leaves the old set serving and the restart loads it whole.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import {
  startSegd as start,
  dropFeed,
  feedLine,
  tempDir,
  stopReport,
  CLEAN_STOP,
  segmentsOf,
  waitFor,
  type Segd,
} from './helpers/server.js';

// Servers a failed test left running are killed, so nothing outlives the run.
const running: Segd[] = [];
const startSegd = async (opts: Parameters<typeof start>[0]) => {
  const s = await start(opts);
  running.push(s);
  return s;
};
afterEach(async () => {
  for (const s of running.splice(0)) {
    if (s.proc.exitCode === null && s.proc.signalCode === null) {
      s.proc.kill('SIGKILL');
      await s.exited;
    }
  }
});

const now = Math.floor(Date.now() / 1000);
const T0 = now - 100_000;

async function batch(s: Segd, uids: string[]): Promise<number[][]> {
  const r = await fetch(`${s.url}/v1/segments:batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uids }),
  });
  if (!r.ok) throw new Error(`batch lookup: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { results: Array<{ segments: number[] }> }).results.map((x) => x.segments);
}

async function storedUsers(s: Segd): Promise<number> {
  return Number(/segd_store_users (\d+)/.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1]);
}

/** meta and counts as committed, read straight from LMDB (the server stopped). */
async function readStore(dataDir: string) {
  const { open } = await import('lmdb');
  const env = open({ path: dataDir, readOnly: true });
  const meta = env.openDB({ name: 'meta', encoding: 'msgpack' });
  const counts = env.openDB<number, number>({ name: 'counts', keyEncoding: 'uint32' });
  const out = {
    generation: (meta.get('generation') as number | undefined) ?? 0,
    snapshotTs: meta.get('snapshotTs') as number | undefined,
    counts: Object.fromEntries([...counts.getRange()].map(({ key, value }) => [key, value])) as Record<number, number>,
  };
  await env.close();
  return out;
}

const users = (prefix: string, n: number, segs: number[], ts: number) =>
  Array.from({ length: n }, (_, i) =>
    feedLine({ op: 'add', uid: `${prefix}${String(i).padStart(7, '0')}`, segments: segs, ts }),
  ).join('');

describe('snapshot files', () => {
  it('replace the data set, merged with the store by timestamp; a late older delta cannot bring a user back', async () => {
    const segd = await startSegd({ keepData: true });
    const inbox = join(segd.dataDir, 'inbox');
    await dropFeed(
      inbox,
      '001-delta.ndjson',
      [
        feedLine({ op: 'add', uid: 'newer-in-store', segments: [1], ts: T0 + 500 }),
        feedLine({ op: 'add', uid: 'deleted', segments: [2], ts: T0 + 100 }),
        feedLine({ op: 'delete', uid: 'deleted', ts: T0 + 300 }),
        feedLine({ op: 'add', uid: 'not-in-snapshot', segments: [3], ts: T0 + 100 }),
        feedLine({ op: 'add', uid: 'delta-after-snapshot', segments: [4], ts: T0 + 5000 }),
      ].join(''),
    );
    await waitFor(async () => existsSync(join(inbox, 'done', '001-delta.ndjson')));

    // Snapshot ts = its newest record, T0 + 1000.
    const snap = [
      feedLine({ op: 'replace', uid: 'newer-in-store', segments: [9], ts: T0 + 400 }),
      feedLine({ op: 'add', uid: 'deleted', segments: [5], ts: T0 + 200 }),
      feedLine({ op: 'add', uid: 'fresh', segments: [7, { id: 8, ttl: 10 * 86_400 }], ts: T0 + 1000 }),
      feedLine({ op: 'add', uid: 'twice', segments: [1], ts: T0 + 600 }),
      feedLine({ op: 'add', uid: 'twice', segments: [2], ts: T0 + 700 }), // same user again: folded in ts order
      '{"op":"add","uid":"broken"\n',
    ].join('');
    await dropFeed(inbox, '002-full.snapshot.ndjson.gz', gzipSync(snap));
    await waitFor(async () => existsSync(join(inbox, 'done', '002-full.snapshot.ndjson.gz')));

    expect(await segmentsOf(segd, 'newer-in-store')).toEqual([1]); // the store's change is newer
    expect(await segmentsOf(segd, 'deleted')).toEqual([]); // deleted after the snapshot's record
    expect(await segmentsOf(segd, 'not-in-snapshot')).toEqual([]); // older than the snapshot: gone
    expect(await segmentsOf(segd, 'delta-after-snapshot')).toEqual([4]); // newer than the snapshot: kept
    expect(await segmentsOf(segd, 'fresh')).toEqual([7, 8]);
    expect(await segmentsOf(segd, 'twice')).toEqual([1, 2]);
    const rejects = readFileSync(join(inbox, 'rejects', '002-full.snapshot.ndjson.gz.rejects.ndjson'), 'utf8')
      .trim()
      .split('\n');
    expect(rejects.map((l) => (JSON.parse(l) as { line: number }).line)).toEqual([6]);

    // Deltas after the snapshot: older than its ts are stale, whoever they name; newer apply.
    await dropFeed(
      inbox,
      '003-late.ndjson',
      [
        feedLine({ op: 'add', uid: 'not-in-snapshot', segments: [3], ts: T0 + 900 }),
        feedLine({ op: 'add', uid: 'never-seen', segments: [6], ts: T0 + 999 }),
        feedLine({ op: 'add', uid: 'fresh', segments: [10], ts: T0 + 1001 }),
      ].join(''),
    );
    await waitFor(async () => existsSync(join(inbox, 'done', '003-late.ndjson')));
    expect(await segmentsOf(segd, 'not-in-snapshot')).toEqual([]);
    expect(await segmentsOf(segd, 'never-seen')).toEqual([]);
    expect(await segmentsOf(segd, 'fresh')).toEqual([7, 8, 10]);
    // The file reaches done/ just before its summary is logged.
    const imported = await segd.waitForLog((l) => l.msg === 'inbox file imported' && l.file === '003-late.ndjson');
    expect(imported.stale).toBe(2);

    // Refused whole, data left as it was: a snapshot with no valid record, and one older than the loaded one.
    await dropFeed(inbox, '004-empty.snapshot.ndjson', 'not json\n');
    await dropFeed(inbox, '005-now.snapshot.csv', 'uid,segments\ncsv-user,99|98\n');
    await waitFor(async () => existsSync(join(inbox, 'done', '004-empty.snapshot.ndjson')));
    // The CSV snapshot is stamped with the load time, so it is newer: it applies and replaces everything.
    await waitFor(async () => existsSync(join(inbox, 'done', '005-now.snapshot.csv')));
    expect(readFileSync(join(inbox, 'rejects', '004-empty.snapshot.ndjson.rejects.ndjson'), 'utf8')).toMatch(
      /no valid record/,
    );
    expect(await segmentsOf(segd, 'csv-user')).toEqual([98, 99]);
    expect(await segmentsOf(segd, 'fresh')).toEqual([]);
    expect(await segmentsOf(segd, 'delta-after-snapshot')).toEqual([]); // older than this snapshot
    // A gzip that breaks off half-way: the snapshot would lose every user after the break, so it is refused whole.
    const gz = gzipSync(users('cut', 2000, [1], now));
    await dropFeed(inbox, '005b-cut.snapshot.ndjson.gz', gz.subarray(0, gz.length >> 1));
    await waitFor(async () => existsSync(join(inbox, 'done', '005b-cut.snapshot.ndjson.gz')));
    expect(readFileSync(join(inbox, 'rejects', '005b-cut.snapshot.ndjson.gz.rejects.ndjson'), 'utf8')).toMatch(
      /a partial snapshot is refused whole/,
    );
    expect(await segmentsOf(segd, 'cut0000000')).toEqual([]);
    expect(await segmentsOf(segd, 'csv-user')).toEqual([98, 99]);
    await dropFeed(inbox, '006-older.snapshot.ndjson', feedLine({ op: 'add', uid: 'fresh', segments: [1], ts: T0 }));
    await waitFor(async () => existsSync(join(inbox, 'done', '006-older.snapshot.ndjson')));
    expect(readFileSync(join(inbox, 'rejects', '006-older.snapshot.ndjson.rejects.ndjson'), 'utf8')).toMatch(
      /older than the snapshot already loaded/,
    );
    expect(await segmentsOf(segd, 'fresh')).toEqual([]);
    expect(await storedUsers(segd)).toBe(1);

    // A record an hour ahead of this node's clock: the snapshot's ts is capped at the load time,
    // so live changes made after the load still apply.
    await dropFeed(
      inbox,
      '007-ahead.snapshot.ndjson',
      feedLine({ op: 'add', uid: 'ahead', segments: [1], ts: Math.floor(Date.now() / 1000) + 3600 }),
    );
    await waitFor(async () => existsSync(join(inbox, 'done', '007-ahead.snapshot.ndjson')));
    await dropFeed(
      inbox,
      '008-live.ndjson',
      feedLine({ op: 'add', uid: 'live', segments: [2], ts: Math.floor(Date.now() / 1000) + 30 }),
    );
    await waitFor(async () => existsSync(join(inbox, 'done', '008-live.ndjson')));
    expect(await segmentsOf(segd, 'live')).toEqual([2]);
    expect(await segmentsOf(segd, 'csv-user')).toEqual([]);

    const report = await stopReport(segd, { allowWarnings: true });
    expect(report.code).toBe(0);
    expect(report.stderr).toBe('');
    expect(segd.logs.filter((l) => (l.level ?? 0) >= 40).map((l) => l.msg)).toEqual(
      Array(3).fill('inbox snapshot refused; moved to done/ with its reason in rejects/'),
    );
    const st = await readStore(segd.dataDir);
    expect(st.counts).toEqual({ 1: 1, 2: 1 });
    expect(st.snapshotTs).toBeGreaterThanOrEqual(now);
    expect(st.snapshotTs).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  it('readers see the old set or the new one, never a mix, while a snapshot swaps in; pushes meanwhile are kept', async () => {
    const N = 250_000; // three merge transactions
    const KEY = 'snapshot-test-key-0123456789';
    const segd = await startSegd({ env: { SEGD_INGEST_KEYS: KEY, SEGD_LOG_LEVEL: 'debug' } });
    const inbox = join(segd.dataDir, 'inbox');
    await dropFeed(inbox, '001-a.snapshot.ndjson', users('u', N, [1], T0));
    await waitFor(async () => existsSync(join(inbox, 'done', '001-a.snapshot.ndjson')), 60_000);
    // Keys spread over the whole key range, so one batch spans every merge transaction.
    const keys = Array.from({ length: 1000 }, (_, i) => `u${String(Math.floor((i * N) / 1000)).padStart(7, '0')}`);
    expect(new Set((await batch(segd, keys)).map((s) => s.join()))).toEqual(new Set(['1']));

    await dropFeed(inbox, '002-b.snapshot.ndjson', users('u', N, [2], T0 + 10));
    // Pushes start once the load has begun: a change committed before that is already in the stored
    // value the merge weighs against the snapshot (the newer user wins whole; see loader/snapshot.ts).
    await segd.waitForLog((l) => l.msg === 'inbox batch committed' && l.file === '002-b.snapshot.ndjson');
    const seen = { old: 0, new: 0, mixed: 0 };
    const done = join(inbox, 'done', '002-b.snapshot.ndjson');
    const end = Date.now() + 60_000;
    // Pushed while the snapshot loads, newer than it: replayed onto the new set.
    const pushed: string[] = [];
    while (Date.now() < end) {
      const finished = existsSync(done);
      const uid = `u${String(pushed.length * 997).padStart(7, '0')}`;
      const p = await fetch(`${segd.url}/v1/ingest`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-ndjson' },
        body: feedLine({ op: 'add', uid, segments: [5], ts: T0 + 20 }),
      });
      expect(p.status, await p.text()).toBe(200);
      pushed.push(uid);
      // (segment 5 is the push's: some pushed users are among the keys)
      const kinds = new Set((await batch(segd, keys)).map((s) => s.filter((id) => id !== 5).join()));
      if (kinds.size === 1 && kinds.has('1')) seen.old++;
      else if (kinds.size === 1 && kinds.has('2')) seen.new++;
      else seen.mixed++;
      if (finished) break;
    }
    expect(seen.mixed).toBe(0);
    expect(seen.old).toBeGreaterThan(0); // lookups ran during the load…
    expect(seen.new).toBeGreaterThan(0); // …and after the flip
    expect(await storedUsers(segd)).toBe(N);
    expect(pushed.length).toBeGreaterThan(1);
    expect(new Set((await batch(segd, pushed)).map((x) => x.join()))).toEqual(new Set(['2,5']));
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  });
});

describe('snapshot files and privacy', () => {
  it('an opted-out or deleted user does not come back from a snapshot, across a restart', async () => {
    const ADMIN = 'snapshot-admin-key-0123456789';
    const OPTED = 'OOOOOOOOOOOOOOOOOOOOOO'; // cookie-shaped: the opt-out reads it from the id cookie
    const dataDir = tempDir();
    const inbox = join(dataDir, 'inbox');
    const env = { SEGD_ADMIN_KEYS: ADMIN };
    const segd = await startSegd({ dataDir, env });
    await dropFeed(
      inbox,
      '001-delta.ndjson',
      [
        feedLine({ op: 'add', uid: OPTED, segments: [1], ts: T0 }),
        feedLine({ op: 'add', uid: 'deleted-user', segments: [2], ts: T0 }),
        feedLine({ op: 'add', uid: 'kept', segments: [3], ts: T0 }),
      ].join(''),
    );
    await waitFor(async () => existsSync(join(inbox, 'done', '001-delta.ndjson')));
    expect(await batch(segd, [OPTED, 'deleted-user', 'kept'])).toEqual([[1], [2], [3]]);

    expect((await fetch(`${segd.url}/optout`, { headers: { Cookie: `segd=${OPTED}` } })).status).toBe(200);
    const del = await fetch(`${segd.url}/v1/users?uid=deleted-user`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${ADMIN}` },
    });
    expect([del.status, ((await del.json()) as { found: boolean }).found]).toEqual([200, true]);
    expect(await batch(segd, [OPTED, 'deleted-user', 'kept'])).toEqual([[], [], [3]]);

    // Upstream's next full snapshot still has both, newer than anything stored; and a match record, which a snapshot refuses.
    await dropFeed(
      inbox,
      '002-all.snapshot.ndjson',
      [
        feedLine({ op: 'add', uid: OPTED, segments: [5], ts: T0 + 1000 }),
        feedLine({ op: 'add', uid: 'deleted-user', segments: [6], ts: T0 + 1000 }),
        feedLine({ op: 'add', uid: 'kept', segments: [7], ts: T0 + 1000 }),
        feedLine({ op: 'match', uid: 'kept', ifa: '11111111-2222-3333-4444-555555555555' }),
        feedLine({ op: 'add', uid: 'new-user', segments: [8], ts: T0 + 1000 }),
      ].join(''),
    );
    await waitFor(async () => existsSync(join(inbox, 'done', '002-all.snapshot.ndjson')));
    const rejects = readFileSync(join(inbox, 'rejects', '002-all.snapshot.ndjson.rejects.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; reason: string });
    expect(rejects.map((r) => r.line)).toEqual([4]);
    expect(rejects[0]!.reason).toMatch(/"match" records/);
    const want = [[], [], [7], [8]];
    const uids = [OPTED, 'deleted-user', 'kept', 'new-user'];
    expect(await batch(segd, uids)).toEqual(want);
    expect(await storedUsers(segd)).toBe(2);
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
    expect((await readStore(dataDir)).counts).toEqual({ 7: 1, 8: 1 });

    const again = await startSegd({ dataDir, env });
    expect(await batch(again, uids)).toEqual(want);
    expect(await stopReport(again)).toEqual(CLEAN_STOP);
  });
});

describe('crash safety of snapshots', () => {
  it('SIGKILL mid-snapshot: the old set keeps serving, the restart loads the snapshot whole', async () => {
    const N = 300_000;
    const dataDir = tempDir();
    const inbox = join(dataDir, 'inbox');
    // The insights index on: its bitmaps must follow the generation a restart serves, not the half-loaded one.
    const env = { SEGD_LOG_LEVEL: 'debug', SEGD_INSIGHTS: 'on', SEGD_ADMIN_KEYS: 'crash-admin-key-0001' };
    const sizes = async (s: Segd) => {
      const got: Record<number, number> = {};
      for (const id of [1, 2, 3, 4]) {
        const r = await fetch(`${s.url}/v1/insights/segments/${id}`, {
          headers: { authorization: 'Bearer crash-admin-key-0001' },
        });
        expect(r.status, `segment ${id}`).toBe(200);
        got[id] = ((await r.json()) as { size: number }).size;
      }
      return got;
    };
    const first = await startSegd({ dataDir, env });
    await dropFeed(inbox, '001-a.snapshot.ndjson', users('u', N, [1, 2], T0));
    await waitFor(async () => existsSync(join(inbox, 'done', '001-a.snapshot.ndjson')), 60_000);
    await waitFor(async () => (await sizes(first))[1] === N, 10_000);
    expect(await sizes(first)).toEqual({ 1: N, 2: N, 3: 0, 4: 0 });
    expect(await stopReport(first)).toEqual(CLEAN_STOP);
    const before = await readStore(dataDir);
    expect(before.counts).toEqual({ 1: N, 2: N });

    // B: the first half of A's users with another set, plus new users; A's second half is gone.
    const b = users('u', N / 2, [3], T0 + 10) + users('v', N / 2, [4], T0 + 10);
    await dropFeed(inbox, '002-b.snapshot.ndjson', b);
    const victim = await startSegd({ dataDir, env, waitReady: false });
    // Killed once merge transactions have committed into the new generation (applied > 0), before the flip.
    await victim.waitForLog(
      (l) => l.msg === 'inbox batch committed' && l.file === '002-b.snapshot.ndjson' && (l.applied as number) > 0,
      60_000,
    );
    victim.proc.kill('SIGKILL');
    await victim.exited;
    const mid = await readStore(dataDir);
    expect(mid.generation).toBe(before.generation); // not flipped: the old set is what a restart serves
    expect(mid.counts).toEqual(before.counts);
    expect(existsSync(join(inbox, '002-b.snapshot.ndjson'))).toBe(true);

    const segd = await startSegd({ dataDir, env, waitReady: false });
    // The interrupted snapshot is resumed first and loaded from the start (its checkpoint holds no offset to trust).
    await segd.waitForLog((l) => l.msg === 'ready', 60_000);
    expect(existsSync(join(inbox, 'done', '002-b.snapshot.ndjson'))).toBe(true);
    const keys = Array.from(
      { length: 1000 },
      (_, i) => (i % 2 ? 'v' : 'u') + String(Math.floor((i * N) / 1000)).padStart(7, '0'),
    );
    const got = await batch(segd, keys);
    keys.forEach((k, i) => {
      const n = Number(k.slice(1));
      const want = k.startsWith('v') ? (n < N / 2 ? [4] : []) : n < N / 2 ? [3] : [];
      expect(got[i], k).toEqual(want);
    });
    expect(await storedUsers(segd)).toBe(N);
    // Exact for the loaded set: nothing of A's second half or of the killed load's half left behind.
    await waitFor(async () => (await sizes(segd))[3] === N / 2, 10_000);
    expect(await sizes(segd)).toEqual({ 1: 0, 2: 0, 3: N / 2, 4: N / 2 });
    // Merge transactions do not count as writes: the saved filter still matches the (unflipped) store.
    expect(await stopReport(segd)).toEqual(CLEAN_STOP);
    const after = await readStore(dataDir);
    expect(after.generation).toBe(before.generation ^ 1);
    expect(after.counts).toEqual({ 3: N / 2, 4: N / 2 });
  });
});
