// The byte encoders (AnswerBuffer) against the string encoders they replace:
// the same bytes on the wire (the strings as uWS sent them, UTF-8) and the
// same JSON, for any uid (escapes, unicode, lone surrogates) and any ids;
// MessagePack answers decode to what msgpackr's pack of the object gives.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import {
  AnswerBuffer,
  jsonAnswer,
  msgpackAnswer,
  kvAnswer,
  gamAnswer,
  keyPrefix,
  JSON_ITEMS,
  MSGPACK_ITEMS,
  type ItemEncoder,
} from '../src/http/format.js';

// The string encoders as they were (the reference).
function idList(ids: Uint32Array, n: number): string {
  if (n === 0) return '';
  let s = '' + ids[0];
  for (let i = 1; i < n; i++) s += ',' + ids[i];
  return s;
}
const jsonString = (uid: string | null, ids: Uint32Array, n: number) =>
  '{"uid":' + JSON.stringify(uid) + ',"segments":[' + idList(ids, n) + ']}';
const kvString = (key: string, ids: Uint32Array, n: number) => key + '=' + idList(ids, n);
function gamString(key: string, ids: Uint32Array, n: number, maxBytes: number): string {
  let s = key + '=';
  for (let i = 0; i < n; i++) {
    const v = (i === 0 ? '' : ',') + ids[i];
    if (s.length + v.length > maxBytes) break;
    s += v;
  }
  return s;
}

// Any UTF-16 unit (lone surrogates too), printable ASCII, and the characters JSON escapes.
const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const escapes = fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udc00', 'é', '😀');
const uidArb = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: anyUnit, maxLength: 200 }),
  fc.string({ unit: fc.oneof(fc.string({ minLength: 1, maxLength: 1 }), escapes), maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 50 }),
  fc.uuid(),
  fc.constant(null),
);
const idsArb = fc
  .array(
    fc.oneof(
      fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      fc.constantFrom(0, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1),
    ),
    {
      maxLength: 600,
    },
  )
  .map((a) => Uint32Array.from(a));
const keyArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/);

// One buffer for every run: answers of every length follow each other, as on a worker.
const out = new AnswerBuffer();
const bytesOf = (b: Buffer) => Buffer.from(b); // a copy: the view is reused by the next answer

describe('AnswerBuffer encoders', () => {
  it('jsonAnswer writes the bytes and the JSON of the string encoder', () => {
    fc.assert(
      fc.property(uidArb, idsArb, fc.nat(), (uid, ids, cut) => {
        const n = ids.length === 0 ? 0 : cut % (ids.length + 1);
        const got = bytesOf(jsonAnswer(out, uid, ids, n));
        const want = jsonString(uid, ids, n);
        expect(got.equals(Buffer.from(want, 'utf8'))).toBe(true);
        expect(JSON.parse(got.toString('utf8'))).toEqual(JSON.parse(want));
      }),
      { numRuns: 2000 },
    );
  });

  const errorArb = fc.option(fc.tuple(fc.constantFrom('BAD_UID', 'BAD_ID_KEY'), fc.string({ maxLength: 80 })));
  const batchOf = (enc: ItemEncoder, items: Array<[string | null, Uint32Array, [string, string] | null]>) => {
    out.reset();
    enc.open(out, items.length);
    items.forEach(([uid, ids, err], i) =>
      enc.item(out, i === 0, uid, ids, ids.length, err?.[0] ?? null, err?.[1] ?? ''),
    );
    enc.close(out);
    return bytesOf(out.view());
  };
  const itemObject = ([uid, ids, err]: [string | null, Uint32Array, [string, string] | null]) => {
    const o = { uid, segments: Array.from(ids) };
    return err === null ? o : { ...o, error: { code: err[0], message: err[1] } };
  };

  it('a JSON batch is the string-built batch', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(uidArb, idsArb, errorArb), { maxLength: 30 }), (items) => {
        const want = JSON.stringify({ results: items.map(itemObject) });
        expect(batchOf(JSON_ITEMS, items).equals(Buffer.from(want, 'utf8'))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a batch of kept items (each the bytes of a first item, as the hot answers keep them) is the batch of items', () => {
    const keptBatchOf = (enc: ItemEncoder, items: Array<[string | null, Uint32Array, [string, string] | null]>) => {
      const kept = items.map(([uid, ids]) => {
        out.reset();
        enc.item(out, true, uid, ids, ids.length, null, '');
        return bytesOf(out.view());
      });
      out.reset();
      enc.open(out, items.length);
      kept.forEach((bytes, i) => {
        // The separator is what keptItem writes before the bytes, and what separatorLength says.
        const at = out.pos;
        enc.keptItem(out, i === 0, bytes);
        expect(out.pos - at - bytes.length).toBe(enc.separatorLength(i === 0));
      });
      enc.close(out);
      return bytesOf(out.view());
    };
    fc.assert(
      fc.property(fc.array(fc.tuple(uidArb, idsArb, fc.constant(null)), { maxLength: 30 }), (items) => {
        for (const enc of [JSON_ITEMS, MSGPACK_ITEMS])
          expect(keptBatchOf(enc, items).equals(batchOf(enc, items))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  // MessagePack strings are UTF-8: a lone surrogate goes as U+FFFD, as Buffer writes it.
  const wellFormed = (uid: string | null) => (uid === null ? null : Buffer.from(uid, 'utf8').toString('utf8'));

  it('a MessagePack batch decodes as msgpackr’s pack of the results, at any count (fix, 16- and 32-bit headers)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(uidArb, idsArb, errorArb), { maxLength: 30 }), (items) => {
        const want = { results: items.map(([u, ids, e]) => itemObject([wellFormed(u), ids, e])) };
        expect(unpack(batchOf(MSGPACK_ITEMS, items))).toEqual(unpack(pack(want)));
      }),
      { numRuns: 300 },
    );
    const many = Array.from({ length: 70_000 }, (_, i): [string | null, Uint32Array, null] => [
      i % 3 === 0 ? null : 'u'.repeat(i % 300),
      Uint32Array.of(i, 2 ** 32 - 1 - i),
      null,
    ]);
    expect(unpack(batchOf(MSGPACK_ITEMS, many))).toEqual({ results: many.map(itemObject) });
  });

  it('msgpackAnswer decodes as msgpackr’s pack of {uid, segments}', () => {
    fc.assert(
      fc.property(uidArb, idsArb, (uid, ids) => {
        const got = unpack(bytesOf(msgpackAnswer(out, uid, ids, ids.length)));
        expect(got).toEqual(unpack(pack({ uid: wellFormed(uid), segments: Array.from(ids) })));
      }),
      { numRuns: 1000 },
    );
    const long = 'é'.repeat(40_000);
    expect(unpack(bytesOf(msgpackAnswer(out, long, Uint32Array.of(7), 1)))).toEqual({ uid: long, segments: [7] });
  });

  it('kvAnswer and gamAnswer write the string encoders’ bytes, at any cap', () => {
    fc.assert(
      fc.property(keyArb, idsArb, fc.integer({ min: 0, max: 8000 }), (key, ids, maxBytes) => {
        const prefix = keyPrefix(key);
        expect(bytesOf(kvAnswer(out, prefix, ids, ids.length)).toString('latin1')).toBe(kvString(key, ids, ids.length));
        expect(bytesOf(gamAnswer(out, prefix, ids, ids.length, maxBytes)).toString('latin1')).toBe(
          gamString(key, ids, ids.length, maxBytes),
        );
      }),
      { numRuns: 1000 },
    );
  });

  it('grows for a long answer and stays right for the short ones after it', () => {
    const many = Uint32Array.from({ length: 20_000 }, (_, i) => 4_000_000_000 + i);
    const long = '"\\'.repeat(5000) + 'é'.repeat(5000);
    const small = Uint32Array.of(1, 22, 333);
    expect(jsonAnswer(out, 'a', small, 3).toString()).toBe('{"uid":"a","segments":[1,22,333]}');
    expect(JSON.parse(jsonAnswer(out, long, many, many.length).toString())).toEqual({
      uid: long,
      segments: Array.from(many),
    });
    // The views of the first buffer are not handed out again.
    expect(jsonAnswer(out, 'b', small, 3).toString()).toBe('{"uid":"b","segments":[1,22,333]}');
    expect(jsonAnswer(out, null, small, 0).toString()).toBe('{"uid":null,"segments":[]}');
  });
});
