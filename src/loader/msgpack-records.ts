// Reads a file as a stream of msgpack records from a byte offset, reporting
// each record's number and the byte offset just past it (for checkpoints). A
// record cut by the end of a read chunk is completed from the next chunk; one
// cut by the end of the file is reported as truncated. msgpack has no
// delimiters to resynchronise on, so after a malformed record the rest of the
// file is reported as unreadable (the records before it are kept).
import { unpackMultiple } from 'msgpackr';
import { openBytes } from './lines.js';

export interface RecordSink {
  record(value: unknown, recordNo: number, nextOffset: number): void;
  /** The rest of the file cannot be read: `recordNo` is the first record lost. */
  broken(recordNo: number, reason: string): void;
  chunkDone?(offset: number): Promise<void> | void;
}

const CHUNK = 1 << 20;

export async function readMsgpackRecords(path: string, startOffset: number, startRecord: number, sink: RecordSink): Promise<{ bytes: number; records: number }> {
  const src = await openBytes(path, startOffset);
  let buf = Buffer.alloc(0);
  let base = startOffset; // file offset of buf[0]
  let n = startRecord;
  try {
    for (;;) {
      const chunk = Buffer.allocUnsafe(CHUNK);
      const got = await src.read(chunk, 0, CHUNK);
      if (got === 0) break;
      buf = buf.length ? Buffer.concat([buf, chunk.subarray(0, got)]) : chunk.subarray(0, got);
      let consumed = 0;
      try {
        unpackMultiple(buf, (value: unknown, _start?: number, end?: number) => {
          consumed = end ?? consumed;
          sink.record(value, ++n, base + consumed);
        });
      } catch (err) {
        const e = err as Error & { incomplete?: boolean };
        if (!e.incomplete) {
          sink.broken(n + 1, `malformed msgpack at byte ${base + consumed}: ${e.message}; the rest of the file is not applied`);
          await sink.chunkDone?.(base + consumed);
          return { bytes: base + consumed - startOffset, records: n - startRecord };
        }
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
