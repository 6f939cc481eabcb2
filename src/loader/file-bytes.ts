// A feed file's bytes from a byte offset, as chunks for the feed readers
// (feed-reader.ts). A `.gz` file is read through gunzip; its offsets count
// uncompressed bytes (a resume decompresses from the start and skips to the
// checkpoint). A gzip that is corrupt, cut short or expands past the ratio
// bound ends the chunks with a FeedBreak: the reader keeps what came before.
import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { FeedBreak } from './feed-reader.js';

/** How many times its compressed size a gzip feed may expand to (SEGD_MAX_GZIP_RATIO); real feeds are 3–10×. */
const DEFAULT_MAX_GZIP_RATIO = 100;
/** Expansion allowed beyond the ratio, so a small file's first chunk is never judged on a few compressed bytes. */
const GZIP_SLACK = 1 << 20;
/** Bytes per chunk: large, so the per-chunk work (a commit check, an await) is spread over thousands of records. */
const CHUNK = 1 << 20;

/** A file's bytes from `offset` (uncompressed bytes for `.gz`, bounded by `maxGzipRatio` times the compressed bytes read). */
export function fileChunks(path: string, offset: number, maxGzipRatio = DEFAULT_MAX_GZIP_RATIO): AsyncIterable<Buffer> {
  return path.endsWith('.gz') ? gzipChunks(path, offset, maxGzipRatio) : plainChunks(path, offset);
}

async function* plainChunks(path: string, offset: number): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  try {
    // One buffer for the whole file (the readers copy what they keep of a
    // chunk): a fresh megabyte per chunk costs a full garbage collection every
    // few dozen chunks, which a snapshot holding millions of records on the
    // heap pays dearly for.
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = offset;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

async function* gzipChunks(path: string, offset: number, maxRatio: number): AsyncGenerator<Buffer> {
  // pipe() does not forward errors: an error of the file stream (EACCES,
  // ENOENT) is handed to gunzip, so it reaches the reader as a thrown error
  // instead of an unhandled 'error' event that would kill the process.
  const file = createReadStream(path);
  const gunzip = createGunzip({ chunkSize: CHUNK });
  file.on('error', (err) => gunzip.destroy(err));
  // Checked as it goes, against the compressed bytes read so far (a bound that
  // only looks at the end would have inflated the bomb first).
  let compressed = 0;
  let inflated = 0;
  file.on('data', (c: string | Buffer) => {
    compressed += c.length;
  });
  file.pipe(gunzip);
  let skip = offset;
  try {
    for await (const out of gunzip as AsyncIterable<Buffer>) {
      let chunk = out;
      inflated += chunk.length;
      if (inflated > compressed * maxRatio + GZIP_SLACK) {
        const what = `gzip expands more than ${maxRatio}× its compressed size (SEGD_MAX_GZIP_RATIO), at uncompressed byte ${inflated}`;
        throw new FeedBreak((line) => `${what}, after line ${line}; the rest of the file is not applied`);
      }
      if (skip > 0) {
        const n = Math.min(skip, chunk.length);
        chunk = chunk.subarray(n);
        skip -= n;
        if (chunk.length === 0) continue;
      }
      yield chunk;
    }
  } catch (err) {
    if (err instanceof FeedBreak || !String((err as NodeJS.ErrnoException).code).startsWith('Z_')) throw err;
    const message = (err as Error).message;
    throw new FeedBreak(
      (line) => `corrupt or truncated gzip after line ${line}: ${message}; the rest of the file is not applied`,
    );
  } finally {
    gunzip.destroy();
    file.destroy();
  }
}
