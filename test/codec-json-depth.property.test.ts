// The nesting bound agrees with the parsed value's real depth on any JSON,
// whatever brackets and escapes its strings hold.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { nestsDeeper, parseJson, JsonTooDeep } from '../src/codec/json.js';

const depthOf = (v: unknown): number =>
  v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v as object).map(depthOf)) : 0;

describe('JSON nesting bound', () => {
  it('says "deeper" exactly when the value nests deeper than the limit (text and bytes)', () => {
    const tricky = fc.constantFrom('[', ']', '{', '}', '"', '\\', '\\"', '\\\\', '["', '"]');
    const str = fc.array(fc.oneof(tricky, fc.string({ maxLength: 4 })), { maxLength: 6 }).map((a) => a.join(''));
    fc.assert(
      fc.property(
        fc.jsonValue({ maxDepth: 8, stringUnit: 'grapheme' }),
        fc.array(str, { maxLength: 3 }),
        fc.integer({ min: 0, max: 10 }),
        (v, strings, limit) => {
          const doc = [v, ...strings];
          const text = JSON.stringify(doc);
          const want = depthOf(doc) > limit;
          expect(nestsDeeper(text, limit)).toBe(want);
          expect(nestsDeeper(Buffer.from(text), limit)).toBe(want);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('refuses a 100,000-deep document before parsing it, and parses a shallow one', () => {
    expect(() => parseJson('['.repeat(100_000) + ']'.repeat(100_000))).toThrow(JsonTooDeep);
    expect(() => parseJson(Buffer.from('{"a":'.repeat(65) + '1' + '}'.repeat(65)))).toThrow(JsonTooDeep);
    expect(parseJson(Buffer.from('{"a":[1,{"b":"[[[["}]}'))).toEqual({ a: [1, { b: '[[[[' }] });
  });
});
