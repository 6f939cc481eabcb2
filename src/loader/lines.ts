// Reads a file as lines from a byte offset, reporting each line's number and
// the byte offset just past it (what a checkpoint records). Lines longer than
// `maxLineBytes` are reported as too long and skipped to the next newline,
// without buffering them. A last line with no newline is still a line.
import { open } from 'node:fs/promises';

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
): Promise<{ bytes: number; lines: number }> {
  const fh = await open(path, 'r');
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
      const { bytesRead } = await fh.read(buf, carry, CHUNK, fileOffset + carry);
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
    await fh.close();
  }
}
