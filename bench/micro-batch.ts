// Batch lookups' JS cost per key, before and after items are encoded straight
// into the answer buffer (format.ts ItemEncoder), same run, alternating
// rounds (min and median of 101 windows): 1000-key bodies (60% known uids) decoded, every key
// checked and read (lookup.find + licence filter, as ReadPath does), the
// answer encoded. Run as part of `npm run bench:micro`.
import { pack, unpack } from 'msgpackr';
import { checkUid } from '../src/identity/uid.js';
import type { SegmentLookup } from '../src/lookup/segments.js';
import { AnswerBuffer, JSON_ITEMS, MSGPACK_ITEMS, type ItemEncoder } from '../src/http/format.js';
import { UidListScanner } from '../src/codec/uid-list.js';

const KEYS = 1000;
/**
 * Bodies of distinct keys, taken in turn (as bench:cpu sends them): one body
 * read again and again keeps its users' LMDB pages and filter blocks in the
 * cache, which a server's batches do not.
 */
const BODIES = 20;
const ROUNDS = 101;

export function batchBench(lookup: SegmentLookup, hits: string[], misses: string[], now: number): void {
  const uidsOf = (b: number) =>
    Array.from({ length: KEYS }, (_, i) => {
      const k = ((b * KEYS + i) * 7) % hits.length;
      return i % 5 < 3 ? hits[k]! : misses[k]!;
    });
  const jsonBodies = Array.from({ length: BODIES }, (_, b) => Buffer.from(JSON.stringify({ uids: uidsOf(b) })));
  const msgpackBodies = Array.from({ length: BODIES }, (_, b) => pack({ uids: uidsOf(b) }));
  let turn = 0;
  let jsonBody = jsonBodies[0]!;
  let msgpackBody = msgpackBodies[0]!;
  /** The next body, JSON and MessagePack alike. */
  const next = () => {
    turn = (turn + 1) % BODIES;
    jsonBody = jsonBodies[turn]!;
    msgpackBody = msgpackBodies[turn]!;
  };
  const out = new AnswerBuffer();
  const read = (uid: unknown): number => {
    if (checkUid(uid, 128) !== null) return -1;
    const n = lookup.find(uid as string, now);
    return n < 0 ? 0 : n;
  };
  /** As the route encoded a MessagePack batch: an object per item, then msgpackr's pack. */
  const msgpackObjects = () => {
    const items = (unpack(msgpackBody) as { uids: unknown[] }).uids;
    const results: unknown[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const n = read(items[i]);
      results[i] = { uid: items[i], segments: n <= 0 ? [] : Array.from(lookup.ids.subarray(0, n)) };
    }
    return pack({ results });
  };
  const encoded = (enc: ItemEncoder, decode: () => unknown[]) => () => {
    const items = decode();
    out.reset();
    enc.open(out, items.length);
    for (let i = 0; i < items.length; i++) {
      const n = read(items[i]);
      enc.item(out, i === 0, items[i] as string, lookup.ids, n < 0 ? 0 : n, null, '');
    }
    enc.close(out);
    return out.view();
  };
  // As the route answers a plain `{"uids":[…]}` body: uids screened by the
  // known-users filter from the bytes, in a loop of their own, then read.
  const scanner = new UidListScanner();
  const maybe = new Uint8Array(KEYS);
  const fromBytes = () => {
    const count = scanner.scan(jsonBody, KEYS, 128);
    const { starts, ends } = scanner;
    for (let i = 0; i < count; i++) maybe[i] = lookup.screen(jsonBody, starts[i]!, ends[i]!) ? 1 : 0;
    out.reset();
    JSON_ITEMS.open(out, count);
    for (let i = 0; i < count; i++) {
      let n = 0;
      if (maybe[i] === 1) n = Math.max(0, lookup.findAscii(jsonBody, starts[i]!, ends[i]!, now));
      JSON_ITEMS.asciiItem(out, i === 0, jsonBody, starts[i]!, ends[i]!, lookup.ids, n);
    }
    JSON_ITEMS.close(out);
    return out.view();
  };
  const fromMsgpack = () => (unpack(msgpackBody) as { uids: unknown[] }).uids;
  const fromJson = () => (JSON.parse(jsonBody.toString('utf8')) as { uids: unknown[] }).uids;
  const readOnly = () => {
    const items = fromMsgpack();
    let sum = 0;
    for (let i = 0; i < items.length; i++) sum += read(items[i]);
    return sum;
  };
  const variants: Array<[string, () => unknown]> = [
    ['msgpack, objects + pack (before)', msgpackObjects],
    ['msgpack, ItemEncoder into the buffer', encoded(MSGPACK_ITEMS, fromMsgpack)],
    ['json, ItemEncoder into the buffer', encoded(JSON_ITEMS, fromJson)],
    ['json, read from the body bytes (the route)', fromBytes],
    ['  of which decode + check + read (no answer)', readOnly],
    ['  of which the JSON body parse', fromJson],
    ['  of which the MessagePack body decode', fromMsgpack],
  ];
  const best = variants.map(() => Infinity);
  const windows: number[][] = variants.map(() => []);
  // Short windows (each body once), many of them: on the shared machine the
  // best windows are the ones no other process's burst landed in.
  const batches = BODIES;
  for (let round = 0; round < ROUNDS + 1; round++) {
    variants.forEach(([, fn], k) => {
      let sink = 0;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < batches; i++) {
        next();
        sink ^= fn() === null ? 1 : 0;
      }
      const ns = Number(process.hrtime.bigint() - t0) / (batches * KEYS) + (sink === 2 ? 1e-9 : 0);
      if (round > 0) {
        // Round 0 warms up.
        best[k] = Math.min(best[k]!, ns);
        windows[k]!.push(ns);
      }
    });
  }
  console.log(
    `\nbatch lookups, ${KEYS} keys per batch (60% known), ${BODIES} bodies in turn, min (median) of ${ROUNDS} alternating windows\n`,
  );
  variants.forEach(([name], k) => {
    const sorted = [...windows[k]!].sort((a, b) => a - b);
    const med = sorted[sorted.length >> 1]!;
    console.log(
      `${name.padEnd(48)} ${best[k]!.toFixed(1).padStart(8)} (${med.toFixed(1).padStart(7)}) ns/key ${(1e9 / best[k]! / 1e6).toFixed(2).padStart(6)} M keys/s`,
    );
  });
  const encoding = (k: number) => (best[k]! - best[4]!).toFixed(0);
  console.log(
    `msgpack batch: ${(best[0]! / best[1]!).toFixed(2)}× faster with the ItemEncoder; encoding alone ≈ ${encoding(0)} → ${encoding(1)} ns/key (json ${encoding(2)})\n`,
  );
}
