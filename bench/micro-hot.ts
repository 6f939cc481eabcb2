// A GET lookup's JS on a Zipf key mix (60% known users, s=1, 40% unknown:
// the load tests' mix, loadtest/key-mix.ts), with and without hot answers
// (lookup/hot-answers.ts), same run, alternating rounds, best of 5. Each op
// takes a fresh uid string (as getQuery gives one per request), reads through
// ReadPath (known-users filter, LMDB get, licence) and encodes the JSON
// answer; HTTP is left out. Also: the same with a commit every 1000 lookups
// (a feed flowing: each one empties the cache), and JS heap bytes per lookup.
// Timed in CPU time (process.cpuUsage), not wall time: on a shared machine a
// window's wall time counts the other processes' turns on the core. Run as
// part of `npm run bench:micro`.
import type { Store } from '../src/store/env.js';
import { SegmentLookup, nowSeconds } from '../src/lookup/segments.js';
import { ReadPath } from '../src/lookup/read.js';
import { HotAnswers } from '../src/lookup/hot-answers.js';
import { ANONYMOUS } from '../src/lookup/licences.js';
import { AnswerBuffer, jsonAnswer } from '../src/http/format.js';
import { COMMIT_SLOT } from '../src/shared-state.js';
import { sampleKeys } from '../src/loadtest/key-mix.js';
import { BlockedBloom, sizeFor } from '../src/filters/blocked-bloom.js';
import { uidFor } from '../src/gen/synthetic.js';

const KEYS = 1 << 20;
const JSON_VARIANT = 0;

export function hotBench(store: Store, cells: Int32Array, users: number, seed: number): void {
  const mix = sampleKeys({ seed, users, hitRatio: 0.6, zipf: 1, count: KEYS });
  // As bytes: each op makes its string afresh, so V8 has not hashed it yet (a request's query string is new).
  const all = Buffer.from(mix.uids.join(''), 'latin1');
  const ends = new Uint32Array(KEYS + 1);
  mix.uids.forEach((u, i) => (ends[i + 1] = ends[i]! + u.length));
  const keyAt = (i: number) => all.toString('latin1', ends[i & (KEYS - 1)], ends[(i & (KEYS - 1)) + 1]);
  const filter = new BlockedBloom(sizeFor(users, 0.01));
  for (let i = 0; i < users; i++) filter.add(uidFor(seed, i));
  const lookup = new SegmentLookup(store);
  lookup.filter = filter;
  const counts = { hits: 0, misses: 0, hit: () => counts.hits++, miss: () => counts.misses++ };
  const graph = { profileOf: (uid: string) => uid };
  const out = new AnswerBuffer();
  const plain = new ReadPath(lookup, graph, counts);
  const sizes = [4096, 16_384, 65_536];
  const cached = sizes.map((n) => new ReadPath(lookup, graph, counts, new HotAnswers(cells, n)));
  const uncachedOp = (i: number) => {
    const uid = keyAt(i);
    const now = nowSeconds();
    return jsonAnswer(out, uid, plain.ids, plain.read(uid, ANONYMOUS, now));
  };
  const cachedOp = (reader: ReadPath) => (i: number) => {
    const uid = keyAt(i);
    const now = nowSeconds();
    let body = reader.remembered(uid, ANONYMOUS, JSON_VARIANT, now);
    if (body === undefined) {
      body = jsonAnswer(out, uid, reader.ids, reader.read(uid, ANONYMOUS, now));
      reader.keep(JSON_VARIANT, body);
    }
    return body;
  };
  const committing = (every: number, fn: (i: number) => unknown) => (i: number) => {
    if (i % every === 0) Atomics.add(cells, COMMIT_SLOT, 1);
    return fn(i);
  };
  const n = 100_000;
  let offset = 0;
  const time = (fn: (i: number) => unknown) => {
    let sink = 0;
    const t0 = process.cpuUsage();
    for (let i = 0; i < n; i++) sink ^= fn(offset + i) ? 1 : 0;
    const t = process.cpuUsage(t0);
    offset += n;
    return ((t.user + t.system) * 1000) / n + (sink === 2 ? 1e-9 : 0);
  };
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
  const hitShare = (reader: ReadPath) => {
    const op = cachedOp(reader);
    for (let i = 0; i < n; i++) op(offset + i); // warm, after any commit variant
    offset += n;
    const h0 = counts.hits;
    let remembered = 0;
    for (let i = 0; i < n; i++) {
      const uid = keyAt(offset + i);
      const now = nowSeconds();
      if (reader.remembered(uid, ANONYMOUS, JSON_VARIANT, now) !== undefined) remembered++;
      else reader.keep(JSON_VARIANT, jsonAnswer(out, uid, reader.ids, reader.read(uid, ANONYMOUS, now)));
    }
    offset += n;
    return `; ${((100 * remembered) / n).toFixed(1)}% of lookups remembered (${((100 * remembered) / (counts.hits - h0)).toFixed(1)}% of hits)`;
  };
  // Paired windows (A then B, then B then A), and the median of the pairs' ratios: the other processes
  // on a shared machine slow both of a pair alike.
  const compare = (name: string, a: (i: number) => unknown, b: (i: number) => unknown, extra = () => '') => {
    time(a);
    time(b);
    const as: number[] = [];
    const bs: number[] = [];
    const ratios: number[] = [];
    for (let pair = 0; pair < 15; pair++) {
      let ta: number;
      let tb: number;
      if (pair % 2 === 0) {
        ta = time(a);
        tb = time(b);
      } else {
        tb = time(b);
        ta = time(a);
      }
      as.push(ta);
      bs.push(tb);
      ratios.push(ta / tb);
    }
    console.log(
      `${name.padEnd(40)} ${median(as).toFixed(0).padStart(5)} → ${median(bs).toFixed(0).padStart(5)} ns/op, ${median(ratios).toFixed(2)}× (median of 15 pairs)${extra()}`,
    );
  };
  sizes.forEach((size, k) =>
    compare(`no commits, ${size} entries`, uncachedOp, cachedOp(cached[k]!), () => hitShare(cached[k]!)),
  );
  for (const every of [1000, 10_000, 100_000])
    compare(
      `a commit every ${every} lookups, 16384`,
      committing(every, uncachedOp),
      committing(every, cachedOp(cached[1]!)),
    );
  console.log(
    `JS heap per lookup: uncached ${heapPerOp(uncachedOp)}, hot answers 16384 ${heapPerOp(cachedOp(cached[1]!))}`,
  );
}

/**
 * JS heap bytes a call leaves allocated: the growth of heapUsed over short
 * windows of calls, the largest of 20 (a window a scavenge ran in shows
 * less, or shrinks).
 */
function heapPerOp(fn: (i: number) => unknown): string {
  const n = 2000;
  let most = -1;
  for (let w = 0; w < 20; w++) {
    const h0 = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) fn(w * n + i);
    most = Math.max(most, (process.memoryUsage().heapUsed - h0) / n);
  }
  return most < 0 ? 'unknown' : `${most.toFixed(0)} B`;
}
