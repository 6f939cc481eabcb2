// A disk that fills, for real: the data dir lives on a small tmpfs (mounted
// here; needs root, skipped otherwise), which a filler file then fills. The
// loader must stop cleanly (no crash, nothing half-applied), lookups keep
// answering from the last committed data, /readyz and /metrics say why, a push
// and a privacy deletion get STORE_FULL, and once space is back everything pending is applied,
// exactly once.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, dropFeed, feedLine, tempDir, segmentsOf, waitFor, type Segd } from './helpers/server.js';

function tryMount(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const probe = tempDir('segd-mount-probe-');
const canMount = process.getuid?.() === 0 && tryMount(probe, '1m');
if (canMount) execFileSync('umount', [probe]);
rmSync(probe, { recursive: true, force: true });

/** Writes zeros into `path` until the filesystem refuses (ENOSPC), or `bytes` of them. */
function fill(path: string, bytes = Infinity): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let n = 0;
  try {
    while (n < bytes) n += writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - n));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return n;
}

const KEY = 'store-full-test-key-0123456789';
const ADMIN = 'store-full-admin-key-0123456789';
const deleteUser = async (segd: Segd, uid: string) => {
  const r = await fetch(`${segd.url}/v1/users?uid=${uid}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
};

async function push(segd: Segd, body: string, idem: string) {
  const r = await fetch(`${segd.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/x-ndjson', 'idempotency-key': idem },
    body,
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

const stalledGauge = async (segd: Segd) =>
  Number(
    /segd_loader_stalled\{reason="disk_full"\} (\d+)/.exec(await (await fetch(`${segd.url}/metrics`)).text())?.[1],
  );
const readyz = async (segd: Segd) => (await (await fetch(`${segd.url}/readyz`)).json()) as Record<string, unknown>;

// Both ways LMDB writes: through a writable map, the data file kept allocated
// 4 MiB past its last used page plus 8 KiB a record of the coming batch (a
// 5,000-record batch: 44 MiB; the mount is sized for it), and with pwrite
// from a read-only map.
const MODES = [
  { mode: 'writable map', headroomMb: '4', mount: '160m' },
  { mode: 'pwrite', headroomMb: '0', mount: '24m' },
];

describe.skipIf(!canMount).each(MODES)('a disk that fills (tmpfs data dir), $mode', ({ headroomMb, mount }) => {
  it('stops the loader cleanly, keeps lookups serving, says why, and resumes once space is back', async () => {
    const mnt = tempDir('segd-full-');
    expect(tryMount(mnt, mount)).toBe(true);
    let segd: Segd | undefined;
    try {
      const dataDir = join(mnt, 'data');
      mkdirSync(dataDir);
      const inbox = join(tempDir(), 'inbox'); // elsewhere: done/ and rejects/ must not be what fails
      segd = await startSegd({
        dataDir,
        env: {
          SEGD_INBOX: inbox,
          SEGD_INGEST_KEYS: KEY,
          SEGD_ADMIN_KEYS: ADMIN,
          SEGD_BLOOM_USERS: '100000',
          SEGD_LOADER_BATCH: '5000',
          SEGD_WRITEMAP_HEADROOM_MB: headroomMb,
        },
      });
      const before = Array.from({ length: 1000 }, (_, i) => feedLine({ op: 'add', uid: `k${i}`, segments: [1] })).join(
        '',
      );
      expect((await push(segd, before, 'before')).status).toBe(200);

      fill(join(mnt, 'filler'));
      const N = 60_000; // several MB of pages: far more than any free page LMDB holds
      const users = Array.from({ length: N }, (_, i) =>
        feedLine({ op: 'add', uid: `user-${String(i).padStart(6, '0')}-${'x'.repeat(40)}`, segments: [2, 3, 4, 5] }),
      ).join('');
      await dropFeed(inbox, '001-big.ndjson', users);

      await waitFor(async () => (await readyz(segd!)).loader === 'stalled');
      expect(await readyz(segd)).toMatchObject({ status: 'ready', loader: 'stalled', reason: 'disk_full' });
      expect(await stalledGauge(segd)).toBe(1);
      const during = await push(segd, feedLine({ op: 'add', uid: 'pushed-while-full', segments: [9] }), 'while-full');
      expect(during.status).toBe(503);
      expect((during.body.error as { code: string }).code).toBe('STORE_FULL');
      // A privacy deletion (the ID graph's own transaction) is refused the same way, nothing half-done.
      const del = await deleteUser(segd, 'k1');
      expect([del.status, (del.body.error as { code: string }).code]).toEqual([503, 'STORE_FULL']);
      expect(await segmentsOf(segd, 'k1')).toEqual([1]);
      // The last committed data still answers.
      expect(await segmentsOf(segd, 'k0')).toEqual([1]);
      expect(await segmentsOf(segd, 'k999')).toEqual([1]);
      expect(existsSync(join(inbox, '001-big.ndjson'))).toBe(true);
      expect(segd.proc.exitCode).toBe(null);

      rmSync(join(mnt, 'filler'));
      await waitFor(async () => existsSync(join(inbox, 'done', '001-big.ndjson')), 60_000);
      await waitFor(async () => (await readyz(segd!)).loader === undefined);
      expect(await stalledGauge(segd)).toBe(0);
      // The retried push (same key) now applies; everything from the file is there exactly once.
      expect(
        (await push(segd, feedLine({ op: 'add', uid: 'pushed-while-full', segments: [9] }), 'while-full')).body,
      ).toMatchObject({ applied: 1, replay: false });
      expect(await segmentsOf(segd, 'pushed-while-full')).toEqual([9]);
      expect(await deleteUser(segd, 'k1')).toMatchObject({ status: 200, body: { found: true, memberships: true } });
      expect(await segmentsOf(segd, 'k1')).toEqual([]);
      expect(await segmentsOf(segd, `user-000000-${'x'.repeat(40)}`)).toEqual([2, 3, 4, 5]);
      expect(await segmentsOf(segd, `user-${String(N - 1).padStart(6, '0')}-${'x'.repeat(40)}`)).toEqual([2, 3, 4, 5]);
      const metrics = await (await fetch(`${segd.url}/metrics`)).text();
      expect(Number(/segd_store_users (\d+)/.exec(metrics)?.[1])).toBe(1000 + N);
      // Lines are all the same length: the resumed import applied exactly the lines after the last committed checkpoint.
      const imported = await segd.waitForLog((l) => l.msg === 'inbox file imported');
      const lineBytes = Buffer.byteLength(users) / N;
      expect(imported.applied).toBe(N - (imported.resumedFrom as number) / lineBytes);
      expect(
        segd.logs.filter((l) => l.msg === 'store full: loader stopped, lookups keep serving the last committed data'),
      ).toHaveLength(1);
      await segd.waitForLog((l) => l.msg === 'store takes writes again; loader resumed');
      expect(await segd.stop()).toBe(0);
      // lmdb-js's native code reports each failed page write on stderr itself; nothing else may appear there.
      expect(segd.stderr.join('').replace(/Write error: No space left on device position \d+, size \d+\n?/g, '')).toBe(
        '',
      );
      const { open } = await import('lmdb');
      const env = open({ path: dataDir, readOnly: true });
      const counts = env.openDB<number, number>({ name: 'counts', keyEncoding: 'uint32' });
      expect(Object.fromEntries([...counts.getRange()].map(({ key, value }) => [key, value]))).toEqual({
        1: 999,
        2: N,
        3: N,
        4: N,
        5: N,
        9: 1,
      });
      await env.close();
    } finally {
      if (segd && segd.proc.exitCode === null) await segd.stop();
      execFileSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});

const MIB = 2 ** 20;
const freeMib = (dir: string) => {
  const s = statfsSync(dir);
  return (s.bavail * s.bsize) / MIB;
};

// The edge of the headroom: a batch whose pages the allocated room cannot
// hold, on a disk with room for the headroom but not for the batch. The
// batch is refused before it begins (nothing reaches the map), a small write
// still fits, and everything applies once there is space.
describe.skipIf(!canMount)('a writable map at the edge of its headroom (tmpfs data dir)', () => {
  it('refuses a batch bigger than the room the disk can give, takes a small write, applies it all once space is back', async () => {
    const mnt = tempDir('segd-edge-');
    expect(tryMount(mnt, '160m')).toBe(true);
    let segd: Segd | undefined;
    try {
      const dataDir = join(mnt, 'data');
      mkdirSync(dataDir);
      const inbox = join(tempDir(), 'inbox');
      segd = await startSegd({
        dataDir,
        env: {
          SEGD_INBOX: inbox,
          SEGD_INGEST_KEYS: KEY,
          SEGD_BLOOM_USERS: '100000',
          SEGD_LOADER_BATCH: '5000',
          SEGD_WRITEMAP_HEADROOM_MB: '4',
        },
      });
      expect((await push(segd, feedLine({ op: 'add', uid: 'k0', segments: [1] }), 'before')).status).toBe(200);
      // 24 MiB left: a 5,000-record batch needs 40 MiB of room past the last used page, a one-record push 4 MiB.
      fill(join(mnt, 'filler'), Math.floor((freeMib(mnt) - 24) * MIB));
      const N = 5000;
      const users = Array.from({ length: N }, (_, i) =>
        feedLine({ op: 'add', uid: `user-${String(i).padStart(6, '0')}`, segments: [2, 3] }),
      ).join('');
      await dropFeed(inbox, '001-batch.ndjson', users);

      await waitFor(async () => (await readyz(segd!)).loader === 'stalled');
      expect(await readyz(segd)).toMatchObject({ status: 'ready', loader: 'stalled', reason: 'disk_full' });
      // Refused with the disk not full: the room was asked for before the transaction began.
      expect(freeMib(mnt)).toBeGreaterThan(16);
      expect(await segmentsOf(segd, 'user-000000')).toEqual([]);
      expect(await segmentsOf(segd, 'k0')).toEqual([1]);
      const small = await push(segd, feedLine({ op: 'add', uid: 'small', segments: [9] }), 'small');
      expect([small.status, small.body.applied]).toEqual([200, 1]);
      expect(segd.proc.exitCode).toBe(null);

      rmSync(join(mnt, 'filler'));
      await waitFor(async () => existsSync(join(inbox, 'done', '001-batch.ndjson')), 60_000);
      await waitFor(async () => (await readyz(segd!)).loader === undefined);
      expect(await segmentsOf(segd, 'user-000000')).toEqual([2, 3]);
      expect(await segmentsOf(segd, `user-${String(N - 1).padStart(6, '0')}`)).toEqual([2, 3]);
      expect(await segmentsOf(segd, 'small')).toEqual([9]);
      const metrics = await (await fetch(`${segd.url}/metrics`)).text();
      expect(Number(/segd_store_users (\d+)/.exec(metrics)?.[1])).toBe(N + 2);
      expect(await segd.stop()).toBe(0);
      expect(segd.stderr.join('')).toBe('');
    } finally {
      if (segd && segd.proc.exitCode === null) await segd.stop();
      execFileSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});
