// A receiver down for long, and a snapshot swap: past SEGD_OUTBOUND_MAX_BACKLOG
// the queued changes are compacted to the latest state per user (the
// receiver ends with every user's right state, from fewer lines); a snapshot
// makes the sender stream the whole new state as a resync, then go on with
// the changes made after it; so does a destination enabled again after it
// was disabled (nothing was queued for it meanwhile), and a resync asked for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startSegd, runSegd, tempDir, feedLine, ingest, dropFeed, stopReport, type Segd } from './helpers/server.js';
import { startReceiver, writeDspConfig, accepted, deduplicated, type Receiver } from './helpers/receiver.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INGEST = 'ingest-key-0123456789abcdef';
const SEGS = [6001, 6002, 6003];
const USERS = Array.from({ length: 40 }, (_, i) => `b-${i}`);
/** Every user the tests feed. */
const EVERYONE = [...USERS, 's-0', 's-1', 's-2', 's-3', 's-4', 'after-snap', 'off-1'];

let rx: Receiver;
let segd: Segd;
let down = true;

const push = async (recs: Record<string, unknown>[]) => {
  expect((await ingest(segd, INGEST, recs)).status).toBe(200);
};
const put = async (body: Record<string, unknown>) => {
  const r = await fetch(`${segd.url}/v1/admin/destinations/hook`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(r.status).toBe(200);
};
const HOOK = () => ({ partner: 'dsp', url: rx.url, maxUsers: 10, maxDelayMs: 10, timeoutMs: 2000 });
const delivery = async () => {
  const r = await fetch(`${segd.url}/v1/admin/destinations/hook`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  return ((await r.json()) as { destination: { delivery: Record<string, unknown> } }).destination.delivery;
};

/** What the receiver holds: each delivered (2xx) batch applied once, a resync replacing what it restates. */
function receiverState(): Map<string, Set<number>> {
  const state = new Map<string, Set<number>>();
  let restated: Set<string> | null = null;
  for (const g of deduplicated(accepted(rx.received))) {
    if (g.body.resync) restated ??= new Set();
    for (const u of g.body.users) {
      if (g.body.resync) {
        restated!.add(u.id);
        state.set(u.id, new Set(u.segments.filter((s) => s.status === 1).map((s) => s.id)));
        continue;
      }
      const set = state.get(u.id) ?? new Set<number>();
      state.set(u.id, set);
      for (const s of u.segments)
        if (s.status === 1) set.add(s.id);
        else set.delete(s.id);
    }
    if (g.body.resync?.done) {
      for (const uid of state.keys()) if (!restated!.has(uid)) state.delete(uid);
      restated = null;
    }
  }
  for (const [uid, set] of state) if (set.size === 0) state.delete(uid);
  return state;
}

/** What segd holds of those segments, looked up. */
async function storeState(uids: string[]): Promise<Map<string, Set<number>>> {
  const out = new Map<string, Set<number>>();
  for (const uid of uids) {
    const r = await fetch(`${segd.url}/v1/segments?uid=${uid}`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    const segs = ((await r.json()) as { segments: number[] }).segments.filter((s) => SEGS.includes(s));
    if (segs.length) out.set(uid, new Set(segs));
  }
  return out;
}

beforeAll(async () => {
  rx = await startReceiver(() => (down ? { status: 503 } : { status: 200 }));
  const configPath = writeDspConfig(tempDir('segd-config-'), { admin: ADMIN, ingest: INGEST }, SEGS, [
    { id: 'hook', ...HOOK() },
  ]);
  segd = await startSegd({
    env: {
      SEGD_CONFIG: configPath,
      SEGD_OUTBOUND_MAX_BACKLOG: '100',
      SEGD_OUTBOUND_BACKOFF_BASE_MS: '20',
      SEGD_OUTBOUND_BACKOFF_MAX_MS: '100',
    },
  });
});

afterAll(async () => {
  if (segd) expect((await stopReport(segd, { allowWarnings: true })).code).toBe(0);
  await rx?.close();
});

describe('outbound backlog', () => {
  it('compacts a backlog past its bound to the latest state per user, and delivers it when the receiver is back', async () => {
    // 40 users × 6 flips = 240 changes while the receiver answers 503.
    for (let round = 0; round < 6; round++)
      await push(
        USERS.map((uid, i) => ({
          op: round % 2 === 0 ? 'add' : 'remove',
          uid,
          segments: [SEGS[(i + Math.floor(round / 2)) % SEGS.length]!],
        })),
      );
    await segd.waitForLog((l) => l.msg === 'outbound backlog compacted');
    await expect.poll(async () => (await delivery()).backlog as number, { timeout: 10_000 }).toBeLessThanOrEqual(100);
    down = false;
    await expect.poll(async () => (await delivery()).backlog, { timeout: 20_000 }).toBe(0);
    expect(receiverState()).toEqual(await storeState(USERS));
    // Fewer lines than changes reached it: the flips in between were compacted away.
    const lines = accepted(rx.received).reduce((n, g) => n + g.body.users.length, 0);
    expect(lines).toBeLessThan(240);
  });

  it('streams the whole state after a snapshot swap, then the changes made after it', async () => {
    const before = rx.received.length;
    // The snapshot keeps b-0..b-9 (new sets), drops the rest, adds s-0..s-4.
    const snap = [
      ...USERS.slice(0, 10).map((uid) => ({ op: 'replace', uid, segments: [6001, 6003] })),
      ...Array.from({ length: 5 }, (_, i) => ({ op: 'add', uid: `s-${i}`, segments: [6002] })),
    ];
    await dropFeed(join(segd.dataDir, 'inbox'), 'full.snapshot.ndjson', snap.map(feedLine).join(''));
    await rx.until((got) => got.slice(before).some((g) => g.body.resync?.done));
    await push([{ op: 'add', uid: 'after-snap', segments: [6002] }]);
    await expect.poll(async () => (await delivery()).backlog, { timeout: 20_000 }).toBe(0);
    await rx.until((got) => got.some((g) => g.body.users.some((u) => u.id === 'after-snap')));
    const resync = rx.received.slice(before).filter((g) => g.body.resync);
    expect(resync.length).toBeGreaterThanOrEqual(2);
    expect(new Set(resync.map((g) => g.body.resync!.id)).size).toBe(1);
    expect(receiverState()).toEqual(await storeState([...USERS, 's-0', 's-1', 's-2', 's-3', 's-4', 'after-snap']));
  });

  it('streams the state a destination missed while disabled when it is enabled again', async () => {
    await expect.poll(async () => (await delivery()).backlog, { timeout: 20_000 }).toBe(0);
    await put({ ...HOOK(), disabled: true });
    expect(await delivery()).toMatchObject({ running: false });
    // Changed while it is off: nothing is queued for these.
    await push([
      { op: 'add', uid: 'off-1', segments: [6001, 6003] },
      { op: 'remove', uid: 'b-0', segments: [6001, 6003] },
      { op: 'add', uid: 'b-1', segments: [6002] },
    ]);
    const before = rx.received.length;
    await put(HOOK());
    await rx.until((got) => got.slice(before).some((g) => g.body.resync?.done));
    await expect.poll(async () => (await delivery()).backlog, { timeout: 20_000 }).toBe(0);
    expect(receiverState()).toEqual(await storeState(EVERYONE));
    expect(receiverState().get('off-1')).toEqual(new Set([6001, 6003]));
  });

  it('streams the whole state on demand (POST …/resync, segd outbound resync)', async () => {
    for (const ask of ['http', 'cli'] as const) {
      const before = rx.received.length;
      if (ask === 'http') {
        const r = await fetch(`${segd.url}/v1/admin/destinations/hook/resync`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${ADMIN}` },
        });
        expect(await r.json()).toEqual({ resync: 'queued' });
      } else {
        const out = await runSegd(['outbound', 'resync', 'hook', '--url', segd.url, '--key', ADMIN]);
        expect(out).toMatchObject({ code: 0, stdout: 'resync of hook queued (after what is queued before it)\n' });
      }
      await rx.until((got) => got.slice(before).some((g) => g.body.resync?.done));
      const restated = rx.received.slice(before).filter((g) => g.body.resync);
      expect(new Set(restated.map((g) => g.body.resync!.id)).size).toBe(1);
      const users = new Set(restated.flatMap((g) => g.body.users.map((u) => u.id)));
      expect([...users].sort()).toEqual([...(await storeState(EVERYONE)).keys()].sort());
    }
    const missing = await fetch(`${segd.url}/v1/admin/destinations/nope/resync`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN}` },
    });
    expect(missing.status).toBe(404);
  });
});
