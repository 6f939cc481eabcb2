// The outbox against the store: for any changes, cut into any batches, with
// opt-outs and transactions that fail in between, the deltas queued for each
// destination, replayed in sequence order, give exactly the memberships the
// store holds of the segments that destination may receive — nothing lost,
// nothing invented, nothing outside its segments and licence.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pino } from 'pino';
import { Writer } from '../src/loader/writer.js';
import type { Change } from '../src/loader/records.js';
import { Registry } from '../src/partners/registry.js';
import { applyRegistryOp } from '../src/partners/admin.js';
import { OutboundSender } from '../src/outbound/sender.js';
import { SEQ_END, type OutboxEntry } from '../src/outbound/outbox.js';
import { decodeMembers } from '../src/store/members.js';
import { tempStore, forgetting } from './helpers/store.js';
import { changeArb as changeArbOf } from './helpers/changes.js';

const store = tempStore();
const NOW = 2_000_000_000;
const UIDS = ['u1', 'u2', 'u3', 'ü4'];
const changeArb = changeArbOf({
  uids: UIDS,
  segments: 6,
  ops: ['add', 'remove', 'replace', 'delete'],
  ttls: [0, 0, 100],
  maxSegments: 4,
  now: NOW,
  spread: 50,
});

const ok = (r: { ok: boolean }) => expect(r.ok).toBe(true);
ok(applyRegistryOp(store, { kind: 'putPartner', id: 'all', body: { segments: '*' } }));
ok(applyRegistryOp(store, { kind: 'putPartner', id: 'some', body: { segments: [0, 1, 2] } }));
for (const s of [0, 1, 2, 3, 4, 5])
  ok(applyRegistryOp(store, { kind: 'putSegment', id: s, body: { name: `s${s}`, segtax: 600 } }));
ok(
  applyRegistryOp(store, {
    kind: 'putDestination',
    id: 'everything',
    body: { partner: 'all', url: 'http://127.0.0.1:9/' },
  }),
);
ok(
  applyRegistryOp(store, {
    kind: 'putDestination',
    id: 'cut',
    body: { partner: 'some', url: 'http://127.0.0.1:9/', segments: [1, 2, 3] },
  }),
);
/** What each destination may receive. */
const ALLOWED: Record<string, (s: number) => boolean> = { everything: () => true, cut: (s) => s === 1 || s === 2 };

// Constructed, never started: only the outbox is under test here.
const sender = new OutboundSender(store, Registry.load(store), pino({ level: 'silent' }), {
  maxBacklog: 1e9,
  maxAttempts: 3,
  backoffBaseMs: 1,
  backoffMaxMs: 1,
});

type Step = { kind: 'batch'; changes: Change[]; fail: boolean } | { kind: 'optout'; uid: string };
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      changes: fc.array(changeArb, { minLength: 1, maxLength: 6 }),
      fail: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('optout' as const), uid: fc.constantFrom(...UIDS) }) },
);

function reset(): void {
  for (const db of [store.members, store.counts, store.optout, store.outbox])
    // One transaction each, the outbox last: emptying members queues the removals.
    store.env.transactionSync(() => {
      for (const k of db.getKeys()) (db as { removeSync(k: unknown): boolean }).removeSync(k);
    });
}

describe('outbox', () => {
  it('replays to exactly the stored memberships each destination may receive', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 25 }), (steps) => {
        reset();
        const writer = new Writer(store);
        writer.suppressed.load(NOW);
        const forget = forgetting(store, writer);
        for (const step of steps) {
          if (step.kind === 'optout') forget.forget({ uid: step.uid }, 'optout', NOW, 0, 'test');
          else if (step.fail) {
            // A transaction that does not commit queues nothing.
            try {
              store.env.transactionSync(() => {
                writer.apply(step.changes, NOW);
                throw new Error('abort');
              });
            } catch {
              /* expected */
            }
          } else writer.apply(step.changes, NOW);
        }
        for (const dest of Object.keys(ALLOWED)) {
          const replay = new Map<string, Set<number>>();
          let lastSeq = 0;
          for (const { key, value } of store.outbox.getRange({ start: [dest, 0], end: [dest, SEQ_END] })) {
            const e = value as OutboxEntry;
            expect(key[1]).toBeGreaterThan(lastSeq);
            lastSeq = key[1];
            for (const s of [...e.j, ...e.l]) expect(ALLOWED[dest]!(s)).toBe(true);
            let set = replay.get(e.u);
            if (!set) replay.set(e.u, (set = new Set()));
            for (const s of e.j) {
              expect(set.has(s)).toBe(false); // a join is always of a segment not held
              set.add(s);
            }
            for (const s of e.l) {
              expect(set.has(s)).toBe(true); // a leave always of one held
              set.delete(s);
            }
          }
          for (const uid of UIDS) {
            const buf = store.members.getBinaryFast(uid) as Buffer | undefined;
            const held = buf
              ? decodeMembers(buf)
                  .members.map((m) => m.id)
                  .filter(ALLOWED[dest]!)
              : [];
            expect(
              [...(replay.get(uid) ?? [])].sort((a, b) => a - b),
              `${dest} ${uid}`,
            ).toEqual(held);
          }
        }
      }),
      { numRuns: 150 },
    );
    void sender;
  });
});
