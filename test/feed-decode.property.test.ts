// The pieces that stand between a hostile record and a reject reason: the
// bounded preview never throws and stays short whatever the value, the
// iterative msgpack skipper finds exactly the end msgpackr finds, and a
// stream decodes record by record with a bad one costing only itself.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { preview } from '../src/loader/preview.js';
import { recordEnd, decodeRecords, INCOMPLETE, MALFORMED } from '../src/loader/msgpack-decode.js';
import { parseLineBytes } from '../src/loader/records.js';

const nested = (depth: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
};

describe('preview', () => {
  it('never throws and stays within its bound, for any JSON value, BigInt or deep nesting', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.bigInt(), fc.anything()), (v) => {
        const p = preview(v, 40);
        expect(p.length).toBeLessThanOrEqual(41);
      }),
    );
    expect(preview(nested(1_000_000)).startsWith('[[[[')).toBe(true);
    expect(preview(Array.from({ length: 1_000_000 }, (_, i) => i))).toBe('[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,1…');
    expect(preview(2n ** 64n)).toBe('18446744073709551616');
    expect(preview(undefined)).toBe('nothing');
    expect(preview({ a: 'x' })).toBe('{"a":"x"}');
  });

  it('a feed line nested a million deep is a reject with a reason', () => {
    const line = Buffer.from(`{"op":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)},"uid":"x"}`);
    expect(parseLineBytes(line, 1_800_000_000, 128)).toMatch(/^"op" must be one of .*; got \[\[\[/);
  });
});

describe('msgpack record boundaries', () => {
  it('recordEnd agrees with the encoded length of any value, and says INCOMPLETE for any cut', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.jsonValue(), fc.uint8Array(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n })),
        fc.nat(),
        (v, cutAt) => {
          const bytes = pack(v);
          const buf = Buffer.concat([bytes, Buffer.from([0xc0])]);
          expect(recordEnd(buf, 0)).toBe(bytes.length);
          const cut = cutAt % bytes.length;
          expect(recordEnd(bytes.subarray(0, cut), 0)).toBe(INCOMPLETE);
        },
      ),
    );
    expect(recordEnd(Buffer.from([0xc1]), 0)).toBe(MALFORMED);
  });

  it('decodes a stream record by record: an undecodable record is one reject, the rest go on', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 20 }), fc.nat(), (values, at) => {
        const deep = Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0x01])]);
        const parts = values.map((v) => pack(v));
        const where = values.length === 0 ? 0 : at % (values.length + 1);
        parts.splice(where, 0, deep);
        const got: unknown[] = [];
        const bad: number[] = [];
        const end = decodeRecords(Buffer.concat(parts), {
          record: (v) => got.push(v),
          undecodable: () => bad.push(got.length),
        });
        expect(end).toEqual({ kind: 'done' });
        expect(bad).toEqual([where]);
        expect(got).toEqual(parts.filter((p) => p !== deep).map((p) => unpack(p) as unknown));
      }),
      { numRuns: 30 },
    );
  });
});
