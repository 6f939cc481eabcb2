// A segd for the identity tests: sync partners from a config file, an admin
// key and an ingest key, its own data dir kept across restarts; started before
// the file's tests and stopped (data removed) after them. The calls the
// identity tests make over real HTTP come with it.
import { afterAll, beforeAll } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, tempDir, waitFor, type Segd } from './server.js';
import { sample } from './metrics.js';

export const ADMIN = 'admin-key-0123456789';
export const INGEST = 'ingest-key-0123456789';

export interface IdentityOptions {
  /** Prefix of the temp data dir and config file. */
  name: string;
  /** The config's partners; a function when they are known only once earlier hooks ran (fake partners' ports). */
  partners: object[] | (() => object[]);
  env?: Record<string, string>;
}

export interface PushAnswer {
  applied: number;
  stale: number;
  rejected: number;
  rejects: Array<{ line: number; reason: string }>;
}

export interface IdentityServer {
  /** The running segd (a restart replaces it). */
  readonly segd: Segd;
  readonly dataDir: string;
  readonly cfgPath: string;
  /** Stops segd, runs `between` on the stopped data dir, starts it again on the same data. */
  restart(between?: () => void | Promise<void>): Promise<void>;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  lookup(q: string): Promise<{ uid: string | null; segments: number[] }>;
  /** NDJSON records (objects, or raw lines as strings) to POST /v1/ingest. */
  push(lines: Array<object | string>): Promise<PushAnswer>;
  del(q: string, key?: string): Promise<Response>;
  /**
   * Resolves once the writer has applied every match the workers took: each
   * inbound sync answered `stored` is one record through the writer
   * (`segd_loader_records_total{source="sync"}`). Until then a sync's match
   * may still be queued; after it, a sync that stored nothing has provably
   * stored nothing.
   */
  matchesWritten(): Promise<void>;
}

export function identityServer(opts: IdentityOptions): IdentityServer {
  const dataDir = tempDir(opts.name);
  const cfgPath = join(dataDir, '..', `${opts.name}${process.pid}.json`);
  const start = () => startSegd({ dataDir, env: { SEGD_CONFIG: cfgPath, SEGD_INGEST_KEYS: INGEST, ...opts.env } });
  let segd: Segd | undefined;
  const running = () => {
    if (!segd) throw new Error('segd is not running');
    return segd;
  };

  beforeAll(async () => {
    const partners = typeof opts.partners === 'function' ? opts.partners() : opts.partners;
    writeFileSync(cfgPath, JSON.stringify({ adminKeys: [ADMIN], partners }));
    segd = await start();
  });
  afterAll(async () => {
    await segd?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(cfgPath, { force: true });
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${running().url}${path}`, { headers, redirect: 'manual' });
  return {
    get segd() {
      return running();
    },
    dataDir,
    cfgPath,
    async restart(between) {
      await running().stop();
      segd = undefined;
      await between?.();
      segd = await start();
    },
    get,
    lookup: async (q) => (await (await get(`/v1/segments?${q}`)).json()) as { uid: string | null; segments: number[] },
    async push(lines) {
      const r = await fetch(`${running().url}/v1/ingest`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${INGEST}`, 'Content-Type': 'application/x-ndjson' },
        body: lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'),
      });
      return (await r.json()) as PushAnswer;
    },
    del: (q, key = ADMIN) =>
      fetch(`${running().url}/v1/users?${q}`, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } }),
    matchesWritten: () =>
      waitFor(async () => {
        const text = await (await get('/metrics')).text();
        const written = (o: string) => sample(text, 'segd_loader_records_total', { source: 'sync', outcome: o });
        const taken = sample(text, 'segd_sync_total', { direction: 'in', outcome: 'stored' });
        return written('applied') + written('stale') === taken;
      }, 10_000),
  };
}
