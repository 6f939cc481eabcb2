// A segment's members as a bloom filter, for partners that hold audiences in
// memory at the edge. Built on the loader thread by one scan of the store, in
// chunks that let the loader interleave; cached until the store changes.
//
// Format (JSON, one document; the API docs of GET /v1/segments/:id/bloom):
//   { "format": "segd-blocked-bloom", "version": 1, "segment": 1234,
//     "members": 81234, "fpRate": 0.001, "blocks": B, "k": K,
//     "hash": "segd-fnv2-v1", "createdAt": unix seconds,
//     "bits": base64 of B × 64 bytes }
// The check (hash, block, k positions) is the BlockedBloom in blocked-bloom.ts;
// examples/segment-bloom-reader.mjs is a dependency-free reader.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { writeSequence, type Store } from '../store/env.js';
import { HEADER_BYTES, PAIR_BYTES } from '../store/members.js';
import { nowSeconds } from '../lookup/segments.js';
import { BlockedBloom, sizeFor } from './blocked-bloom.js';

const EXPORT_FORMAT = 'segd-blocked-bloom';
const EXPORT_HASH = 'segd-fnv2-v1';
const SCAN_CHUNK = 50_000;

interface SegmentExport {
  format: typeof EXPORT_FORMAT;
  version: 1;
  segment: number;
  members: number;
  fpRate: number;
  blocks: number;
  k: number;
  hash: typeof EXPORT_HASH;
  createdAt: number;
  bits: string;
}

/** Does a members value hold `segment`, live at `now`? Pairs are sorted by id. */
function holds(buf: Buffer, segment: number, now: number): boolean {
  let lo = 0;
  // Whole pairs only: a value may end with a 4-byte insights ordinal after them.
  let hi = Math.floor((buf.length - HEADER_BYTES) / PAIR_BYTES) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const off = HEADER_BYTES + mid * PAIR_BYTES;
    const id = buf.readUInt32LE(off);
    if (id === segment) {
      const exp = buf.readUInt32LE(off + 4);
      return exp === 0 || exp > now;
    }
    if (id < segment) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

export class SegmentExporter {
  private cache = new Map<string, { writes: number; doc: string }>();

  constructor(private readonly store: Store) {}

  /** The export document as JSON text. */
  async export(segment: number, fpRate: number): Promise<string> {
    const key = `${segment}:${fpRate}`;
    const writes = writeSequence(this.store);
    const hit = this.cache.get(key);
    if (hit && hit.writes === writes) return hit.doc;

    const now = nowSeconds();
    const members: string[] = [];
    let chunk = 0;
    // Two passes would halve memory; one pass keeps the member list (keys
    // only) so the filter can be sized exactly for this segment.
    for (const { key: uid, value } of this.store.members.getRange({ snapshot: false })) {
      if (holds(value as Buffer, segment, now)) members.push(uid as string);
      if (++chunk === SCAN_CHUNK) {
        chunk = 0;
        await yieldToLoop();
      }
    }
    const filter = new BlockedBloom(sizeFor(Math.max(members.length, 1), fpRate));
    for (const uid of members) filter.add(uid);
    const doc: SegmentExport = {
      format: EXPORT_FORMAT,
      version: 1,
      segment,
      members: members.length,
      fpRate,
      blocks: filter.params.blocks,
      k: filter.params.k,
      hash: EXPORT_HASH,
      createdAt: now,
      bits: Buffer.from(filter.buffer).toString('base64'),
    };
    const text = JSON.stringify(doc);
    if (this.cache.size > 64) this.cache.clear();
    this.cache.set(key, { writes, doc: text });
    return text;
  }
}
