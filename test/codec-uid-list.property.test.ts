// The byte reading of a batch body agrees with JSON.parse wherever it answers:
// the uids it finds are the strings JSON.parse finds, and any body it does not
// take (other members, escapes, unicode, non-strings, malformed JSON, limits)
// is left to JSON.parse. Generated bodies mix the simple shape, its near
// misses and hostile bytes.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { UidListScanner } from '../src/codec/uid-list.js';

const MAX_ITEMS = 50;
const MAX_UID = 40;

/** What the batch route reads from a body by JSON.parse, when it is the simple shape; null otherwise. */
function simpleUids(text: string): string[] | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return null;
  const keys = Object.keys(doc);
  if (keys.length !== 1 || keys[0] !== 'uids') return null;
  const uids = (doc as { uids: unknown }).uids;
  if (!Array.isArray(uids) || uids.length > MAX_ITEMS) return null;
  for (const u of uids) if (typeof u !== 'string' || u === '' || u.length > MAX_UID) return null;
  return uids as string[];
}

const ws = fc.oneof(
  { weight: 40, arbitrary: fc.constantFrom('', ' ', '\n', '\t', '\r\n  ') },
  { weight: 1, arbitrary: fc.constantFrom('\u00a0', '\f') }, // not JSON whitespace
);
const piece = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      minLength: 1,
      maxLength: 12,
    }),
  },
  { weight: 2, arbitrary: fc.constantFrom('', 'a"b', 'a\\b', '\u007f', 'é', '🙂', '\u0000', 'x'.repeat(MAX_UID + 1)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);
const item = fc.oneof(
  { weight: 30, arbitrary: piece.map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: fc.constantFrom('1', 'null', '{}', '[]', '"\\u0041"', '"a\\/b"', '"', '"abc', ',') },
);
const body = fc
  .tuple(
    fc.array(fc.tuple(ws, item, ws), { maxLength: 12 }),
    ws,
    ws,
    ws,
    ws,
    ws,
    fc.constantFrom('', '', '', '', '"uids"', ',"x":1', ',"uids":[]'),
  )
  .map(([items, a, b, c, d, e, extra]) => {
    const list = items.map(([l, it, r]) => `${l}${it}${r}`).join(',');
    const key = extra === '"uids"' ? '"uids":[],"uids"' : '"uids"';
    return `${a}{${b}${key}${c}:${d}[${list}]${extra.startsWith(',') ? extra : ''}}${e}`;
  });
const mangled = fc.tuple(body, fc.nat(), fc.constantFrom('', ']', '}', '"', ',', ' ', 'x', '\\')).map(([b, at, c]) => {
  const i = at % (b.length + 1);
  return b.slice(0, i) + c + b.slice(i + 1);
});

describe('batch body byte reading', () => {
  it('finds exactly the uids JSON.parse finds, or leaves the body to JSON.parse', () => {
    const scanner = new UidListScanner();
    let taken = 0;
    fc.assert(
      fc.property(fc.oneof(body, mangled), (text) => {
        const bytes = Buffer.from(text, 'utf8');
        const n = scanner.scan(bytes, MAX_ITEMS, MAX_UID);
        const want = simpleUids(text);
        if (n < 0) {
          // Declining is always safe; it must not decline the simple shape written plainly: no escape,
          // nothing but printable ASCII and JSON whitespace, one "uids" member.
          if (want !== null) {
            const plainText = !text.includes('\\') && /^[\x20-\x7e\t\n\r]*$/.test(text);
            expect(plainText && text.split('"uids"').length === 2).toBe(false);
          }
          return;
        }
        expect(want).not.toBeNull();
        if (n > 0) taken++;
        const got = Array.from({ length: n }, (_, i) => bytes.toString('latin1', scanner.starts[i], scanner.ends[i]));
        expect(got).toEqual(want);
        // Each uid's bytes are its own JSON (the answer copies them between quotes).
        for (const u of got) expect(JSON.stringify(u)).toBe(`"${u}"`);
      }),
      { numRuns: 5_000 },
    );
    // The generators reach the byte reading's answers, not only its refusals.
    expect(taken).toBeGreaterThan(250);
  });

  it('takes the bodies JSON.stringify writes of plain uids, past its first offsets buffer', () => {
    const scanner = new UidListScanner();
    const uids = Array.from({ length: 3000 }, (_, i) => `user-${i}-${'k'.repeat(i % 30)}`);
    const bytes = Buffer.from(JSON.stringify({ uids }));
    expect(scanner.scan(bytes, 5000, 128)).toBe(3000);
    expect(bytes.toString('latin1', scanner.starts[2999], scanner.ends[2999])).toBe(uids[2999]);
    expect(scanner.scan(bytes, 2999, 128)).toBe(-1); // over the limit: JSON.parse's reading names the error
    expect(scanner.scan(Buffer.from('{"uids":[]}'), 10, 128)).toBe(0);
  });
});
