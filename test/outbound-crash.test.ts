// Outbound delivery through crashes: segd is SIGKILLed three times while
// requests are in flight (up to three at once: `concurrency` 3) to a receiver
// that flaps (200, 500, 429, dropped connections) or hangs, and restarted on
// the same data. Afterwards every
// change the receiver should have seen arrived at least once and in order
// per user; deduplicated by Idempotency-Key, exactly once; a resent batch is
// the same batch; and nothing of a deleted user was sent after its removal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startSegd, tempDir, ingest, type Segd } from './helpers/server.js';
import {
  startReceiver,
  writeDspConfig,
  FlipFeed,
  historyOf,
  deduplicated,
  accepted,
  type Receiver,
  type Answer,
} from './helpers/receiver.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INGEST = 'ingest-key-0123456789abcdef';
const USERS = Array.from({ length: 12 }, (_, i) => `user-${i}`);
const SEGS = [5001, 5002, 5003];

let rx: Receiver;
let segd: Segd;
let dataDir: string;
let configPath: string;
let mode: 'flap' | 'hang' | 'ok' = 'flap';
let rand = 7;
/** Deterministic flapping: mostly 200, else 500, 429 (Retry-After 0) or a dropped connection. */
const flap = (): Answer => {
  // xorshift32: the low digits of a plain LCG cycle too regularly to flap.
  rand ^= rand << 13;
  rand ^= rand >>> 17;
  rand ^= rand << 5;
  const r = (rand >>> 0) % 10;
  return r < 5
    ? { status: 200 }
    : r < 7
      ? { status: 500 }
      : r < 8
        ? { status: 429, headers: { 'retry-after': '0' } }
        : 'drop';
};

const env = () => ({
  SEGD_CONFIG: configPath,
  SEGD_OUTBOUND_BACKOFF_BASE_MS: '10',
  SEGD_OUTBOUND_BACKOFF_MAX_MS: '200',
});
/** What each user should have been sent, in order. */
const feed = new FlipFeed(SEGS);
const want = feed.want;

const pushRound = async () => {
  // One record per user per request: each is one change, hence one delta.
  expect((await ingest(segd, INGEST, feed.next(USERS))).status).toBe(200);
};

beforeAll(async () => {
  rx = await startReceiver(() => (mode === 'hang' ? 'hang' : mode === 'ok' ? { status: 200 } : flap()));
  dataDir = tempDir();
  configPath = writeDspConfig(tempDir('segd-config-'), { admin: ADMIN, ingest: INGEST }, SEGS, [
    { id: 'hook', partner: 'dsp', url: rx.url, maxUsers: 5, maxDelayMs: 10, timeoutMs: 250, concurrency: 3 },
  ]);
  segd = await startSegd({ dataDir, keepData: true, env: env() });
});

afterAll(async () => {
  await segd?.stop();
  await rx?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('outbound through crashes', () => {
  it('delivers every change at least once, in order per user, exactly once by key, after three SIGKILLs mid-send', async () => {
    // The user deleted midway: added, deleted, then fed again (refused: tombstoned).
    const gone = async (op: 'add' | 'delete') => {
      if (op === 'add') {
        expect((await ingest(segd, INGEST, [{ op: 'add', uid: 'gone', segments: [5001] }])).status).toBe(200);
      } else
        expect(
          (
            await fetch(`${segd.url}/v1/users?uid=gone`, {
              method: 'DELETE',
              headers: { Authorization: `Bearer ${ADMIN}` },
            })
          ).status,
        ).toBe(200);
    };
    await gone('add');
    let deletedAt = -1;
    for (let kill = 0; kill < 3; kill++) {
      mode = 'flap';
      for (let i = 0; i < 4; i++) await pushRound();
      if (kill === 1) {
        await gone('delete');
        deletedAt = rx.received.length;
      }
      // Mid-send: the receiver holds the next request open, and segd dies with it in flight.
      mode = 'hang';
      const seen = rx.received.length;
      await pushRound();
      await rx.until((got) => got.length > seen);
      segd.proc.kill('SIGKILL');
      await segd.exited;
      const before = rx.received.length;
      segd = await startSegd({ dataDir, keepData: true, env: env() });
      // The batch in flight is resent, still hangs, times out and is sent again.
      await rx.until((got) => got.length >= before + 2);
    }
    await gone('add');
    mode = 'ok';
    for (let i = 0; i < 2; i++) await pushRound();
    // Every user's changes, and the deleted user's two lines.
    const total = feed.changes + 2;
    const delivered = () => accepted(rx.received);
    await rx.until(
      () => [...historyOf(deduplicated(delivered())).values()].reduce((n, h) => n + h.length, 0) >= total,
      60_000,
    );

    // Exactly once after deduplication by key, in order per user, counting only what the receiver acknowledged.
    const once = historyOf(deduplicated(delivered()));
    // The deleted user: its join, unless still undelivered at the deletion (then resent as a removal), and its removal; nothing after.
    const goneOnce = once.get('gone');
    once.delete('gone');
    expect(once).toEqual(want);
    expect([
      [
        [5001, 1],
        [5001, 0],
      ],
      [
        [5001, 0],
        [5001, 0],
      ],
    ]).toContainEqual(goneOnce);
    // At least once, in order, without deduplication: each user's acknowledged history holds what it should, in order.
    const raw = historyOf(delivered());
    for (const [uid, h] of want) {
      let i = 0;
      for (const ev of raw.get(uid) ?? []) if (i < h.length && ev[0] === h[i]![0] && ev[1] === h[i]![1]) i++;
      expect(i, uid).toBe(h.length);
    }
    // A resent batch (a retry, or after a restart) is the same batch: the same users, changes and segments
    // (a status may only have turned to 0: a user deleted meanwhile is resent as a removal).
    const byKey = new Map<string, string>();
    for (const g of rx.received) {
      const users = JSON.stringify(g.body.users.map((u) => [u.id, u.seq, u.segments.map((x) => x.id)]));
      expect(byKey.get(g.key) ?? users, g.key).toBe(users);
      byKey.set(g.key, users);
    }
    expect(rx.received.length).toBeGreaterThan(byKey.size); // there were resends
    // Nothing of the deleted user as a member once its deletion was answered (the request then in flight apart).
    expect(deletedAt).toBeGreaterThan(0);
    const goneLater = rx.received.slice(deletedAt + 1).flatMap((g) => g.body.users.filter((u) => u.id === 'gone'));
    expect(goneLater.flatMap((u) => u.segments.map((x) => x.status))).not.toContain(1);
    // The last answers reached the receiver just now: segd moves its cursor past them a moment later.
    const delivery = async () => {
      const r = await fetch(`${segd.url}/v1/admin/destinations/hook`, {
        headers: { Authorization: `Bearer ${ADMIN}` },
      });
      return ((await r.json()) as { destination: { delivery: Record<string, unknown> } }).destination.delivery;
    };
    await expect.poll(delivery, { timeout: 10_000 }).toMatchObject({ backlog: 0, deadLetters: 0, failed: 0 });
  }, 120_000);
});
