// Which shard a user key belongs to: CRC-32 (IEEE, as zlib and HAProxy's
// `crc32` converter compute it) of the key's UTF-8 bytes, modulo the shard
// count. This one rule is shared by everything that places or finds a user:
// feed producers publish a user's records on `segments.<shard>.…`, a node
// consumes its shard's subjects (SEGD_SHARD), the fan-out client groups keys,
// and deploy/haproxy.cfg computes the same function on `?uid=`
// (`url_param(uid),url_dec(1),crc32,mod(K)`: `+` is a space, as segd reads a query), so a lookup reaches the node
// group holding that user for every key — there is no table to keep in sync.
import { crc32 } from 'node:zlib';

/** A node's place in a sharded deployment: shard `index` of `count`. */
export interface ShardSpec {
  index: number;
  count: number;
}

/** The shard (0 ≤ shard < count) of user key `uid`. */
export function shardOf(uid: string, count: number): number {
  return count <= 1 ? 0 : crc32(uid) % count;
}

/** The subject a producer publishes a user's records on: `<prefix>.<shard>.<rest>`. */
export function shardSubject(uid: string, count: number, prefix = 'segments', rest = 'feed'): string {
  return `${prefix}.${shardOf(uid, count)}.${rest}`;
}

/** The subject filter a node of shard `spec.index` consumes. */
export function shardFilter(spec: ShardSpec, prefix = 'segments'): string {
  return `${prefix}.${spec.index}.>`;
}

/** Parses `I/K` (shard I of K, 0 ≤ I < K ≤ 1024); returns why not, as a string, when it is not one. */
export function parseShardSpec(raw: string): ShardSpec | string {
  const m = /^\s*(\d{1,4})\s*\/\s*(\d{1,4})\s*$/.exec(raw);
  if (!m) return `expected I/K (shard I of K, e.g. 0/3), got ${JSON.stringify(raw)}`;
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > 1024) return `the shard count must be between 1 and 1024, got ${count}`;
  if (index >= count) return `the shard index must be below the count (0…${count - 1}), got ${index}`;
  return { index, count };
}
