// The `file` adapter: each batch becomes one gzip NDJSON file in the
// destination's directory (its file: URL), for batch services that take
// files of deltas (Xandr's batch segment service takes at most one upload a
// minute: the destination's minIntervalMs). The file is written beside its
// final name, fsynced, renamed into place and the directory fsynced, and only
// then is the batch delivered (the cursor moves): a crash leaves either no
// file or the whole file, and a batch written again after a crash lands
// under the same name (its key), with the same content.
//
// Content: a first line with the envelope (version, destination, batch,
// resync, users = how many lines follow), then one line per user line as in
// the webhook body.
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { Destination } from '../partners/types.js';
import type { Adapter, Outcome } from './adapter.js';
import { lineJson, type Batch, type Line } from './batcher.js';

const gzip = promisify(gzipCb);

/** The file a batch is written to: its key, made a file name. */
export const fileNameOf = (key: string) => `${key.replace(/[^A-Za-z0-9_-]/g, '_')}.ndjson.gz`;

function encode(
  dest: Destination,
  key: string,
  lines: Line[],
  dropped: number,
  resync: { id: number; done: boolean } | null,
): Batch {
  const head = JSON.stringify({ version: 1, destination: dest.id, batch: key, resync, users: lines.length });
  const body = Buffer.from([head, ...lines.map(lineJson)].join('\n') + '\n');
  return { key, lines, body, dropped };
}

async function send(dest: Destination, batch: Batch): Promise<Outcome> {
  const dir = fileURLToPath(dest.url);
  const name = fileNameOf(batch.key);
  const tmp = join(dir, `.${name}.tmp`);
  try {
    const data = await gzip(batch.body);
    const fh = await open(tmp, 'w', 0o640);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(dir, name));
    // The rename is durable once the directory is.
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    return { kind: 'delivered', status: 0, failed: new Set() };
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    // A directory missing, full or not writable may be fixed: the batch is tried again.
    const e = err as NodeJS.ErrnoException;
    return { kind: 'retry', status: 0, afterMs: null, error: `${e.code ?? 'error'}: ${e.message}` };
  }
}

export const file: Adapter = { encode, send: (dest, batch) => send(dest, batch) };
