// Every setting segd understands, in one table: its env var, its config-file
// key, its default and how it is checked. docs/configuration.md
// mirrors this table; test/docs.test.ts fails when one is undocumented.
import { availableParallelism, hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseShardSpec, shardFilter, type ShardSpec } from '../shard/shard.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  inbox: string;
  workers: number;
  seed: string;
  maxBatchKeys: number;
  maxBodyBytes: number;
  maxUidBytes: number;
  inboxPollMs: number;
  loaderBatchSize: number;
  maxLineBytes: number;
  maxGzipRatio: number;
  inboxMaxAttempts: number;
  kvKey: string;
  logLevel: LogLevel;
  shutdownGraceMs: number;
  shutdownTimeoutMs: number;
  maxReaders: number;
  writemapHeadroomMb: number;
  bloomUsers: number;
  bloomFpRate: number;
  bloomSaveMs: number;
  adminKeys: string[];
  ingestKeys: string[];
  sweepMs: number;
  insights: 'on' | 'off';
  insightsSaveMs: number;
  outboundMaxBacklog: number;
  outboundMaxAttempts: number;
  outboundBackoffBaseMs: number;
  outboundBackoffMaxMs: number;
  exposureTtl: number;
  natsUrl: string;
  natsStream: string;
  natsSubject: string;
  natsDurable: string;
  natsBatch: number;
  natsReadyLag: number;
  shard: ShardSpec | null;
  maxIngestBytes: number;
  lookupAuth: 'required' | 'optional';
  dmpDomain: string;
  enrichBudgetMs: number;
  gdprDefault: 'applies' | 'not-applies';
  maxInflight: number;
  shedLagMs: number;
  loaderPriority: 'normal' | 'nice' | 'idle';
  wsMaxPayload: number;
  wsIdleSeconds: number;
  gamKey: string;
  gamMaxBytes: number;
  hotAnswers: number;
  rtdOrigins: RtdSite[];
  unknownSegments: 'accept' | 'reject';
  cookieName: string;
  cookieDomain: string;
  cookieMaxAge: number;
  optoutCookieName: string;
  cookieMaxBytes: number;
  gvlVendorId: number;
  syncIntervalSeconds: number;
  syncLimit: number;
  syncSignatureWindow: number;
  deletionTombstoneDays: number;
  optoutRate: number;
  optoutBurst: number;
  maxIdsPerProfile: number;
  maxInflightKeyed: number;
  maxInflightPublic: number;
  bodyTimeoutMs: number;
  metricsKeys: string[];
  metricsCacheMs: number;
  timelineEvents: number;
  loopMonitorMs: number;
  captureSample: number;
  captureFileBytes: number;
  captureTotalBytes: number;
  captureKeepHours: number;
}

/** The repo's own sample feed, loaded into an empty store by default. */
const SAMPLE_FEED = join(fileURLToPath(new URL('../../../', import.meta.url)), 'sample', 'feed.ndjson');

type Parse<T> = (raw: string) => T;

/** A publisher site allowed to call `GET /v1/rtd` from its pages (SEGD_RTD_ORIGINS). */
export interface RtdSite {
  /** The page origin, as browsers send it (`https://news.example`). */
  origin: string;
  /** The partner whose licence decides the data every bidder of the auction gets. */
  publisher: string;
  /** Partners the site may name as bidders: each gets its own licensed segments beside the global data. */
  partners: string[];
}

export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  env: string;
  doc: string;
  /** A default, or a function of the settings resolved so far (inbox depends on dataDir). */
  def: Config[K] | ((c: Partial<Config>) => Config[K]);
  parse: Parse<Config[K]>;
}

class BadValue extends Error {}

const int =
  (min: number, max: number): Parse<number> =>
  (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new BadValue(`expected a whole number, got ${JSON.stringify(raw)}`);
    const n = Number(raw);
    if (n < min || n > max) throw new BadValue(`must be between ${min} and ${max}, got ${n}`);
    return n;
  };
const num =
  (min: number, max: number): Parse<number> =>
  (raw) => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new BadValue(`expected a number, got ${JSON.stringify(raw)}`);
    if (n < min || n > max) throw new BadValue(`must be between ${min} and ${max}, got ${n}`);
    return n;
  };
const str =
  (check?: (s: string) => string | undefined): Parse<string> =>
  (raw) => {
    const why = check?.(raw);
    if (why) throw new BadValue(why);
    return raw;
  };
const keyList: Parse<string[]> = (raw) => {
  const keys = raw
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  if (keys.some((k) => k.length < 16)) throw new BadValue('each key must be at least 16 characters');
  return keys;
};
const ORIGIN = /^https?:\/\/[a-z0-9.-]{1,253}(:\d{1,5})?$/;
const PARTNER_ID = /^[a-z0-9_-]{1,40}$/;
/** `origin=publisher[+partner…]`, comma-separated; an origin once. */
const rtdSites: Parse<RtdSite[]> = (raw) => {
  const out: RtdSite[] = [];
  for (const entry of raw.split(',')) {
    const e = entry.trim();
    if (e === '') continue;
    const eq = e.lastIndexOf('=');
    const origin = e.slice(0, eq);
    const [publisher = '', ...partners] = e.slice(eq + 1).split('+');
    if (eq < 0 || !ORIGIN.test(origin))
      throw new BadValue(
        `${JSON.stringify(e)}: expected origin=publisher[+partner…], the origin lower-case scheme://host[:port]`,
      );
    if (![publisher, ...partners].every((p) => PARTNER_ID.test(p)))
      throw new BadValue(`${JSON.stringify(e)}: partner ids are 1-40 of a-z 0-9 _ -`);
    if (out.some((s) => s.origin === origin)) throw new BadValue(`${origin} is listed twice`);
    out.push({ origin, publisher, partners });
  }
  return out;
};
const cookieToken = (s: string) => (/^[A-Za-z0-9_-]{1,40}$/.test(s) ? undefined : 'must be 1-40 of A-Z a-z 0-9 _ -');
const nonEmpty = (s: string) => (s.trim() === '' ? 'must not be empty' : undefined);
const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const SETTINGS: Setting[] = [
  {
    key: 'port',
    env: 'SEGD_PORT',
    def: 8080,
    parse: int(0, 65535),
    doc: 'HTTP port all workers listen on (0 = pick a free one, logged at start)',
  },
  { key: 'host', env: 'SEGD_HOST', def: '0.0.0.0', parse: str(nonEmpty), doc: 'address to bind' },
  {
    key: 'dataDir',
    env: 'SEGD_DATA_DIR',
    def: './data',
    parse: str(nonEmpty),
    doc: 'directory of the LMDB env (created if missing)',
  },
  {
    key: 'inbox',
    env: 'SEGD_INBOX',
    def: (c) => join(c.dataDir ?? './data', 'inbox'),
    parse: str(nonEmpty),
    doc: 'directory watched for feed files; processed files go to `done/`, bad records to `rejects/`',
  },
  {
    key: 'workers',
    env: 'SEGD_WORKERS',
    // From 4 cores on, one is left to the writer: its thread and the V8 helper
    // threads its GC and compilation land on otherwise preempt a lookup worker
    // (measured on 2 cores: worker CPU waits up to 4-5 ms under a feed, 98%
    // blamed on those threads). Below 4, a core is too large a share to give up.
    def: () => (availableParallelism() >= 4 ? availableParallelism() - 1 : availableParallelism()),
    parse: int(1, 256),
    doc: 'lookup worker threads, one uWebSockets.js app each, all on the same port (default: cores − 1 from 4 cores on, leaving the writer a core; else the number of cores)',
  },
  {
    key: 'seed',
    env: 'SEGD_SEED',
    def: SAMPLE_FEED,
    parse: str(),
    doc: 'feed file imported once into an empty store (default: the sample feed in `sample/`; empty = none)',
  },
  {
    key: 'maxBatchKeys',
    env: 'SEGD_MAX_BATCH_KEYS',
    def: 1000,
    parse: int(1, 100_000),
    doc: 'most keys in one batch lookup (more → 413 BATCH_TOO_LARGE)',
  },
  {
    key: 'maxBodyBytes',
    env: 'SEGD_MAX_BODY_BYTES',
    def: 1 << 20,
    parse: int(1024, 64 << 20),
    doc: 'largest request body accepted (more → 413 BODY_TOO_LARGE)',
  },
  {
    key: 'maxUidBytes',
    env: 'SEGD_MAX_UID_BYTES',
    def: 128,
    parse: int(8, 1024),
    doc: 'longest user key in UTF-8 bytes (lookups and feeds)',
  },
  {
    key: 'inboxPollMs',
    env: 'SEGD_INBOX_POLL_MS',
    def: 1000,
    parse: int(50, 3_600_000),
    doc: 'how often the inbox is scanned for new files',
  },
  // 50k: measured 390–400k memberships/s importing 300k users vs 305–340k at
  // 10k (fewer commits rewriting the same pages); 200k reached 460k but holds
  // the writer (and so HTTP push acks) for seconds per transaction.
  {
    key: 'loaderBatchSize',
    env: 'SEGD_LOADER_BATCH',
    def: 50_000,
    parse: int(1, 1_000_000),
    doc: 'feed records applied per LMDB write transaction (inbox files, snapshots, a JetStream fetch — cut after a whole message)',
  },
  {
    key: 'maxLineBytes',
    env: 'SEGD_MAX_LINE_BYTES',
    def: 1 << 20,
    parse: int(256, 64 << 20),
    doc: 'longest feed line; longer lines are rejected, the rest of the file goes on',
  },
  {
    key: 'maxGzipRatio',
    env: 'SEGD_MAX_GZIP_RATIO',
    def: 100,
    parse: int(2, 100_000),
    doc: 'how many times its compressed size a `.gz` feed or snapshot may expand to (checked as it is read; real feeds are 3–10×); past it the rest of the file is rejected like a corrupt gzip',
  },
  {
    key: 'inboxMaxAttempts',
    env: 'SEGD_INBOX_MAX_ATTEMPTS',
    def: 5,
    parse: int(1, 1000),
    doc: 'attempts at an inbox file (or snapshot) that fail, or end with the process dying, without progress before it is moved to `failed/` and the inbox goes on',
  },
  {
    key: 'kvKey',
    env: 'SEGD_KV_KEY',
    def: 'seg',
    parse: str((s) => (/^[A-Za-z0-9_-]{1,40}$/.test(s) ? undefined : 'must be 1-40 of A-Z a-z 0-9 _ -')),
    doc: 'key name in `?format=kv` answers (`seg=12,57`)',
  },
  {
    key: 'logLevel',
    env: 'SEGD_LOG_LEVEL',
    def: 'info',
    parse: (raw) => {
      if (!LEVELS.includes(raw as LogLevel)) throw new BadValue(`must be one of ${LEVELS.join(', ')}`);
      return raw as LogLevel;
    },
    doc: 'pino log level',
  },
  {
    key: 'shutdownGraceMs',
    env: 'SEGD_SHUTDOWN_GRACE_MS',
    def: 5000,
    parse: int(0, 600_000),
    doc: 'on SIGTERM, how long in-flight requests may take before connections are closed',
  },
  {
    key: 'shutdownTimeoutMs',
    env: 'SEGD_SHUTDOWN_TIMEOUT_MS',
    def: 10_000,
    parse: int(100, 3_600_000),
    doc: 'on SIGTERM, how long the whole shutdown may take (keep it above `SEGD_SHUTDOWN_GRACE_MS`); past it segd logs what it still waits for, closes the store if it can and exits 4',
  },
  {
    key: 'maxReaders',
    env: 'SEGD_MAX_READERS',
    def: 1024,
    parse: int(16, 100_000),
    doc: 'LMDB reader slots (shared by every thread and process on the env)',
  },
  {
    key: 'writemapHeadroomMb',
    env: 'SEGD_WRITEMAP_HEADROOM_MB',
    def: 0,
    parse: int(0, 1_000_000),
    doc: 'above 0: LMDB writes through a writable map, the data file kept allocated this many MiB past its last used page (plus 8 KiB a record of the coming batch) so a full disk refuses writes instead of killing the process (64 is a fair value); 0 = a read-only map, pages written with pwrite',
  },
  {
    key: 'bloomUsers',
    env: 'SEGD_BLOOM_USERS',
    def: 1_000_000,
    parse: int(0, 2_000_000_000),
    doc: 'users the known-users bloom filter is sized for (grown automatically past it; 0 = no filter)',
  },
  {
    key: 'bloomFpRate',
    env: 'SEGD_BLOOM_FP_RATE',
    def: 0.01,
    parse: num(0.000001, 0.5),
    doc: 'target false-positive rate of the known-users filter',
  },
  {
    key: 'bloomSaveMs',
    env: 'SEGD_BLOOM_SAVE_MS',
    def: 30_000,
    parse: int(100, 86_400_000),
    doc: 'how often the filter is checkpointed to disk when it changed (and always at shutdown)',
  },
  {
    key: 'adminKeys',
    env: 'SEGD_ADMIN_KEYS',
    def: [],
    parse: keyList,
    doc: 'comma-separated bearer keys for admin routes (segment export); none = admin routes refuse every caller',
  },
  {
    key: 'ingestKeys',
    env: 'SEGD_INGEST_KEYS',
    def: [],
    parse: keyList,
    doc: 'comma-separated bearer keys for HTTP push (`POST /v1/ingest`); none = push refuses every caller',
  },
  {
    key: 'sweepMs',
    env: 'SEGD_SWEEP_MS',
    def: 60_000,
    parse: int(100, 86_400_000),
    doc: 'how often the TTL sweep checks for work; a pass runs only once the earliest stored expiry has passed (expired memberships are never returned; the sweep frees their space and fixes segment counts)',
  },
  {
    key: 'insights',
    env: 'SEGD_INSIGHTS',
    // Off by default while it costs ingest ~40% (docs/insights.md) and a start
    // after a crash rebuilds it before serving: on, the import-rate and
    // restart targets would no longer hold.
    def: 'off',
    parse: (raw) => {
      if (raw !== 'on' && raw !== 'off') throw new BadValue('must be on or off');
      return raw;
    },
    doc: 'keep the insights index (per-segment member bitmaps, for the /v1/insights routes); off (the default) = those routes answer 404 INSIGHTS_OFF and ingest skips the index',
  },
  {
    key: 'insightsSaveMs',
    env: 'SEGD_INSIGHTS_SAVE_MS',
    def: 60_000,
    parse: int(1000, 86_400_000),
    doc: 'how often the insights index is saved to disk when it changed (and always at shutdown); a start finds it current or rebuilds it from the store',
  },
  {
    key: 'outboundMaxBacklog',
    env: 'SEGD_OUTBOUND_MAX_BACKLOG',
    def: 1_000_000,
    parse: int(100, 1_000_000_000),
    doc: 'changes a destination may queue undelivered before its backlog is compacted to the latest state per user (docs/outbound.md)',
  },
  {
    key: 'outboundMaxAttempts',
    env: 'SEGD_OUTBOUND_MAX_ATTEMPTS',
    def: 5,
    parse: int(1, 1000),
    doc: 'deliveries of a user line a destination refuses (named failed, or a 4xx) before it becomes a dead letter',
  },
  {
    key: 'outboundBackoffBaseMs',
    env: 'SEGD_OUTBOUND_BACKOFF_BASE_MS',
    def: 500,
    parse: int(1, 600_000),
    doc: 'first retry delay after a 5xx, timeout or lost connection; doubles per attempt, with jitter',
  },
  {
    key: 'outboundBackoffMaxMs',
    env: 'SEGD_OUTBOUND_BACKOFF_MAX_MS',
    def: 60_000,
    parse: int(1, 3_600_000),
    doc: "longest wait between two deliveries of a batch (also caps a receiver's Retry-After)",
  },
  {
    key: 'exposureTtl',
    env: 'SEGD_EXPOSURE_TTL',
    def: 30 * 86_400,
    parse: int(60, 400 * 86_400),
    doc: 'seconds a user stays in a campaign exposure segment after the /px pixel saw it (a browser seen again is rewritten only once its expiry would move by a tenth of this, at most an hour)',
  },
  {
    key: 'natsUrl',
    env: 'SEGD_NATS_URL',
    def: '',
    parse: str(),
    doc: 'NATS server(s) of the JetStream feed, comma-separated (`nats://10.0.0.5:4222,…`); empty = the source is off',
  },
  {
    key: 'natsStream',
    env: 'SEGD_NATS_STREAM',
    def: 'SEGMENTS',
    parse: str(nonEmpty),
    doc: 'JetStream stream holding membership changes (created upstream, not by segd)',
  },
  {
    key: 'shard',
    env: 'SEGD_SHARD',
    def: null,
    parse: (raw) => {
      if (raw.trim() === '') return null;
      const spec = parseShardSpec(raw);
      if (typeof spec === 'string') throw new BadValue(spec);
      return spec;
    },
    doc: "this node's shard as `I/K` (shard I of K; a user's shard is CRC-32 of its key mod K, see docs/scale-out.md): the default NATS subject becomes `segments.I.>`; empty = unsharded",
  },
  {
    key: 'natsSubject',
    env: 'SEGD_NATS_SUBJECT',
    def: (c) => (c.shard ? shardFilter(c.shard) : 'segments.>'),
    parse: str(nonEmpty),
    doc: "subject filter of this node's consumer (a shard's subjects when sharding)",
  },
  {
    key: 'natsDurable',
    env: 'SEGD_NATS_DURABLE',
    def: () => `segd-${hostname().replace(/[^A-Za-z0-9_-]/g, '_')}`,
    parse: str((s) => (/^[A-Za-z0-9_-]{1,64}$/.test(s) ? undefined : 'must be 1-64 of A-Z a-z 0-9 _ -')),
    doc: 'durable consumer name, one per node (default: segd-<hostname>)',
  },
  {
    key: 'natsBatch',
    env: 'SEGD_NATS_BATCH',
    def: 1000,
    parse: int(1, 100_000),
    doc: 'messages per pull while the stream is live (a backlog is pulled and committed up to 20,000 at a time)',
  },
  {
    key: 'natsReadyLag',
    env: 'SEGD_NATS_READY_LAG',
    def: 0,
    parse: int(0, 1_000_000_000),
    doc: '`/readyz` answers 503 "catching up" until the JetStream backlog has once been at most this many messages (a node started from a backup joins the pool nearly current); 0 = not gated',
  },
  {
    key: 'maxIngestBytes',
    env: 'SEGD_MAX_INGEST_BYTES',
    def: 16 << 20,
    parse: int(1024, 1 << 30),
    doc: 'largest HTTP push body (more → 413 BODY_TOO_LARGE)',
  },
  // Activation: who may look up, OpenRTB enrichment, shedding, WebSocket, GAM.
  {
    key: 'lookupAuth',
    env: 'SEGD_LOOKUP_AUTH',
    def: () => (process.env.NODE_ENV === 'production' ? 'required' : 'optional'),
    parse: (raw) => {
      if (raw !== 'required' && raw !== 'optional') throw new BadValue('must be required or optional');
      return raw;
    },
    doc: 'lookup and enrichment callers: `required` = every caller needs a partner key (401 otherwise); `optional` = a caller without `Authorization` gets every segment (a key, when sent, must be valid and filters by licence). Default `required` when NODE_ENV=production (the Docker image), else `optional` so the quick start works',
  },
  {
    key: 'dmpDomain',
    env: 'SEGD_DMP_DOMAIN',
    def: () => hostname(),
    parse: str((s) => (/^[A-Za-z0-9.-]{1,253}$/.test(s) ? undefined : 'must be a domain name')),
    doc: "this DMP's domain: `name` of every OpenRTB `user.data` object segd adds (default: the host name)",
  },
  {
    key: 'enrichBudgetMs',
    env: 'SEGD_ENRICH_BUDGET_MS',
    def: 20,
    parse: int(1, 10_000),
    doc: "most time an enrichment may take, counted from when segd sees the request; the request's `tmax` lowers it. Past it → 204 (no enrichment)",
  },
  {
    key: 'gdprDefault',
    env: 'SEGD_GDPR_DEFAULT',
    def: 'applies',
    parse: (raw) => {
      if (raw !== 'applies' && raw !== 'not-applies') throw new BadValue('must be applies or not-applies');
      return raw;
    },
    doc: 'what an enrichment request that says nothing about GDPR (no `regs.gdpr`, no `regs.ext.gdpr`, no `regs.gpp_sid`) means: `applies` (the safe side: personalised segments only with a TCF string that consents) or `not-applies`',
  },
  {
    key: 'maxInflight',
    env: 'SEGD_MAX_INFLIGHT',
    def: 512,
    parse: int(1, 1_000_000),
    doc: 'admission limit per worker for lookups: lookup and enrichment requests with async work under way (bodies being read). Lookups past it are shed (204 at once); other routes have their own budgets',
  },
  {
    key: 'loaderPriority',
    env: 'SEGD_LOADER_PRIORITY',
    def: 'nice',
    parse: (raw) => {
      if (raw !== 'normal' && raw !== 'nice' && raw !== 'idle') throw new BadValue('must be normal, nice or idle');
      return raw;
    },
    doc: 'CPU priority of the loader (writer) thread against the lookup workers in the same process (Linux; per thread): `nice` (nice 10), `idle` (SCHED_IDLE: the loader runs only on CPU time lookups leave; feeds slow down first under lookup load), or `normal`',
  },
  {
    key: 'shedLagMs',
    env: 'SEGD_SHED_LAG_MS',
    def: 0,
    parse: int(0, 60_000),
    doc: "shed lookups (204 / empty WebSocket answers) while the worker's event loop lags more than this (0 = off)",
  },
  {
    key: 'wsMaxPayload',
    env: 'SEGD_WS_MAX_PAYLOAD',
    def: 16 * 1024,
    parse: int(64, 16 << 20),
    doc: 'largest WebSocket frame accepted on `/v1/ws`; a larger one drops the connection',
  },
  {
    key: 'wsIdleSeconds',
    env: 'SEGD_WS_IDLE_S',
    def: 120,
    parse: int(8, 960),
    doc: 'a `/v1/ws` connection with no traffic for this long is closed (segd pings before that)',
  },
  {
    key: 'gamKey',
    env: 'SEGD_GAM_KEY',
    def: 'seg',
    parse: str((s) => (/^[A-Za-z0-9_]{1,20}$/.test(s) ? undefined : 'must be 1-20 of A-Z a-z 0-9 _ (GAM key rules)')),
    doc: 'key of `?format=gam` answers and the on-page targeting snippet',
  },
  {
    key: 'gamMaxBytes',
    env: 'SEGD_GAM_MAX_BYTES',
    def: 512,
    parse: int(16, 65_536),
    doc: 'cap of a `?format=gam` answer; whole values past it are dropped (never a partial id)',
  },
  {
    key: 'hotAnswers',
    env: 'SEGD_HOT_ANSWERS',
    def: 8192,
    parse: int(0, 1_048_576),
    doc: 'encoded `GET /v1/segments?uid=` answers of hot users each worker keeps (by uid, caller licence and format; 512 bytes of buffer and 48 of counters each); every commit drops them all, a membership expiry ends those it is in; 0 = off',
  },
  {
    key: 'rtdOrigins',
    env: 'SEGD_RTD_ORIGINS',
    def: [],
    parse: rtdSites,
    doc: "page origins allowed to call `GET /v1/rtd` with the browser's cookie (the Prebid module), comma-separated `origin=publisher[+partner…]`: the publisher partner whose licence sets the data every bidder gets, and the partners the site may name as bidders. None = the route refuses every origin",
  },
  {
    key: 'unknownSegments',
    env: 'SEGD_UNKNOWN_SEGMENTS',
    def: 'accept',
    parse: (raw) => {
      if (raw !== 'accept' && raw !== 'reject') throw new BadValue('must be accept or reject');
      return raw;
    },
    doc: 'feed records (inbox, seed, HTTP push, NATS) that add segment ids missing from the taxonomy: `accept` them, or `reject` the record with the ids named',
  },
  // Identity: cookies, cookie sync, consent, deletion (src/identity, src/privacy).
  {
    key: 'cookieName',
    env: 'SEGD_COOKIE_NAME',
    def: 'segd',
    parse: str(cookieToken),
    doc: 'name of the segd id cookie',
  },
  {
    key: 'cookieDomain',
    env: 'SEGD_COOKIE_DOMAIN',
    def: '',
    parse: str((s) =>
      s === '' || /^\.?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(s) ? undefined : 'must be a lower-case domain name or empty',
    ),
    doc: 'Domain attribute of segd cookies (empty = host-only)',
  },
  {
    key: 'cookieMaxAge',
    env: 'SEGD_COOKIE_MAX_AGE',
    def: 34_560_000,
    parse: int(60, 157_680_000),
    doc: 'Max-Age of the id cookie in seconds (default 400 days, the most Chromium keeps)',
  },
  {
    key: 'optoutCookieName',
    env: 'SEGD_OPTOUT_COOKIE',
    def: 'segd_optout',
    parse: str(cookieToken),
    doc: 'name of the opt-out cookie (value `OPT_OUT`, 5 years)',
  },
  {
    key: 'cookieMaxBytes',
    env: 'SEGD_COOKIE_MAX_BYTES',
    def: 1024,
    parse: int(256, 8192),
    doc: 'most bytes of Set-Cookie header lines in one answer; segd refuses to start when its cookie settings (name, domain) would exceed it',
  },
  {
    key: 'gvlVendorId',
    env: 'SEGD_GVL_VENDOR_ID',
    def: 0,
    parse: int(0, 65_535),
    doc: "segd's vendor id in the IAB Global Vendor List; with gdpr=1 the TCF string must give it consent (0 = none: nothing is stored under GDPR)",
  },
  {
    key: 'syncIntervalSeconds',
    env: 'SEGD_SYNC_INTERVAL',
    def: 604_800,
    parse: int(0, 34_560_000),
    doc: 'a partner synced with this browser less than this many seconds ago is skipped by the outbound sync',
  },
  {
    key: 'syncLimit',
    env: 'SEGD_SYNC_LIMIT',
    def: 8,
    parse: int(1, 100),
    doc: 'most partners one outbound sync answer lists (a request may ask for fewer with `limit`)',
  },
  {
    key: 'syncSignatureWindow',
    env: 'SEGD_SYNC_SIG_WINDOW',
    def: 300,
    parse: int(1, 86_400),
    doc: "how far (seconds, either way) a signed callback's `ts` may be from now",
  },
  {
    key: 'deletionTombstoneDays',
    env: 'SEGD_DELETION_TOMBSTONE_DAYS',
    def: 400,
    parse: int(8, 36_500),
    doc: "how long a deleted user's tombstone blocks upstream data for it (opt-outs never lapse)",
  },
  {
    key: 'optoutRate',
    env: 'SEGD_OPTOUT_RATE',
    def: 5,
    parse: num(0, 10_000),
    doc: 'browser opt-outs per second each worker stores (a token bucket; past it the opt-out cookie is still set, the store write is refused)',
  },
  {
    key: 'optoutBurst',
    env: 'SEGD_OPTOUT_BURST',
    def: 50,
    parse: int(1, 1_000_000),
    doc: 'browser opt-outs a worker stores at once before `SEGD_OPTOUT_RATE` applies',
  },
  {
    key: 'maxIdsPerProfile',
    env: 'SEGD_MAX_IDS_PER_PROFILE',
    def: 200,
    parse: int(1, 100_000),
    doc: 'most ids (partner ids, device ids…) one profile links; a partner links one id per profile (its latest), and a match past the cap is refused',
  },
  // Edge hardening: separate admission budgets, body deadline, /metrics access.
  {
    key: 'maxInflightKeyed',
    env: 'SEGD_MAX_INFLIGHT_KEYED',
    def: 256,
    parse: int(1, 1_000_000),
    doc: 'admission limit per worker for keyed routes other than lookups (push, admin, deletion, export, a keyed `/metrics`); past it → 503 OVERLOADED',
  },
  {
    key: 'maxInflightPublic',
    env: 'SEGD_MAX_INFLIGHT_PUBLIC',
    def: 256,
    parse: int(1, 1_000_000),
    doc: 'admission limit per worker for unauthenticated routes (cookie sync, opt-out, an open `/metrics`); past it → 503 OVERLOADED',
  },
  {
    key: 'bodyTimeoutMs',
    env: 'SEGD_BODY_TIMEOUT_MS',
    def: 10_000,
    parse: int(100, 600_000),
    doc: 'a request body not fully received this long after its headers is dropped: 408 BODY_TIMEOUT and the connection closed',
  },
  {
    key: 'metricsKeys',
    env: 'SEGD_METRICS_KEYS',
    def: [],
    parse: keyList,
    doc: 'comma-separated bearer keys for `GET /metrics`; none = open to every caller',
  },
  {
    key: 'metricsCacheMs',
    env: 'SEGD_METRICS_CACHE_MS',
    def: 1000,
    parse: int(0, 600_000),
    doc: 'how long one collected `/metrics` text is served to every scrape (concurrent scrapes share one collection)',
  },
  {
    key: 'timelineEvents',
    env: 'SEGD_TIMELINE_EVENTS',
    def: 4096,
    parse: int(16, 1_000_000),
    doc: 'events the timeline ring holds (`GET /v1/admin/timeline`); the oldest are overwritten',
  },
  {
    key: 'loopMonitorMs',
    env: 'SEGD_LOOP_MONITOR_MS',
    def: 1,
    parse: int(0, 1000),
    doc: 'period of the event-loop delay monitor of every thread, ms (0 = off); each period wakes an idle thread',
  },
  {
    key: 'captureSample',
    env: 'SEGD_CAPTURE_SAMPLE',
    def: 0,
    parse: num(0, 1),
    doc: 'share of lookups (GET and batch) written to <data dir>/capture/ for `segd loadtest --replay` (0 = off); the files hold pseudonymous ids: personal data',
  },
  {
    key: 'captureFileBytes',
    env: 'SEGD_CAPTURE_FILE_BYTES',
    def: 64 * 1024 * 1024,
    parse: int(64 * 1024, 16 * 1024 ** 3),
    doc: 'a capture file rotates at this size',
  },
  {
    key: 'captureTotalBytes',
    env: 'SEGD_CAPTURE_TOTAL_BYTES',
    def: 1024 ** 3,
    parse: int(64 * 1024, 1024 ** 4),
    doc: 'capture files kept in all (split between workers); the oldest go first',
  },
  {
    key: 'captureKeepHours',
    env: 'SEGD_CAPTURE_KEEP_HOURS',
    def: 24,
    parse: num(0.01, 24 * 90),
    doc: 'capture files older than this are removed at the next rotation',
  },
] as Setting[];

export { BadValue };
