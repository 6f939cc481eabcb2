// The load-test scenarios: which requests each one sends (built once, before
// the run, from the sampled keys) and which answers count as success.
// The tail scenarios (`mixed`, `nats`, `swap`, `sweep`, `filter-save`, `syncs`, `outbound`)
// are `lookup` with something beside it (src/loadtest/background.ts); `ws` is
// driven by src/loadtest/drive-ws.ts over one WebSocket per connection.
import type { KeyMix } from './key-mix.js';
import { prng } from './key-mix.js';
import { bidRequest } from './openrtb.js';
import { cookieUid } from './pixel-probe.js';

export interface HttpReq {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

export interface ScenarioInput {
  keys: KeyMix;
  /** Keys per batch request. */
  batchSize: number;
  /** Partner id for `sync`, and the bearer key for `openrtb` and `ws`. */
  partner: string;
  partnerKey: string;
  /** The target's segd cookie name (SEGD_COOKIE_NAME), for `pixel`. */
  cookieName: string;
  seed: number;
}

export type ScenarioName =
  | 'lookup'
  | 'batch'
  | 'kv'
  | 'openrtb'
  | 'sync'
  | 'pixel'
  | 'ws'
  | 'mixed'
  | 'nats'
  | 'swap'
  | 'sweep'
  | 'filter-save'
  | 'syncs'
  | 'outbound'
  | 'replay';

export interface Scenario {
  name: ScenarioName;
  what: string;
  /** Lookups each request asks for (batch: its size), for keys/s. */
  keysPerRequest: (i: ScenarioInput) => number;
  /** HTTP requests, cycled; `ws` has none (its frames are built by its driver). */
  requests: (i: ScenarioInput) => HttpReq[];
  /** Success is 200 ≤ status < okBelow (a bound the open-loop client process can take). */
  okBelow: number;
  /** Endpoints other teams are still building: a 404 from the target skips the scenario. */
  skipOn404: boolean;
  /** Whether the compare baselines (hello-world, Fastify + Redis) can answer these requests. */
  comparable: boolean;
}

const q = encodeURIComponent;

function lookups(i: ScenarioInput, suffix = ''): HttpReq[] {
  return i.keys.uids.map((uid) => ({ method: 'GET', path: `/v1/segments?uid=${q(uid)}${suffix}`, headers: {} }));
}

const bearer = (key: string): Record<string, string> => (key ? { Authorization: `Bearer ${key}` } : {});

export const SCENARIOS: Record<ScenarioName, Scenario> = {
  lookup: {
    name: 'lookup',
    what: 'GET /v1/segments?uid=… (JSON)',
    keysPerRequest: () => 1,
    requests: (i) => lookups(i),
    okBelow: 300,
    skipOn404: false,
    comparable: true,
  },
  kv: {
    name: 'kv',
    what: 'GET /v1/segments?uid=…&format=kv (ad-server key-values)',
    keysPerRequest: () => 1,
    requests: (i) => lookups(i, '&format=kv'),
    okBelow: 300,
    skipOn404: false,
    comparable: true,
  },
  batch: {
    name: 'batch',
    what: 'POST /v1/segments:batch {"uids":[…]} (JSON)',
    keysPerRequest: (i) => i.batchSize,
    requests: (i) => {
      const out: HttpReq[] = [];
      const n = i.keys.uids.length;
      // Each batch takes the next batchSize draws, so batches differ as the draws do.
      const count = Math.max(1, Math.floor(n / i.batchSize));
      for (let b = 0; b < count; b++) {
        const uids: string[] = [];
        for (let k = 0; k < i.batchSize; k++) uids.push(i.keys.uids[(b * i.batchSize + k) % n]!);
        out.push({
          method: 'POST',
          path: '/v1/segments:batch',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ uids }),
        });
      }
      return out;
    },
    okBelow: 300,
    skipOn404: false,
    comparable: true,
  },
  openrtb: {
    name: 'openrtb',
    what: 'POST /openrtb2/enrich (OpenRTB 2.6 BidRequest, 2–3 KB)',
    keysPerRequest: () => 1,
    requests: (i) => {
      const r = prng(i.seed ^ 0x0b1d);
      // Bodies are big: a few thousand distinct ones cycle without a repeated key in sight.
      return i.keys.uids.slice(0, 5000).map((uid, n) => ({
        method: 'POST',
        path: '/openrtb2/enrich',
        headers: { 'Content-Type': 'application/json', 'x-openrtb-version': '2.6', ...bearer(i.partnerKey) },
        body: JSON.stringify(bidRequest(uid, n, r)),
      }));
    },
    okBelow: 300,
    skipOn404: true,
    comparable: false,
  },
  sync: {
    name: 'sync',
    what: 'GET /sync/in?partner=P&puid=X (cookie sync pixel)',
    keysPerRequest: () => 1,
    requests: (i) =>
      i.keys.uids.map((uid) => ({
        method: 'GET',
        path: `/sync/in?partner=${q(i.partner)}&puid=${q(uid)}`,
        headers: {},
      })),
    // A pixel (200/204) or a redirect to the next partner (302) are both answers.
    okBelow: 400,
    skipOn404: true,
    comparable: false,
  },
  pixel: {
    name: 'pixel',
    what: 'GET /px?c=…&e=imp&f=n with the segd cookie (campaign exposure pixel: a write per hit, batched to the writer)',
    keysPerRequest: () => 1,
    // Each key is a browser with its own cookie: Zipf-skewed keys are browsers seen again.
    requests: (i) =>
      i.keys.uids.map((uid) => ({
        method: 'GET',
        path: `/px?c=lt-${i.seed}&e=imp&f=n`,
        headers: { Cookie: `${i.cookieName}=${cookieUid(uid)}` },
      })),
    okBelow: 300,
    skipOn404: true,
    comparable: false,
  },
  ws: {
    name: 'ws',
    what: 'WebSocket /v1/ws, msgpack {id, uid} → {id, segments}, pipelined',
    keysPerRequest: () => 1,
    requests: () => [],
    okBelow: 201,
    skipOn404: true,
    comparable: false,
  },
  mixed: beside('mixed', 'a feed POSTs /v1/ingest'),
  nats: beside('nats', 'a feed is published to NATS JetStream'),
  swap: beside('swap', 'a snapshot of the whole data set is loaded and swapped in'),
  sweep: beside('sweep', 'a TTL sweep removes expired memberships'),
  'filter-save': beside('filter-save', 'the known-users filter is saved, once a second'),
  syncs: beside('syncs', 'cookie syncs write id links'),
  outbound: beside('outbound', 'segd delivers the changes a feed makes to a webhook sink'),
  // Its requests and their times come from capture files (replay.ts), not from the key mix.
  replay: {
    name: 'replay',
    what: 'captured lookups (GET and batch) replayed with their captured timing',
    keysPerRequest: () => 1,
    requests: () => [],
    okBelow: 300,
    skipOn404: false,
    comparable: false,
  },
};

/** Lookups while something else happens in segd: what `what` says runs beside them (background.ts). */
function beside(name: ScenarioName, what: string): Scenario {
  return {
    name,
    what: `GET /v1/segments?uid=… while ${what}`,
    keysPerRequest: () => 1,
    requests: (i) => lookups(i),
    okBelow: 300,
    skipOn404: false,
    comparable: false,
  };
}

export const SCENARIO_NAMES = Object.keys(SCENARIOS) as ScenarioName[];
/** `--scenario all`: every request kind (mixed stands for the tail set). */
export const ALL_SCENARIOS: ScenarioName[] = ['lookup', 'kv', 'batch', 'mixed', 'openrtb', 'sync', 'ws'];
/** `--scenario tail`: lookups alone, then with each companion the tail-latency targets name. */
export const TAIL_SCENARIOS: ScenarioName[] = [
  'lookup',
  'mixed',
  'nats',
  'swap',
  'sweep',
  'filter-save',
  'syncs',
  'outbound',
];
