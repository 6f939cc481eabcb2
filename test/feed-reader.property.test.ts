// The feed readers (src/loader/feed-reader.ts): how the bytes are cut into
// chunks changes nothing but the batches — the same records and rejects, with
// the same line numbers and offsets, come out — and each line or record ends
// as the feed format says (blank lines skipped, CR stripped, a last line
// without a newline still read, over-long lines and invalid UTF-8 rejected, a
// break in the bytes keeping what came before it).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import {
  readFeed,
  FeedBreak,
  type FeedBatch,
  type FeedFormat,
  type FeedReadOptions,
  type Chunks,
} from '../src/loader/feed-reader.js';

const NOW = 1_800_000_000;
const MAX = 64;
const opts = (more: Partial<FeedReadOptions> = {}): FeedReadOptions => ({
  limits: 128,
  maxRecordBytes: MAX,
  now: () => NOW,
  ...more,
});

interface Out {
  records: Array<{ line: number; next: number; uid: string; ids: number[] }>;
  rejects: Array<{ line: number; next: number; reason: string; record?: string }>;
  end: { line: number; offset: number } | null;
  broken: string | undefined;
}

async function readAll(format: FeedFormat, chunks: Chunks, o = opts()): Promise<Out> {
  const out: Out = { records: [], rejects: [], end: null, broken: undefined };
  let last: FeedBatch | undefined;
  for await (const b of readFeed(format, chunks, o)) {
    if (last) expect(b.offset).toBeGreaterThanOrEqual(last.offset);
    for (const r of b.records) out.records.push({ line: r.line, next: r.next, uid: r.change.uid, ids: r.change.ids });
    for (const r of b.rejects) out.rejects.push({ ...r });
    last = b;
    if (b.broken !== undefined) out.broken = b.broken;
  }
  out.end = last ? { line: last.line, offset: last.offset } : null;
  return out;
}

/** The chunks as a source that reuses one buffer for every chunk (as the file source does). */
function* reusing(chunks: Buffer[]): Generator<Buffer> {
  const buf = Buffer.alloc(Math.max(0, ...chunks.map((c) => c.length)));
  for (const c of chunks) {
    buf.fill(0xff);
    c.copy(buf);
    yield buf.subarray(0, c.length);
  }
}

/** `bytes` cut at the given places (any number, any order, repeats allowed: empty chunks too). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  out.push(bytes.subarray(from));
  return out;
}

const UIDS = ['a', 'u-1', 'é', '日本語', '😀x', 'ψ'.repeat(10)];

/** One NDJSON line and what it must read as. */
type Line =
  | { kind: 'record'; uid: string; ids: number[]; crlf: boolean }
  | { kind: 'blank'; crlf: boolean }
  | { kind: 'malformed'; text: string }
  | { kind: 'badUtf8' }
  | { kind: 'tooLong'; n: number };

const lineArb: fc.Arbitrary<Line> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('record' as const),
      uid: fc.constantFrom(...UIDS),
      ids: fc.array(fc.integer({ min: 0, max: 99 }), { maxLength: 3 }),
      crlf: fc.boolean(),
    }),
  },
  fc.record({ kind: fc.constant('blank' as const), crlf: fc.boolean() }),
  fc.record({ kind: fc.constant('malformed' as const), text: fc.constantFrom('{', '{"op":', 'x y', '[1') }),
  fc.constant({ kind: 'badUtf8' as const }),
  fc.record({ kind: fc.constant('tooLong' as const), n: fc.integer({ min: MAX + 1, max: 3 * MAX }) }),
);

function lineBytes(l: Line): Buffer {
  switch (l.kind) {
    case 'record':
      return Buffer.from(JSON.stringify({ op: 'add', uid: l.uid, segments: l.ids }) + (l.crlf ? '\r' : ''));
    case 'blank':
      return Buffer.from(l.crlf ? '\r' : '');
    case 'malformed':
      return Buffer.from(l.text);
    case 'badUtf8':
      return Buffer.from([0x7b, 0xc3, 0x28, 0x7d]); // {Ã(} : a broken two-byte sequence
    case 'tooLong':
      return Buffer.alloc(l.n, 0x61);
  }
}

describe('NDJSON reader', () => {
  it('reads any cut of the same bytes alike, each line as the format says', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { maxLength: 30 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (lines, finalNewline, cuts) => {
          const parts = lines.map(lineBytes);
          const bytes = Buffer.concat(
            parts.map((p, i) => (i < parts.length - 1 || finalNewline ? [p, NL] : [p])).flat(),
          );
          // What every line must read as, from the lines alone.
          const want: Out = { records: [], rejects: [], end: null, broken: undefined };
          let next = 0;
          lines.forEach((l, i) => {
            const line = i + 1;
            next += parts[i]!.length + (i < parts.length - 1 || finalNewline ? 1 : 0);
            if (l.kind === 'record') want.records.push({ line, next, uid: l.uid, ids: l.ids });
            else if (l.kind === 'malformed')
              want.rejects.push({ line, next, reason: expect.stringMatching(/^malformed JSON/), record: l.text });
            else if (l.kind === 'badUtf8') want.rejects.push({ line, next, reason: 'invalid UTF-8' });
            else if (l.kind === 'tooLong') want.rejects.push({ line, next, reason: `line longer than ${MAX} bytes` });
          });
          const whole = await readAll('ndjson', [bytes]);
          expect(whole.records).toEqual(want.records);
          expect(whole.rejects).toEqual(want.rejects);
          // An empty tail after the last newline is no line.
          const count = finalNewline || parts[parts.length - 1]?.length ? lines.length : lines.length - 1;
          if (bytes.length > 0) expect(whole.end).toEqual({ line: count, offset: bytes.length });
          for (const chunks of [split(bytes, cuts), reusing(split(bytes, cuts))]) {
            const cut = await readAll('ndjson', chunks);
            expect(cut.records).toEqual(whole.records);
            expect(cut.rejects).toEqual(whole.rejects);
            if (bytes.length > 0) expect(cut.end).toEqual(whole.end);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads nothing from no bytes', async () => {
    for (const chunks of [[], [Buffer.alloc(0)], [Buffer.alloc(0), Buffer.alloc(0)]]) {
      const out = await readAll('ndjson', chunks);
      expect(out.records).toEqual([]);
      expect(out.rejects).toEqual([]);
      expect(out.end?.offset ?? 0).toBe(0);
    }
  });

  it('numbers lines and offsets on from where a resume starts', async () => {
    const bytes = Buffer.from('{"op":"add","uid":"a","segments":[1]}\n\n{"op":"add","uid":"b","segments":[2]}');
    const out = await readAll('ndjson', [bytes], opts({ from: { line: 10, offset: 1000 } }));
    expect(out.records.map((r) => [r.line, r.next])).toEqual([
      [11, 1038],
      [13, 1000 + bytes.length],
    ]);
    expect(out.end).toEqual({ line: 13, offset: 1000 + bytes.length });
  });

  it('keeps what came before a break in the bytes and rejects the rest with the reason', async () => {
    async function* chunks() {
      yield Buffer.from('{"op":"add","uid":"a","segments":[1]}\n{"op":"add","uid":"b"');
      throw new FeedBreak((line) => `broken after line ${line}`);
    }
    const batches: FeedBatch[] = [];
    for await (const b of readFeed('ndjson', chunks(), opts())) batches.push(b);
    const last = batches[batches.length - 1]!;
    expect(batches.flatMap((b) => b.records.map((r) => r.change.uid))).toEqual(['a']);
    expect(last.broken).toBe('broken after line 1');
    expect(last.rejects).toEqual([{ line: 2, next: 38, reason: 'broken after line 1' }]);
    expect(last).toMatchObject({ line: 1, offset: 38 });
  });

  it('a thrown error that is not a break is not a reject', async () => {
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.from('{"op":"add","uid":"a","segments":[1]}\n');
      throw new Error('EACCES');
    }
    await expect(readAll('ndjson', chunks())).rejects.toThrow('EACCES');
  });
});

describe('CSV reader', () => {
  it('skips a header first line and blank lines, whatever the cut', async () => {
    const bytes = Buffer.from('\uFEFFuid,segments\r\n"a,b",1|2:60\r\n\r\nc,3\nbad\nd,4');
    const whole = await readAll('csv', [bytes]);
    expect(whole.records.map((r) => [r.line, r.uid, r.ids])).toEqual([
      [2, 'a,b', [1, 2]],
      [4, 'c', [3]],
      [6, 'd', [4]],
    ]);
    expect(whole.rejects).toEqual([
      { line: 5, next: bytes.length - 3, reason: 'expected uid,segments', record: 'bad' },
    ]);
    for (let i = 0; i <= bytes.length; i++) {
      const cut = await readAll('csv', [bytes.subarray(0, i), bytes.subarray(i)]);
      expect(cut.records).toEqual(whole.records);
      expect(cut.rejects).toEqual(whole.rejects);
    }
  });
});

describe('msgpack reader', () => {
  const valueArb = fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .record({
          uid: fc.constantFrom(...UIDS),
          ids: fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { maxLength: 3 }),
        })
        .map(({ uid, ids }) => ({ op: 'add', uid, segments: ids })),
    },
    fc.jsonValue({ maxDepth: 2 }),
  );

  it('reads any cut of the same bytes alike; a record cut by the end is rejected as truncated', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(valueArb, { maxLength: 20 }),
        fc.nat(),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (values, truncateAt, cuts) => {
          const parts = values.map((v) => pack(v));
          let bytes = Buffer.concat(parts);
          const lastLength = parts[parts.length - 1]?.length ?? 0;
          const truncated = lastLength > 1 && truncateAt % 3 === 0;
          if (truncated) bytes = bytes.subarray(0, bytes.length - 1 - (truncateAt % (lastLength - 1)));
          const o = opts({ maxRecordBytes: undefined });
          const whole = await readAll('msgpack', [bytes], o);
          expect(await readAll('msgpack', split(bytes, cuts), o)).toEqual(whole);
          expect(await readAll('msgpack', reusing(split(bytes, cuts)), o)).toEqual(whole);
          // Every record (or reject) numbered in order, each ending where its bytes end.
          const ends: number[] = [];
          parts.reduce((at, p) => (ends.push(at + p.length), at + p.length), 0);
          const complete = truncated ? parts.length - 1 : parts.length;
          const seen = [...whole.records, ...whole.rejects.filter((r) => !r.reason.startsWith('truncated'))]
            .map((r) => [r.line, r.next])
            .sort((a, b) => a[0]! - b[0]!);
          expect(seen).toEqual(ends.slice(0, complete).map((e, i) => [i + 1, e]));
          if (truncated) {
            expect(whole.broken).toMatch(/^truncated msgpack record at byte \d+/);
            expect(whole.rejects[whole.rejects.length - 1]!.line).toBe(complete + 1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads 64-bit integers as numbers when they fit, and range-checks the rest', async () => {
    // 0xcf: uint64, as Go and Java encoders write every int64 field.
    const u64 = (n: bigint) => {
      const b = Buffer.alloc(9);
      b[0] = 0xcf;
      b.writeBigUInt64BE(n, 1);
      return b;
    };
    const rec = (id: Buffer) =>
      Buffer.concat([
        Buffer.from([0x83]),
        pack('op'),
        pack('add'),
        pack('uid'),
        pack('a'),
        pack('segments'),
        Buffer.from([0x91]),
        id,
      ]);
    const out = await readAll('msgpack', [Buffer.concat([rec(u64(7n)), rec(u64(2n ** 63n))])], opts());
    expect(out.records.map((r) => r.ids)).toEqual([[7]]);
    expect(out.rejects).toEqual([
      { line: 2, next: expect.any(Number), reason: expect.stringMatching(/^segments\[0\]/) },
    ]);
  });

  it('a record longer than the limit ends the feed; what came before is kept', async () => {
    const good = pack({ op: 'add', uid: 'a', segments: [1] });
    const long = pack({ op: 'add', uid: 'b', segments: Array.from({ length: 100 }, (_, i) => i) });
    const over = await readAll('msgpack', [good, long.subarray(0, MAX + 10), long.subarray(MAX + 10)]);
    expect(over.records.map((r) => r.uid)).toEqual(['a']);
    expect(over.broken).toMatch(new RegExp(`^msgpack record at byte ${good.length} is longer than ${MAX} bytes`));
  });

  it('one array of records is the records when the option allows it, one bad record otherwise', async () => {
    const arr = pack([
      { op: 'add', uid: 'a', segments: [1] },
      { op: 'add', uid: 'b', segments: [2] },
    ]);
    const push = await readAll('msgpack', split(arr, [3, 9]), opts({ arrayOfRecords: true }));
    expect(push.records.map((r) => [r.line, r.uid])).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);
    const file = await readAll('msgpack', [arr], opts());
    expect(file.records).toEqual([]);
    expect(file.rejects.map((r) => r.line)).toEqual([1]);
    // An array followed by more is not the one-array form: it is a record like any other.
    const more = await readAll(
      'msgpack',
      [arr, pack({ op: 'add', uid: 'c', segments: [3] })],
      opts({ arrayOfRecords: true }),
    );
    expect(more.records.map((r) => [r.line, r.uid])).toEqual([[2, 'c']]);
    expect(more.rejects.map((r) => r.line)).toEqual([1]);
  });
});

describe('long feeds', () => {
  it('come out in batches of a few hundred records, the same whatever the cut', async () => {
    const recs = Array.from({ length: 2000 }, (_, i) => ({ op: 'add', uid: `u${i}`, segments: [i] }));
    const feeds: Array<[FeedFormat, Buffer]> = [
      ['ndjson', Buffer.from(recs.map((r) => JSON.stringify(r)).join('\n'))],
      ['msgpack', Buffer.concat(recs.map((r) => pack(r)))],
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...feeds),
        fc.array(fc.nat(), { maxLength: 8 }),
        async ([format, bytes], cuts) => {
          const sizes: number[] = [];
          const seen: Array<[number, string]> = [];
          let offset = 0;
          for await (const b of readFeed(format, reusing(split(bytes, cuts)), opts({ maxRecordBytes: undefined }))) {
            sizes.push(b.records.length);
            for (const r of b.records) seen.push([r.line, r.change.uid]);
            if (b.records.length) expect(b.offset).toBe(b.records[b.records.length - 1]!.next);
            expect(b.offset).toBeGreaterThanOrEqual(offset);
            offset = b.offset;
          }
          expect(Math.max(...sizes)).toBeLessThanOrEqual(256);
          expect(seen).toEqual(recs.map((r, i) => [i + 1, r.uid]));
          expect(offset).toBe(bytes.length);
        },
      ),
      { numRuns: 40 },
    );
  });
});

const NL = Buffer.from('\n');
