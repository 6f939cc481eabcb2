// A destination down for long keeps its backlog on disk up to a bound; past
// it the backlog is compacted to the latest state per user: each user's
// queued changes become one entry, at the place of its last one, holding each
// segment's final status. Receivers lose the intermediate flips of a user
// they could not take anyway, never the state it ends in; order per user is
// kept. A resync marker ends the part compacted (what follows it is resent
// whole anyway), and a batch in flight is left as it is.
import type { Store } from '../store/env.js';
import { SEQ_END, type OutboxEntry } from './outbox.js';

/** Inside a transaction: compacts `dest`'s entries after `after`. Returns the entries left. */
export function compactOutbox(store: Store, dest: string, after: number): { before: number; after: number } {
  const users = new Map<string, { last: number; at: number; a: number; status: Map<number, 0 | 1> }>();
  const seqs: number[] = [];
  let kept = 0;
  for (const { key, value } of store.outbox.getRange({
    start: [dest, after + 1],
    end: [dest, SEQ_END],
    snapshot: false,
  })) {
    const e = value as OutboxEntry;
    if (e.r) {
      // The marker and everything after it stay.
      kept += store.outbox.getCount({ start: key, end: [dest, SEQ_END] });
      break;
    }
    seqs.push(key[1]);
    let u = users.get(e.u);
    if (u === undefined) users.set(e.u, (u = { last: 0, at: e.at, a: 0, status: new Map() }));
    u.last = key[1];
    u.a = Math.max(u.a, e.a ?? 0);
    for (const s of e.j) u.status.set(s, 1);
    for (const s of e.l) u.status.set(s, 0);
  }
  for (const seq of seqs) store.outbox.removeSync([dest, seq]);
  for (const [uid, u] of users) {
    const j: number[] = [];
    const l: number[] = [];
    for (const [s, st] of u.status) (st ? j : l).push(s);
    const entry: OutboxEntry = { u: uid, at: u.at, j: j.sort((x, y) => x - y), l: l.sort((x, y) => x - y) };
    if (u.a) entry.a = u.a;
    store.outbox.putSync([dest, u.last], entry);
  }
  return { before: seqs.length + kept, after: users.size + kept };
}
