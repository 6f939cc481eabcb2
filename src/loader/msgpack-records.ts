// Reads a file as a stream of msgpack records from a byte offset, reporting
// each record's number and the byte offset just past it (for checkpoints). A
// record cut by the end of a read chunk is completed from the next chunk; one
// cut by the end of the file is reported as truncated. A record that cannot be
// decoded but whose extent is known is one reject (msgpack-decode.ts). msgpack
// has no delimiters to resynchronise on, so after bytes that are not msgpack,
// or a record longer than `maxRecordBytes`, the rest of the file is reported
// as unreadable (the records before it are kept).
import { openBytes } from './lines.js';
import { decodeRecords } from './msgpack-decode.js';

export interface RecordSink {
  record(value: unknown, recordNo: number, nextOffset: number): void;
  /** A record that cannot be decoded; the file goes on after it. */
  undecodable(recordNo: number, nextOffset: number, reason: string): void;
  /** The rest of the file cannot be read: `recordNo` is the first record lost. */
  broken(recordNo: number, reason: string): void;
  chunkDone?(offset: number): Promise<void> | void;
}

const CHUNK = 1 << 20;

export async function readMsgpackRecords(
  path: string,
  startOffset: number,
  startRecord: number,
  maxRecordBytes: number,
  sink: RecordSink,
  maxGzipRatio?: number,
): Promise<{ bytes: number; records: number }> {
  const src = await openBytes(path, startOffset, maxGzipRatio);
  let buf = Buffer.alloc(0);
  let base = startOffset; // file offset of buf[0]
  let n = startRecord;
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(CHUNK);
      const got = await src.read(chunk, 0, CHUNK);
      if (got === 0) break;
      buf = buf.length ? Buffer.concat([buf, chunk.subarray(0, got)]) : chunk.subarray(0, got);
      const end = decodeRecords(buf, {
        record: (value, e) => sink.record(value, ++n, base + e),
        undecodable: (reason, e) => sink.undecodable(++n, base + e, reason),
      });
      const consumed = end.kind === 'done' ? buf.length : end.at;
      if (end.kind === 'malformed' || (end.kind === 'incomplete' && buf.length - consumed > maxRecordBytes)) {
        const why =
          end.kind === 'malformed'
            ? `malformed msgpack at byte ${base + consumed}: ${end.reason}`
            : `msgpack record at byte ${base + consumed} is longer than ${maxRecordBytes} bytes`;
        sink.broken(n + 1, `${why}; the rest of the file is not applied`);
        await sink.chunkDone?.(base + consumed);
        return { bytes: consumed + base - startOffset, records: n - startRecord };
      }
      buf = buf.subarray(consumed);
      base += consumed;
      await sink.chunkDone?.(base);
    }
    if (buf.length) sink.broken(n + 1, `truncated msgpack record at byte ${base} (end of file)`);
    return { bytes: base - startOffset, records: n - startRecord };
  } finally {
    await src.close();
  }
}
