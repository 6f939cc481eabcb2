// A user's set after a change (loader/member-set.ts) against the rules
// written plainly with a Map: stored live pairs kept unless replaced or
// removed, the change's pairs over them with the last of duplicate ids
// winning, a TTL already past removing its id. Changes run past the
// insertion-sort size (32 ids) so both sorts are held to the same rules.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { nextMembers } from '../src/loader/member-set.js';
import { OPS, type Change } from '../src/loader/records.js';
import type { Membership } from '../src/store/members.js';

function reference(old: readonly Membership[] | undefined, ch: Change, now: number): Membership[] {
  if (ch.op === 'delete') return [];
  const map = new Map<number, number>();
  if (old && ch.op !== 'replace')
    for (const m of old) if (m.expiresAt === 0 || m.expiresAt > now) map.set(m.id, m.expiresAt);
  ch.ids.forEach((id, k) => {
    if (ch.op === 'remove') return void map.delete(id);
    const ttl = ch.ttls[k] ?? 0;
    const exp = ttl === 0 ? 0 : ch.ts + ttl;
    if (exp !== 0 && exp <= now) map.delete(id);
    else map.set(id, exp);
  });
  return [...map.entries()].sort((a, b) => a[0] - b[0]).map(([id, expiresAt]) => ({ id, expiresAt }));
}

describe('nextMembers', () => {
  it('follows the plain rules for small and large changes, duplicates and past TTLs', () => {
    const now = 1_800_000_000;
    const old = fc.option(
      fc
        .uniqueArray(fc.integer({ min: 0, max: 80 }), { maxLength: 60 })
        .chain((ids) =>
          fc.tuple(...ids.map((id) => fc.constantFrom(0, now - 5, now + 100).map((expiresAt) => ({ id, expiresAt })))),
        ),
      { nil: undefined },
    );
    const change = fc.record({
      op: fc.constantFrom(...OPS),
      segs: fc.array(fc.record({ id: fc.integer({ min: 0, max: 80 }), ttl: fc.constantFrom(0, 1, 50, 100_000) }), {
        maxLength: 120,
        size: 'max', // fast-check's default size keeps arrays near 10 long: below the large sort
      }),
      ts: fc.integer({ min: now - 200, max: now + 10 }),
    });
    fc.assert(
      fc.property(old, change, (o, c) => {
        const sorted = o ? [...o].sort((a, b) => a.id - b.id) : undefined;
        const ch: Change = {
          op: c.op,
          uid: 'u',
          ids: c.segs.map((s) => s.id),
          ttls: c.segs.map((s) => s.ttl),
          ts: c.ts,
        };
        expect(nextMembers(sorted, ch, now)).toEqual(reference(sorted, ch, now));
      }),
      { numRuns: 2000 },
    );
  });
});
