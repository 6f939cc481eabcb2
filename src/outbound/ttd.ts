// The `ttd` adapter: a batch shaped like The Trade Desk's Data API
// (POST /data/thirdparty): items keyed by the destination's id field (TDID,
// UID2, …) holding `Data: [{Name, TtlInMinutes}]`, a segment's Name being its
// segd id, a removal sent as TtlInMinutes 0. The answer's `FailedLines` name
// the items not taken (by id, or by ItemNumber counted from 1); those lines
// are queued again like a webhook's `failed`. 413, 429 and 5xx are what
// postBatch makes of them for every adapter. The token goes in `TTD-Auth`.
import type { Destination } from '../partners/types.js';
import type { Adapter } from './adapter.js';
import type { Batch, Line } from './batcher.js';
import { MAX_ANSWER_BYTES, postBatch } from './webhook.js';

function encode(dest: Destination, key: string, lines: Line[], dropped: number): Batch {
  const spec = dest.ttd!;
  const items = lines.map((l) => ({
    [spec.idField]: l.id,
    Data: l.segments.map((s) => ({ Name: String(s.id), TtlInMinutes: s.status ? spec.ttlMinutes : 0 })),
  }));
  // DataLoadTraceId carries the batch's key, so a load can be traced back to it.
  const body = Buffer.from(JSON.stringify({ DataProviderId: spec.dataProviderId, DataLoadTraceId: key, Items: items }));
  return { key, lines, body, dropped };
}

/** The ids of the lines a 2xx answer's FailedLines name. */
export function failedLines(text: string, batch: Batch, dest: Destination): Set<string> {
  const out = new Set<string>();
  if (text.length === 0 || text.length > MAX_ANSWER_BYTES || !text.includes('FailedLines')) return out;
  try {
    const v = JSON.parse(text) as { FailedLines?: unknown };
    if (!Array.isArray(v.FailedLines)) return out;
    for (const f of v.FailedLines as Record<string, unknown>[]) {
      if (!f || typeof f !== 'object') continue;
      const byId = f[dest.ttd!.idField] ?? f.TDID ?? f.DataProviderUserId;
      const n = Number(f.ItemNumber);
      if (typeof byId === 'string' && batch.lines.some((l) => l.id === byId)) out.add(byId);
      else if (Number.isInteger(n) && n >= 1 && n <= batch.lines.length) out.add(batch.lines[n - 1]!.id);
    }
  } catch {
    // Not JSON: nothing named, the batch is delivered.
  }
  return out;
}

export const ttd: Adapter = {
  encode,
  send: async (dest, batch, signal) =>
    // Nothing to restate (a resync's closing batch): the Data API has no notion of one, so nothing is sent.
    batch.lines.length === 0
      ? { kind: 'delivered', status: 0, failed: new Set() }
      : postBatch(dest, batch, signal, (text) => failedLines(text, batch, dest)),
};
