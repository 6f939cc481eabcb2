// A segd with partners, a taxonomy and a few users, for the activation tests
// (licensing, enrichment, WebSocket): the licensing example of docs/api.md.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSegd, tempDir, feedLine, type Segd } from './server.js';

export const ADMIN_KEY = 'admin-key-0123456789abcdef';
export const KEYS = {
  dsp1: 'dsp1-secret-key-0123456789',
  dsp2: 'dsp2-secret-key-0123456789',
  all: 'all-seeing-key-0123456789',
};
export const DMP_DOMAIN = 'dmp.example';
export const GVL_ID = 777;

export const PARTNERS = [
  { id: 'dsp1', name: 'DSP One', keys: [KEYS.dsp1] },
  { id: 'dsp2', name: 'DSP Two', keys: [KEYS.dsp2], segments: [4002] },
  { id: 'all', name: 'In-house ad server', keys: [KEYS.all], segments: '*' },
];
export const SEGMENTS = [
  { id: 1001, name: 'Auto intenders', provider: 'segd', segtax: 4, partners: ['dsp1'] },
  { id: 1002, name: 'Sports fans', provider: 'segd', segtax: 4, partners: ['dsp1', 'dsp2'] },
  { id: 2001, name: 'Frequent travellers (custom)', provider: 'segd', segtax: 600, partners: '*' },
  {
    id: 3005,
    name: 'In-market: mortgages',
    provider: 'acme-data',
    segtax: 4,
    dataType: 'third',
    cpm: 1.2,
    partners: ['dsp2'],
  },
];
/** rtb-user-1 holds every kind: per-partner, shared, open, third-party, and 4002 (licensed to dsp2, not in the taxonomy). */
export const USERS: Record<string, number[]> = {
  'rtb-user-1': [1001, 1002, 2001, 3005, 4002],
  'only-dsp1': [1001],
  // Big answers (≈6 KB each) with tiny requests: fills a socket's buffers fast (backpressure tests).
  'big-user': Array.from({ length: 3000 }, (_, i) => 100_000 + i),
  // Known to the ID graph by a dsp1 uid, an ID5 id and a device id (MATCHES).
  'graph-user': [1001, 2001],
};
export const GRAPH_IDS = {
  dsp1Uid: 'dsp1-cookie-9',
  id5: 'ID5*graph-user',
  ifa: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
};
const MATCHES: Array<Record<string, unknown>> = [
  { op: 'match', partner: 'dsp1', puid: GRAPH_IDS.dsp1Uid, uid: 'graph-user' },
  { op: 'match', eid_source: 'id5-sync.com', eid: GRAPH_IDS.id5, uid: 'graph-user' },
  { op: 'match', ifa: GRAPH_IDS.ifa, uid: 'graph-user' },
];

/** What a test may seed instead of the defaults above. */
export interface ActivationData {
  users?: Record<string, number[]>;
  matches?: Array<Record<string, unknown>>;
  partners?: object[];
}

export async function startActivation(env: Record<string, string> = {}, data: ActivationData = {}): Promise<Segd> {
  const { users = USERS, matches = MATCHES, partners = PARTNERS } = data;
  const dir = tempDir('segd-activation-');
  const seed = join(dir, 'seed.ndjson');
  writeFileSync(
    seed,
    [
      ...Object.entries(users).map(([uid, segments]) => feedLine({ op: 'add', uid, segments })),
      ...matches.map(feedLine),
    ].join(''),
  );
  const config = join(dir, 'segd.json');
  writeFileSync(
    config,
    JSON.stringify({
      adminKeys: [ADMIN_KEY],
      dmpDomain: DMP_DOMAIN,
      gvlVendorId: GVL_ID,
      partners,
      segments: SEGMENTS,
    }),
  );
  return startSegd({ env: { SEGD_SEED: seed, SEGD_CONFIG: config, SEGD_LOOKUP_AUTH: 'required', ...env } });
}

export const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });
