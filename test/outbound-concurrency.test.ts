// A destination with `concurrency` > 1: several batches in flight at once,
// never two holding the same user, so each user's changes still arrive in
// order; the cursor moves only past batches delivered with every batch
// before them, so a batch answered ahead of an earlier one moves nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSegd, tempDir, ingest, stopReport, type Segd } from './helpers/server.js';
import {
  startReceiver,
  writeDspConfig,
  FlipFeed,
  historyOf,
  deduplicated,
  accepted,
  type Receiver,
  type Received,
} from './helpers/receiver.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INGEST = 'ingest-key-0123456789abcdef';
const SEGS = [7001, 7002, 7003];
const USERS = Array.from({ length: 6 }, (_, i) => `c-${i}`);
const CONCURRENCY = 4;

let rx: Receiver;
let segd: Segd;
/** Requests the receiver holds unanswered now, the most at once, and users found in two at once. */
const open = new Set<Received>();
let mostOpen = 0;
const sharedUsers: string[] = [];
/** While set, the receiver holds requests whose key it names until the promise settles. */
let holdBack: ((r: Received) => Promise<void> | null) | null = null;

const feed = new FlipFeed(SEGS);
const want = feed.want;
/** One feed request: each user flips one segment (a user in consecutive rounds conflicts with its batch in flight). */
const pushRound = async (users = USERS) => {
  expect((await ingest(segd, INGEST, feed.next(users))).status).toBe(200);
};
const delivery = async () => {
  const r = await fetch(`${segd.url}/v1/admin/destinations/hook`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  return ((await r.json()) as { destination: { delivery: { cursor: number; backlog: number } } }).destination.delivery;
};
/** The outbox sequences a batch covers, from its key (`hook:<first>-<last>`). */
const rangeOf = (r: Received) => r.key.split(':')[1]!.split('-').map(Number) as [number, number];

beforeAll(async () => {
  rx = await startReceiver(async (r, n) => {
    const ids = new Set(r.body.users.map((u) => u.id));
    for (const o of open) for (const u of o.body.users) if (ids.has(u.id)) sharedUsers.push(u.id);
    open.add(r);
    mostOpen = Math.max(mostOpen, open.size);
    // A slow receiver (so batches overlap), slower on some requests than others (so answers come out of order).
    await (holdBack?.(r) ?? sleep(10 + (n % 3) * 20));
    open.delete(r);
    return { status: 200 };
  });
  const configPath = writeDspConfig(tempDir('segd-config-'), { admin: ADMIN, ingest: INGEST }, SEGS, [
    { id: 'hook', partner: 'dsp', url: rx.url, maxUsers: 2, maxDelayMs: 0, concurrency: CONCURRENCY },
  ]);
  segd = await startSegd({ env: { SEGD_CONFIG: configPath } });
});

afterAll(async () => {
  if (segd) expect((await stopReport(segd)).code).toBe(0);
  await rx?.close();
});

describe('outbound concurrency', () => {
  it('keeps up to `concurrency` batches in flight, never two with the same user; each user’s changes in order', async () => {
    for (let i = 0; i < 8; i++) await pushRound();
    const total = feed.changes;
    await rx.until(() => [...historyOf(deduplicated(accepted(rx.received))).values()].flat().length >= total);
    await expect.poll(async () => (await delivery()).backlog, { timeout: 10_000 }).toBe(0);
    expect(mostOpen).toBeGreaterThan(1);
    expect(mostOpen).toBeLessThanOrEqual(CONCURRENCY);
    expect(sharedUsers).toEqual([]);
    expect(historyOf(deduplicated(accepted(rx.received)))).toEqual(want);
    expect(rx.received.length).toBe(new Set(rx.received.map((g) => g.key)).size);
  });

  it('moves the cursor only past a prefix of delivered batches: one answered ahead of an earlier one moves nothing', async () => {
    const { cursor: start } = await delivery();
    // The first batch of the next round is held; the batches after it (other users) are answered at once.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let first: Received | null = null;
    holdBack = (r) => {
      first ??= r;
      return r === first ? released : Promise.resolve();
    };
    await pushRound();
    await rx.until((got) => accepted(got).some((g) => first !== null && rangeOf(g)[0] > rangeOf(first)[0]));
    const held = first! as Received;
    // Later batches are delivered, the held one is not: the cursor stays before it.
    const { cursor } = await delivery();
    expect(cursor).toBe(start);
    expect(cursor).toBeLessThan(rangeOf(held)[0]);
    release();
    await expect.poll(async () => (await delivery()).backlog, { timeout: 10_000 }).toBe(0);
    expect((await delivery()).cursor).toBeGreaterThanOrEqual(Math.max(...rx.received.map((g) => rangeOf(g)[1])));
    holdBack = null;
    expect(historyOf(deduplicated(accepted(rx.received)))).toEqual(want);
    expect(sharedUsers).toEqual([]);
  });
});
