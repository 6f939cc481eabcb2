// A small client for callers of a sharded segd behind HAProxy (deploy/haproxy.cfg).
// A single lookup routes itself (HAProxy hashes `?uid=`), but a batch body
// may hold users of every shard, and HAProxy does not read bodies. So the
// client groups a batch's keys by shard (the one shard function, shard/),
// sends one batch per shard in parallel with `X-Segd-Shard: <shard>` (which
// HAProxy routes on before `?uid=`), and puts the answers back in request
// order. An enrichment names its user in the bid request's body; the caller
// passes that key and the client sets the header the same way.
//
//   const c = new ShardedClient({ url: 'http://haproxy:8080', shards: 2, headers: { authorization: 'Bearer …' } });
//   const items = await c.batch(['u1', 'u2', 'u3']);   // [{uid, segments, error?}, …] in request order
//   const res = await c.enrich(bidRequestJson, 'u1');  // the segd answer (200 with user.data, or 204)
import { shardOf } from '../shard/shard.js';

export interface ShardedClientOptions {
  /** HAProxy's (or any router's) base URL. */
  url: string;
  /** K: the shard count every node's SEGD_SHARD and the HAProxy config use. */
  shards: number;
  /** Sent with every request (authorization). */
  headers?: Record<string, string>;
  /** Per-request timeout; default 1000 ms. */
  timeoutMs?: number;
}

export interface BatchItem {
  uid: string | null;
  segments: number[];
  error?: { code: string; message: string };
}

/** One shard's batch failed: the status and body it answered, or why it did not answer. */
export class ShardBatchError extends Error {
  constructor(
    readonly shard: number,
    readonly status: number,
    detail: string,
  ) {
    super(`shard ${shard}: ${status ? `HTTP ${status}: ` : ''}${detail}`);
    this.name = 'ShardBatchError';
  }
}

export const SHARD_HEADER = 'x-segd-shard';

export class ShardedClient {
  private readonly base: string;

  constructor(private readonly opts: ShardedClientOptions) {
    if (!Number.isInteger(opts.shards) || opts.shards < 1) throw new Error('shards must be a whole number ≥ 1');
    this.base = opts.url.replace(/\/+$/, '');
  }

  /** The shard of user key `uid`. */
  shardOf(uid: string): number {
    return shardOf(uid, this.opts.shards);
  }

  /** Looks up `uids` (any mix of shards); answers in request order. A shard that fails fails the call. */
  async batch(uids: readonly string[]): Promise<BatchItem[]> {
    const groups = new Map<number, number[]>(); // shard → positions in uids
    uids.forEach((uid, i) => {
      const s = this.shardOf(uid);
      const g = groups.get(s);
      if (g) g.push(i);
      else groups.set(s, [i]);
    });
    const out = new Array<BatchItem>(uids.length);
    await Promise.all(
      [...groups].map(async ([shard, positions]) => {
        const res = await this.post(
          '/v1/segments:batch',
          shard,
          JSON.stringify({ uids: positions.map((i) => uids[i]) }),
        );
        const text = await res.text();
        if (res.status !== 200) throw new ShardBatchError(shard, res.status, text);
        const { results } = JSON.parse(text) as { results: BatchItem[] };
        if (results.length !== positions.length)
          throw new ShardBatchError(shard, res.status, `${results.length} results for ${positions.length} keys`);
        positions.forEach((p, j) => (out[p] = results[j]!));
      }),
    );
    return out;
  }

  /** POST /openrtb2/enrich routed to the shard of `uid` (the user key the bid request carries). */
  enrich(bidRequest: string, uid: string, query = ''): Promise<Response> {
    return this.post(`/openrtb2/enrich${query}`, this.shardOf(uid), bidRequest);
  }

  private post(path: string, shard: number, body: string): Promise<Response> {
    return fetch(`${this.base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.opts.headers, [SHARD_HEADER]: String(shard) },
      body,
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 1000),
    }).catch((err: unknown) => {
      throw new ShardBatchError(shard, 0, (err as Error).message);
    });
  }
}
