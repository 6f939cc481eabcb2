// Feed bytes → validated records, one reader per format (NDJSON, CSV,
// msgpack), shared by every source: inbox and `segd import` files, snapshot
// files, HTTP push bodies and NATS messages. A reader takes the bytes as
// chunks of any size (a file read a megabyte at a time, a body in one piece)
// and yields batches of a few hundred records (BATCH_RECORDS): the records,
// the rejects, and the position just past the last line or record the batch
// covers, which is where a resume starts (a checkpoint). How the bytes are cut
// into chunks changes nothing but the batches: the same records, rejects, line
// numbers and offsets come out.
//
// A bad record is a reject with its line (record number for msgpack) and the
// reason, and the feed goes on; whatever a record holds, parsing it never
// throws out of the reader. Only the end of the readable bytes ends a feed
// early: a chunk source that throws FeedBreak (a corrupt gzip), bytes that are
// not msgpack, or a msgpack record longer than the limit (msgpack has no
// delimiter to resynchronise on) — the records before the break are kept and
// the break is the batch's last reject, also given as `broken`.
import { decodeRecords, type DecodeEnd } from './msgpack-decode.js';
import {
  isCsvHeader,
  parseCsvLine,
  parseLineBytes,
  rejectReason,
  toChange,
  type Change,
  type RecordLimits,
} from './records.js';

export type FeedFormat = 'ndjson' | 'csv' | 'msgpack';

/** A feed file's format, by its name (`.csv`, `.msgpack`, either optionally `.gz`; anything else is NDJSON). */
export function feedFormatOf(name: string): FeedFormat {
  if (/\.msgpack(\.gz)?$/.test(name)) return 'msgpack';
  if (/\.csv(\.gz)?$/.test(name)) return 'csv';
  return 'ndjson';
}

interface FeedRecord {
  /** 1-based line (NDJSON, CSV) or record number (msgpack). */
  line: number;
  /** Byte offset just past the record. */
  next: number;
  change: Change;
}

export interface FeedReject {
  line: number;
  next: number;
  reason: string;
  /** The start of the line, for the rejects file (NDJSON and CSV lines that are valid UTF-8). */
  record?: string;
}

export interface FeedBatch {
  records: FeedRecord[];
  rejects: FeedReject[];
  /** The last line (record) number this batch covers, blank lines and CSV headers included. */
  line: number;
  /** The byte offset just past that line: where a resume starts. */
  offset: number;
  /** The rest of the feed cannot be read (the reason; its reject is the last of `rejects`). */
  broken?: string;
}

export interface FeedReadOptions {
  limits: RecordLimits;
  /** Longest line or msgpack record in bytes (SEGD_MAX_LINE_BYTES); default: no bound. */
  maxRecordBytes?: number;
  /** Unix seconds records without a ts are stamped with; asked again after each batch is taken. */
  now: () => number;
  /** Where the bytes start in the feed: after line (record) `line`, at byte `offset` (a resume). */
  from?: { line: number; offset: number };
  /** msgpack: a stream that is one array holds the records (HTTP push and NATS accept this form). */
  arrayOfRecords?: boolean;
}

/**
 * The chunks a reader takes: a file's, or a body already in memory (`[body]`).
 * A source may reuse a chunk's buffer for the next chunk: readers copy what
 * they keep.
 */
export type Chunks = AsyncIterable<Buffer> | Iterable<Buffer>;

/**
 * Thrown by a chunk source whose bytes break off (a corrupt or truncated gzip,
 * a decompression bomb); `reason` words it after the last whole line read.
 */
export class FeedBreak extends Error {
  constructor(readonly reason: (afterLine: number) => string) {
    super(reason(0));
  }
}

/**
 * What a reader yields when it has used every chunk handed to it: its
 * driver hands it the next (or the end). The readers themselves are
 * synchronous, so a body already in memory is read without a promise per
 * batch (readAll), and a file's chunks are awaited by the driver (readFeed).
 */
const NEED = Symbol('need');
type Need = typeof NEED;

/** The chunks handed to a reader: the next one, NEED (none in hand yet), or undefined (the end). */
interface ChunkInput {
  next(): Buffer | Need | undefined;
}

type Reader = Generator<FeedBatch | Need, void, void>;

function reader(format: FeedFormat, input: ChunkInput, opts: FeedReadOptions): Reader {
  if (format === 'msgpack') return readMsgpack(input, opts);
  return format === 'csv' ? readCsv(input, opts) : readNdjson(input, opts);
}

/** The records of a feed, batch by batch: the reader for `format`. */
export async function* readFeed(format: FeedFormat, chunks: Chunks, opts: FeedReadOptions): AsyncGenerator<FeedBatch> {
  const source =
    Symbol.asyncIterator in chunks ? chunks[Symbol.asyncIterator]() : (chunks as Iterable<Buffer>)[Symbol.iterator]();
  let held: Buffer | Need | undefined = NEED;
  const input: ChunkInput = {
    next() {
      const c = held;
      if (c !== undefined) held = NEED;
      return c;
    },
  };
  const read = reader(format, input, opts);
  let sourceDone = false;
  try {
    let step = read.next();
    while (step.done !== true) {
      if (step.value !== NEED) {
        yield step.value;
        step = read.next();
        continue;
      }
      let r: IteratorResult<Buffer>;
      try {
        r = await source.next();
      } catch (err) {
        // The source's failure reaches the reader where it asked for the chunk (a FeedBreak ends the feed there).
        sourceDone = true;
        step = read.throw(err);
        continue;
      }
      sourceDone = r.done === true;
      held = sourceDone ? undefined : r.value;
      step = read.next();
    }
  } finally {
    // A consumer that stops early closes the source (a file's handle), as a for-await over it would.
    if (!sourceDone) await source.return?.();
  }
}

/** A body already in memory, read whole: its valid records and its rejects. Synchronous. */
export function readAll(
  format: FeedFormat,
  body: Buffer,
  opts: FeedReadOptions,
): { changes: Change[]; rejects: FeedReject[] } {
  const out: { changes: Change[]; rejects: FeedReject[] } = { changes: [], rejects: [] };
  let chunk: Buffer | undefined = body;
  const input: ChunkInput = {
    next() {
      const c = chunk;
      chunk = undefined;
      return c;
    },
  };
  for (const b of reader(format, input, opts)) {
    if (b === NEED) continue; // never: the one chunk, then the end
    for (const r of b.records) out.changes.push(r.change);
    for (const r of b.rejects) out.rejects.push(r);
  }
  return out;
}

/** The next chunk of `input`, asking the driver (NEED) until it has one; undefined at the end. */
function* nextChunk(input: ChunkInput): Generator<Need, Buffer | undefined, void> {
  let c = input.next();
  while (c === NEED) {
    yield NEED;
    c = input.next();
  }
  return c;
}

/** One JSON record per line; blank lines are skipped. */
function readNdjson(input: ChunkInput, opts: FeedReadOptions): Reader {
  return readLines(input, opts, (bytes, _line, now) => parseLineBytes(bytes, now, opts.limits));
}

/** `uid,seg|seg:ttl|…` per line (records.ts parseCsvLine); blank lines and a header first line are skipped. */
function readCsv(input: ChunkInput, opts: FeedReadOptions): Reader {
  return readLines(input, opts, (bytes, line, now) =>
    line === 1 && isCsvHeader(bytes) ? null : parseCsvLine(bytes, now, opts.limits),
  );
}

/** A line's record, the reason it is rejected, or null for a line that holds no record. */
type LineParser = (bytes: Buffer, line: number, now: number) => Change | string | null;

const MAX_REJECT_SNIPPET = 200;
/**
 * Records (and rejects) per batch at most. A batch's records stay alive until
 * it is consumed: a whole megabyte chunk of them (≈ 8,000) outlives
 * young-generation collections and is promoted, which costs full collections;
 * a yield per record costs an await per record instead. Reading 1M NDJSON
 * records: ≈ 1.6 s CPU at 256 a batch, as the callback reader took; ≈ 2.3 s
 * a record at a time; ≈ 2.6–3.0 s a chunk at a time (11 full collections).
 */
const BATCH_RECORDS = 256;

/**
 * Lines of the chunks, each a record or a reject. A line longer than
 * `maxRecordBytes` is rejected and skipped to its newline without being
 * buffered. A trailing CR is stripped; a last line with no newline is still a
 * line.
 */
function* readLines(input: ChunkInput, opts: FeedReadOptions, parse: LineParser): Reader {
  const max = opts.maxRecordBytes ?? Infinity;
  let line = opts.from?.line ?? 0;
  let offset = opts.from?.offset ?? 0; // just past the last whole line
  let pos = offset; // feed offset of the chunk in hand
  // An unfinished line: the pieces of it so far, unless it is already too long (skipping).
  let carry: Buffer[] = [];
  let carryBytes = 0;
  let skipping = false;
  let batch = newBatch(line, offset);
  let now = 0;

  const tooLong = () => batch.rejects.push({ line, next: offset, reason: `line longer than ${max} bytes` });
  const take = (bytes: Buffer) => {
    if (bytes.length > 0 && bytes[bytes.length - 1] === 13) bytes = bytes.subarray(0, bytes.length - 1);
    if (bytes.length === 0) return;
    let parsed: Change | string | null;
    try {
      parsed = parse(bytes, line, now);
    } catch (err) {
      parsed = rejectReason(err);
    }
    if (parsed === null) return;
    if (typeof parsed !== 'string') {
      batch.records.push({ line, next: offset, change: parsed });
      return;
    }
    const r: FeedReject = { line, next: offset, reason: parsed };
    if (parsed !== 'invalid UTF-8') r.record = bytes.toString('utf8', 0, Math.min(bytes.length, MAX_REJECT_SNIPPET));
    batch.rejects.push(r);
  };

  try {
    for (;;) {
      const chunk = yield* nextChunk(input);
      if (chunk === undefined) break;
      now = opts.now();
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        line++;
        offset = pos + nl + 1;
        if (skipping) {
          skipping = false;
          tooLong();
        } else if (carryBytes === 0) {
          if (nl - start > max) tooLong();
          else take(chunk.subarray(start, nl));
        } else {
          const whole = carryBytes + nl - start;
          if (whole > max) tooLong();
          else {
            carry.push(chunk.subarray(start, nl));
            take(Buffer.concat(carry, whole));
          }
          carry = [];
          carryBytes = 0;
        }
        start = nl + 1;
        if (batch.records.length + batch.rejects.length >= BATCH_RECORDS) {
          batch.line = line;
          batch.offset = offset;
          yield batch;
          batch = newBatch(line, offset);
          now = opts.now();
        }
      }
      if (start < chunk.length && !skipping) {
        carry.push(Buffer.from(chunk.subarray(start))); // a copy: the source may reuse the chunk
        carryBytes += chunk.length - start;
        if (carryBytes > max) {
          skipping = true;
          carry = [];
          carryBytes = 0;
        }
      }
      pos += chunk.length;
      batch.line = line;
      batch.offset = offset;
      yield batch;
      batch = newBatch(line, offset);
    }
  } catch (err) {
    if (!(err instanceof FeedBreak)) throw err;
    yield breakOff(batch, line, offset, err.reason(line));
    return;
  }
  // The end: what is left is a last line without a newline.
  if (skipping || carryBytes > 0) {
    line++;
    offset = pos;
    now = opts.now();
    if (skipping) tooLong();
    else take(Buffer.concat(carry, carryBytes));
    batch.line = line;
    batch.offset = offset;
    yield batch;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * A stream of msgpack record maps (the NDJSON record as a map). A record cut
 * by the end of a chunk is completed from the next; one cut by the end of the
 * feed is rejected as truncated. A record that cannot be decoded but whose
 * extent is known is one reject (msgpack-decode.ts).
 */
function* readMsgpack(input: ChunkInput, opts: FeedReadOptions): Reader {
  const max = opts.maxRecordBytes ?? Infinity;
  const start = opts.from?.offset ?? 0;
  const first = opts.from?.line ?? 0;
  let n = first;
  let base = start; // feed offset of buf[0]
  let buf: Buffer = EMPTY;
  let batch = newBatch(n, base);
  let now = 0;
  // arrayOfRecords: a first value that is an array, held until what follows it shows whether it is the whole feed.
  let held: { value: unknown[]; next: number } | null = null;

  const take = (value: unknown, next: number) => {
    n++;
    try {
      batch.records.push({ line: n, next, change: toChange(value, now, opts.limits) });
    } catch (err) {
      batch.rejects.push({ line: n, next, reason: rejectReason(err) });
    }
  };
  const release = () => {
    if (held === null) return;
    const h = held;
    held = null;
    take(h.value, h.next);
  };
  const position = () => {
    batch.line = n;
    batch.offset = held === null ? base : start;
    return batch;
  };

  try {
    for (;;) {
      const chunk = yield* nextChunk(input);
      if (chunk === undefined) break;
      if (chunk.length === 0) continue;
      now = opts.now();
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let end: DecodeEnd;
      for (;;) {
        const at0 = base; // feed offset of buf[0]
        end = decodeRecords(
          buf,
          {
            record(value, e) {
              if (opts.arrayOfRecords && n === first && held === null && Array.isArray(value)) {
                held = { value, next: at0 + e };
                return;
              }
              release();
              take(value, at0 + e);
            },
            undecodable(reason, e) {
              release();
              batch.rejects.push({ line: ++n, next: at0 + e, reason });
            },
          },
          BATCH_RECORDS,
        );
        if (end.kind !== 'paused') break;
        buf = buf.subarray(end.at);
        base += end.at;
        yield position();
        batch = newBatch(n, base);
        now = opts.now();
      }
      const consumed = end.kind === 'done' ? buf.length : end.at;
      if (end.kind === 'malformed' || (end.kind === 'incomplete' && buf.length - consumed > max)) {
        release();
        base += consumed;
        const why =
          end.kind === 'malformed'
            ? `malformed msgpack at byte ${base}: ${end.reason}`
            : `msgpack record at byte ${base} is longer than ${max} bytes`;
        yield breakOff(batch, n, base, `${why}; the rest of the feed is not applied`);
        return;
      }
      // A copy of the unfinished record: the source may reuse the chunk.
      buf = consumed === buf.length ? EMPTY : Buffer.from(buf.subarray(consumed));
      base += consumed;
      yield position();
      batch = newBatch(n, base);
    }
  } catch (err) {
    if (!(err instanceof FeedBreak)) throw err;
    release();
    yield breakOff(batch, n, base, err.reason(n));
    return;
  }
  if (buf.length > 0) {
    release();
    yield breakOff(batch, n, base, `truncated msgpack record at byte ${base} (end of the feed)`);
    return;
  }
  if (held !== null) {
    // The one array is the whole feed: its elements are the records.
    const h: { value: unknown[]; next: number } = held;
    held = null;
    now = opts.now();
    for (const v of h.value) take(v, h.next);
    yield position();
  }
}

function newBatch(line: number, offset: number): FeedBatch {
  return { records: [], rejects: [], line, offset };
}

/** The batch that ends a feed early: position at the last whole record, the break as its last reject. */
function breakOff(batch: FeedBatch, line: number, offset: number, reason: string): FeedBatch {
  batch.line = line;
  batch.offset = offset;
  batch.rejects.push({ line: line + 1, next: offset, reason });
  batch.broken = reason;
  return batch;
}
