#!/usr/bin/env node
// Reads a segd segment export (GET /v1/segments/:id/bloom) and checks keys
// against it. No dependencies: copy this file next to your edge service.
//
//   node segment-bloom-reader.mjs export.json KEY [KEY …]   → "KEY<TAB>maybe|no" per key
//
//   import { openSegmentExport } from './segment-bloom-reader.mjs';
//   const seg = openSegmentExport(JSON.parse(text));
//   seg.mayContain('user-key');   // false = certainly not in the segment
//
// Format "segd-blocked-bloom" v1, hash "segd-fnv2-v1": the key's UTF-16 code
// units (its bytes, for ASCII keys) are hashed twice (FNV-1a-style multiply
// by 0x01000193 from 0x811c9dc5, and by 0x5bd1e995 from 0x9747b28c), each
// finalised; the first picks one of `blocks` 512-bit blocks, the second seeds
// k 9-bit positions in it. Bits are little-endian 32-bit words.
import { readFileSync } from 'node:fs';

function mix(a) {
  a = Math.imul(a ^ (a >>> 16), 0x7feb352d);
  a = Math.imul(a ^ (a >>> 15), 0x846ca68b);
  return a ^ (a >>> 16);
}

export function openSegmentExport(doc) {
  if (doc.format !== 'segd-blocked-bloom' || doc.version !== 1 || doc.hash !== 'segd-fnv2-v1') {
    throw new Error(`unsupported export: ${doc.format} v${doc.version} ${doc.hash}`);
  }
  const bytes = Buffer.from(doc.bits, 'base64');
  if (bytes.length !== doc.blocks * 64) throw new Error('export is truncated');
  const words = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return {
    segment: doc.segment,
    members: doc.members,
    mayContain(key) {
      let h1 = 0x811c9dc5;
      let h2 = 0x9747b28c;
      for (let i = 0; i < key.length; i++) {
        const c = key.charCodeAt(i);
        h1 = Math.imul(h1 ^ c, 0x01000193);
        h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      }
      h1 ^= key.length;
      h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
      h1 = Math.imul(h1 ^ (h1 >>> 13), 0xc2b2ae35);
      h1 = (h1 ^ (h1 >>> 16)) >>> 0;
      h2 = Math.imul(h2 ^ (h2 >>> 15), 0x2c1b3c6d);
      h2 = Math.imul(h2 ^ (h2 >>> 12), 0x297a2d39);
      h2 ^= h2 >>> 15;
      const base = Math.floor((h1 * doc.blocks) / 0x1_0000_0000) * 16;
      let w = h2;
      for (let i = 0, used = 0; i < doc.k; i++, used++) {
        if (used === 3) {
          w = mix((w + 0x9e3779b9) | 0);
          used = 0;
        }
        const bit = (w >>> (used * 9)) & 511;
        if ((words[base + (bit >>> 5)] & (1 << (bit & 31))) === 0) return false;
      }
      return true;
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, ...keys] = process.argv.slice(2);
  if (!file || keys.length === 0) {
    console.error('usage: segment-bloom-reader.mjs EXPORT.json KEY [KEY …]');
    process.exit(2);
  }
  const seg = openSegmentExport(JSON.parse(readFileSync(file, 'utf8')));
  for (const k of keys) console.log(`${k}\t${seg.mayContain(k) ? 'maybe' : 'no'}`);
}
