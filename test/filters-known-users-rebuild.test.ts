// A known-users filter rebuilt while the writer adds users (a first build
// beside a seed, or a restored node's replay): the users added meanwhile
// reach the new filter through the writer's hook, and count towards its
// capacity, so a filter that ends the scan past its capacity grows at once
// rather than waiting for a next batch that may never come. A real LMDB
// store, the scan long enough to yield (more than one chunk of keys).
import { afterAll, describe, expect, it, vi } from 'vitest';
import { rmSync } from 'node:fs';
import pino from 'pino';
import { tempDir } from './helpers/server.js';
import { openStore, type Store } from '../src/store/env.js';
import { encodeMembers } from '../src/store/members.js';
import { KnownUsers } from '../src/filters/known-users.js';

const IN_STORE = 120_000;
const ADDED_DURING_SCAN = 40_000;

describe('a known-users filter rebuilt while users are added', () => {
  const dir = tempDir('segd-known-rebuild-');
  let store: Store | undefined;
  let known: KnownUsers | undefined;
  afterAll(async () => {
    await known?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts them, grows past its capacity at once, and says no to none of them', async () => {
    store = openStore(dir);
    const value = encodeMembers(1, [{ id: 7, expiresAt: 0 }]);
    const s = store;
    s.env.transactionSync(() => {
      for (let i = 0; i < IN_STORE; i++) void s.members.put(`u-${i}`, value);
    });
    const logs: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    known = new KnownUsers(s, { expectedUsers: 1000, fpRate: 0.01, saveEveryMs: 3_600_000 }, log);
    // No saved filter: a build starts, sized for 1.25× the store (150,000), and yields after its first chunk.
    await known.init();
    expect(logs.map((l) => l.msg)).toEqual(['no known-users filter yet; building it']);
    // The writer adds users meanwhile (keys the scan has passed), each through the hook in its transaction.
    const k = known;
    s.env.transactionSync(() => {
      for (let i = 0; i < ADDED_DURING_SCAN; i++) {
        void s.members.put(`n-${i}`, value);
        k.onNewUser(`n-${i}`);
      }
    });
    // 160,000 users in a filter for 150,000: it grows to the next size, by itself.
    await vi.waitFor(
      () => {
        const built = logs.filter((l) => l.msg === 'known-users filter built');
        expect(built.length).toBe(2);
        expect(built[1]!.capacity as number).toBeGreaterThanOrEqual(2 * (built[0]!.capacity as number));
      },
      { timeout: 30_000, interval: 50 },
    );
    expect(logs.some((l) => l.msg === 'known-users filter full; rebuilding at twice the size')).toBe(true);
    expect(known.addedCount).toBeGreaterThanOrEqual(IN_STORE + ADDED_DURING_SCAN);
    const f = known.current!;
    const missed: string[] = [];
    for (let i = 0; i < IN_STORE; i++) if (!f.mayContain(`u-${i}`)) missed.push(`u-${i}`);
    for (let i = 0; i < ADDED_DURING_SCAN; i++) if (!f.mayContain(`n-${i}`)) missed.push(`n-${i}`);
    expect(missed).toEqual([]);
  });
});
