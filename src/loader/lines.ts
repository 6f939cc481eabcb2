// Reads a file as lines from a byte offset, reporting each line's number and
// the byte offset just past it (what a checkpoint records). Lines longer than
// `maxLineBytes` are reported as too long and skipped to the next newline,
// without buffering them. A last line with no newline is still a line.
// A `.gz` file is read through gunzip; its offsets count uncompressed bytes
// (a resume decompresses from the start and skips to the checkpoint).
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';

/** Sequential bytes of a file from an offset: `read` fills buf[at, at+max) and returns the count, 0 at the end. */
export interface ByteSource {
  read(buf: Buffer, at: number, max: number): Promise<number>;
  close(): Promise<void>;
}

async function plainSource(path: string, offset: number): Promise<ByteSource> {
  const fh = await open(path, 'r');
  let pos = offset;
  return {
    async read(buf, at, max) {
      const { bytesRead } = await fh.read(buf, at, max, pos);
      pos += bytesRead;
      return bytesRead;
    },
    close: () => fh.close(),
  };
}

/** A file's bytes from `offset` (uncompressed bytes for `.gz`, bounded by `maxGzipRatio`: see gzipSource). */
export async function openBytes(
  path: string,
  offset: number,
  maxGzipRatio = DEFAULT_MAX_GZIP_RATIO,
): Promise<ByteSource> {
  return path.endsWith('.gz') ? gzipSource(path, offset, maxGzipRatio) : plainSource(path, offset);
}

/** How many times its compressed size a gzip feed may expand to (SEGD_MAX_GZIP_RATIO); real feeds are 3–10×. */
export const DEFAULT_MAX_GZIP_RATIO = 100;
/** Expansion allowed beyond the ratio, so a small file's first chunk is never judged on a few compressed bytes. */
const GZIP_SLACK = 1 << 20;

/** A gzip that expands more than the ratio allows (a decompression bomb): the rest of the file is not read. */
export class GzipRatioError extends Error {}

function gzipSource(path: string, offset: number, maxRatio: number): ByteSource {
  // pipe() does not forward errors: an error of the file stream (EACCES,
  // ENOENT) is handed to gunzip, so it reaches the reader as a rejected read
  // instead of an unhandled 'error' event that would kill the process.
  const file = createReadStream(path);
  const gunzip = createGunzip();
  file.on('error', (err) => gunzip.destroy(err));
  // Checked as it goes, against the compressed bytes read so far (a bound that
  // only looks at the end would have inflated the bomb first).
  let compressed = 0;
  let inflated = 0;
  file.on('data', (c: string | Buffer) => {
    compressed += c.length;
  });
  file.pipe(gunzip);
  const it = gunzip[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let pending: Buffer = Buffer.alloc(0);
  let skip = offset;
  return {
    async read(buf, at, max) {
      while (pending.length === 0) {
        const next = await it.next();
        if (next.done) return 0;
        pending = next.value;
        inflated += pending.length;
        if (inflated > compressed * maxRatio + GZIP_SLACK) {
          throw new GzipRatioError(
            `gzip expands more than ${maxRatio}× its compressed size (SEGD_MAX_GZIP_RATIO), at uncompressed byte ${inflated}`,
          );
        }
        if (skip > 0) {
          const n = Math.min(skip, pending.length);
          pending = pending.subarray(n);
          skip -= n;
        }
      }
      const n = Math.min(max, pending.length);
      pending.copy(buf, at, 0, n);
      pending = pending.subarray(n);
      return n;
    },
    close: async () => {
      gunzip.destroy();
      file.destroy();
    },
  };
}

export interface LineSink {
  /** `buf[start, end)` is the line without its newline (a trailing CR is stripped). */
  line(buf: Buffer, start: number, end: number, lineNo: number, nextOffset: number): void;
  tooLong(lineNo: number, nextOffset: number): void;
  /** Called after each read chunk; an async sink may commit here. */
  chunkDone?(offset: number): Promise<void> | void;
}

const CHUNK = 1 << 20;

export async function readLines(
  path: string,
  startOffset: number,
  startLine: number,
  maxLineBytes: number,
  sink: LineSink,
  maxGzipRatio?: number,
): Promise<{ bytes: number; lines: number }> {
  const src = await openBytes(path, startOffset, maxGzipRatio);
  try {
    let buf = Buffer.allocUnsafe(CHUNK + maxLineBytes);
    let carry = 0; // bytes of an unfinished line at buf[0, carry)
    let fileOffset = startOffset; // file offset of buf[0]
    let lineNo = startLine;
    let skipping = false; // inside an over-long line
    for (;;) {
      if (buf.length - carry < CHUNK) {
        const bigger = Buffer.allocUnsafe(carry + CHUNK);
        buf.copy(bigger, 0, 0, carry);
        buf = bigger;
      }
      const bytesRead = await src.read(buf, carry, CHUNK);
      const filled = carry + bytesRead;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(10, start);
        if (nl === -1 || nl >= filled) break;
        lineNo++;
        const next = fileOffset + nl + 1;
        if (skipping) {
          skipping = false;
          sink.tooLong(lineNo, next);
        } else if (nl - start > maxLineBytes) {
          sink.tooLong(lineNo, next);
        } else {
          const end = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl;
          sink.line(buf, start, end, lineNo, next);
        }
        start = nl + 1;
      }
      if (bytesRead === 0) {
        // EOF: what is left is a last line without a newline.
        if (skipping) {
          sink.tooLong(++lineNo, fileOffset + filled);
        } else if (filled > start) {
          lineNo++;
          const end = buf[filled - 1] === 13 ? filled - 1 : filled;
          sink.line(buf, start, end, lineNo, fileOffset + filled);
        }
        await sink.chunkDone?.(fileOffset + filled);
        return { bytes: fileOffset + filled - startOffset, lines: lineNo - startLine };
      }
      // Keep the unfinished line; drop it if it is already over the limit.
      carry = filled - start;
      if (carry > maxLineBytes) {
        skipping = true;
        fileOffset += filled;
        carry = 0;
      } else {
        buf.copy(buf, 0, start, filled);
        fileOffset += start;
      }
      await sink.chunkDone?.(fileOffset);
    }
  } finally {
    await src.close();
  }
}
