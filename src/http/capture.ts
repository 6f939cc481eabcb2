// Traffic capture for replay (`SEGD_CAPTURE_SAMPLE`, off by default): a
// sampled share of lookups, appended by each worker to its own NDJSON file
// under <data dir>/capture/, which `segd loadtest --replay` sends again with
// its timing. One line per request:
//
//   {"t":1796280001234.567,"route":"segments","q":"uid=u-1&format=kv","partner":"dsp-a","format":"kv"}
//   {"t":…,"route":"batch","body":"{\"uids\":[…]}","ct":"application/json","q":"","partner":""}
//
// The key is kept as sent (it is a pseudonymous id: capture files are
// personal data); the bearer key never is, only the partner it belongs to.
// Lines are buffered and written off the request path; files rotate at
// SEGD_CAPTURE_FILE_BYTES, and each rotation removes this worker's files
// older than SEGD_CAPTURE_KEEP_HOURS and the oldest beyond its share of
// SEGD_CAPTURE_TOTAL_BYTES.
import { performance } from 'node:perf_hooks';
import { mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';

export type CapturedRoute = 'segments' | 'batch';

/** How often the buffer is written out; also the most a crash can lose. */
const FLUSH_MS = 200;
/** A buffer this large is written out at once. */
const FLUSH_BYTES = 256 * 1024;
/** A captured batch body longer than this is left out (the line says so). */
const MAX_BODY = 64 * 1024;

export class Capture {
  private buf: string[] = [];
  private bufBytes = 0;
  private file = '';
  private fileBytes = 0;
  private rotations = 0;
  private writing: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private readonly prefix: string;
  /** A write failed and was logged: the next failures are not, until a write succeeds. */
  private failing = false;

  private constructor(
    private readonly dir: string,
    worker: number,
    private readonly rate: number,
    private readonly fileMax: number,
    private readonly totalMax: number,
    private readonly keepMs: number,
    private readonly log: Logger,
  ) {
    this.prefix = `capture-w${worker}-`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.rotate();
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** A capture for this worker, or null when SEGD_CAPTURE_SAMPLE is 0 (the request path then checks one null). */
  static open(config: Readonly<Config>, worker: number, workers: number, log: Logger): Capture | null {
    if (!(config.captureSample > 0)) return null;
    return new Capture(
      join(config.dataDir, 'capture'),
      worker,
      config.captureSample,
      config.captureFileBytes,
      Math.floor(config.captureTotalBytes / Math.max(1, workers)),
      config.captureKeepHours * 3_600_000,
      log,
    );
  }

  /** Whether to capture this request (one random draw). */
  sample(): boolean {
    return Math.random() < this.rate;
  }

  lookup(query: string, partner: string, format: string): void {
    this.push(
      `{"t":${(performance.timeOrigin + performance.now()).toFixed(3)},"route":"segments","q":${JSON.stringify(query)},"partner":${JSON.stringify(partner)},"format":${JSON.stringify(format)}}\n`,
    );
  }

  /** A batch: its body (msgpack as base64, JSON as text; left out past 64 KB), its kind and its query. */
  batch(body: Buffer, kind: 'json' | 'msgpack', query: string, partner: string): void {
    const t = (performance.timeOrigin + performance.now()).toFixed(3);
    const what =
      body.length > MAX_BODY
        ? `"tooLarge":${body.length}`
        : kind === 'msgpack'
          ? `"b64":"${body.toString('base64')}"`
          : `"body":${JSON.stringify(body.toString('utf8'))}`;
    this.push(
      `{"t":${t},"route":"batch",${what},"ct":"application/${kind}","q":${JSON.stringify(query)},"partner":${JSON.stringify(partner)}}\n`,
    );
  }

  private push(line: string): void {
    this.buf.push(line);
    this.bufBytes += line.length;
    if (this.bufBytes >= FLUSH_BYTES) this.flush();
  }

  /** Writes the buffered lines, rotating where the next line would take the file past its size. */
  private flush(): void {
    const lines = this.buf;
    if (!lines.length) return;
    this.buf = [];
    this.bufBytes = 0;
    let from = 0;
    let bytes = 0;
    for (let i = 0; i < lines.length; i++) {
      const n = lines[i]!.length;
      if (this.fileBytes + bytes + n > this.fileMax && this.fileBytes + bytes > 0) {
        this.append(lines, from, i, bytes);
        this.rotate();
        from = i;
        bytes = 0;
      }
      bytes += n;
    }
    this.append(lines, from, lines.length, bytes);
  }

  private append(lines: string[], from: number, to: number, bytes: number): void {
    if (from === to) return;
    const file = this.file;
    const text = lines.slice(from, to).join('');
    this.fileBytes += bytes;
    this.writing = this.writing.then(() =>
      appendFile(file, text, { mode: 0o600 }).then(
        () => {
          this.failing = false;
        },
        (err: unknown) => {
          if (!this.failing)
            this.log.error({ err, file, lines: to - from }, 'capture: writing sampled requests failed; dropping them');
          this.failing = true;
        },
      ),
    );
  }

  /** A new file; then this worker's files past their age or its share of the total bytes go. */
  private rotate(): void {
    // The sequence keeps two rotations within one millisecond from sharing a file.
    this.file = join(this.dir, `${this.prefix}${Date.now()}-${this.rotations++}.ndjson`);
    this.fileBytes = 0;
    try {
      const mine = readdirSync(this.dir)
        .filter((n) => n.startsWith(this.prefix) && n.endsWith('.ndjson'))
        .map((n) => {
          const path = join(this.dir, n);
          const st = statSync(path);
          return { path, bytes: st.size, mtime: st.mtimeMs };
        })
        .sort((a, b) => b.mtime - a.mtime);
      let total = 0;
      const now = Date.now();
      for (const f of mine) {
        total += f.bytes;
        if (now - f.mtime > this.keepMs || total > this.totalMax) unlinkSync(f.path);
      }
    } catch (err) {
      this.log.warn({ err, dir: this.dir }, 'capture: could not apply retention');
    }
  }

  /** Writes what is buffered and stops the timer (graceful shutdown). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.flush();
    await this.writing;
  }
}
