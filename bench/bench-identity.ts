// Identity micro-benchmarks, each against a baseline in the same run:
// `npm run bench:identity [-- --users N]`. Prints ns/op and ratios.
//
//   lookups    a lookup by partner uid (graph get + members get) vs by segd uid
//   consent    parsing a TCF string, a GPP string, a US Privacy string
//   writer     importing membership changes with the identity checks active
//              (suppressed users, merged uids) vs a store with none
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { SegmentLookup, nowSeconds } from '../src/lookup/segments.js';
import { IdGraph } from '../src/identity/graph.js';
import { partnerKey } from '../src/identity/graph-keys.js';
import { parseConsent } from '../src/privacy/consent.js';
import type { Change } from '../src/loader/records.js';
import { GVL, TCModel, TCString } from '@iabtcf/core';
import { GppModel } from '@iabgpp/cmpapi';
import { intFlag, parseFlags } from '../src/terminal/flags.js';

const flags = parseFlags('npm run bench:identity --', process.argv.slice(2), {
  users: 'users in the store (default 200000)',
  ops: 'operations per measurement (default 1M)',
});
const USERS = intFlag(flags, 'users', { min: 1000, max: 100_000_000, def: 200_000 });
const OPS = intFlag(flags, 'ops', { min: 1000, max: 1_000_000_000, def: 1_000_000 });

function bench(name: string, ops: number, fn: (i: number) => unknown): number {
  let sink = 0;
  for (let i = 0; i < ops / 10; i++) sink ^= fn(i) ? 1 : 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) sink ^= fn(i) ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  console.log(`${name.padEnd(52)} ${ns.toFixed(1).padStart(9)} ns/op${sink === 2 ? ' ' : ''}`);
  return ns;
}

const uid = (i: number) => `u${i.toString(36).padStart(8, '0')}xxxxxxxxxxxxx`;
const puid = (i: number) => `P-${(i * 7919).toString(16)}`;

function build(dir: string, suppress: number, merge: number) {
  const store = openStore(dir);
  const writer = new Writer(store);
  const now = nowSeconds();
  const batch = 20_000;
  for (let s = 0; s < USERS; s += batch) {
    const ch: Change[] = [];
    for (let i = s; i < Math.min(USERS, s + batch); i++) {
      ch.push({ op: 'add', uid: uid(i), ids: [1000 + (i % 50), 2000 + (i % 7)], ttls: [0, 0], ts: now });
      ch.push({ op: 'match', uid: uid(i), ids: [], ttls: [], ts: now, key: partnerKey('dsp', puid(i)) });
    }
    writer.apply(ch, now);
  }
  for (let i = 0; i < merge; i++) {
    const login = `login-${i}`;
    writer.apply(
      [
        { op: 'match', uid: uid(i * 2), ids: [], ttls: [], ts: now, key: `login\x1fl\x1f${login}` },
        { op: 'match', uid: uid(i * 2 + 1), ids: [], ttls: [], ts: now, key: `login\x1fl\x1f${login}` },
      ],
      now,
    );
  }
  for (let i = 0; i < suppress; i++) writer.suppressed.set(`gone-${i}`, Infinity);
  return { store, writer };
}

function importRate(writer: Writer, label: string): number {
  const now = nowSeconds();
  const n = 200_000;
  const ch: Change[] = [];
  for (let i = 0; i < n; i++) ch.push({ op: 'add', uid: uid(i % USERS), ids: [3000 + (i % 11)], ttls: [0], ts: now });
  const t0 = performance.now();
  for (let s = 0; s < n; s += 50_000) writer.apply(ch.slice(s, s + 50_000), now);
  const rate = n / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(52)} ${Math.round(rate).toLocaleString('en').padStart(9)} changes/s`);
  return rate;
}

const dirA = mkdtempSync(join(tmpdir(), 'segd-bench-id-'));
const dirB = mkdtempSync(join(tmpdir(), 'segd-bench-id-'));
try {
  console.log(
    `identity benchmarks: ${USERS.toLocaleString('en')} users, each with a partner id; ${OPS.toLocaleString('en')} ops per lookup figure`,
  );
  const plain = build(dirA, 0, 0);
  const lookup = new SegmentLookup(plain.store);
  const graph = new IdGraph(plain.store);
  const now = nowSeconds();
  const keys = Array.from({ length: 4096 }, (_, i) => (i * 2654435761) % USERS);
  const pkeys = keys.map((i) => partnerKey('dsp', puid(i)));
  const byUid = bench('lookup by segd uid (members get)', OPS, (i) => lookup.find(uid(keys[i & 4095]!), now) > 0);
  const byKey = bench(
    'lookup by partner uid (idmap get + members get)',
    OPS,
    (i) => lookup.find(graph.resolveKey(pkeys[i & 4095]!)!, now) > 0,
  );
  const byApi = bench('IdGraph.resolve({partner, puid}) + members get', OPS, (i) => {
    const k = keys[i & 4095]!;
    return lookup.find(graph.resolve({ partner: 'dsp', puid: puid(k) })!, now) > 0;
  });
  console.log(
    `  partner-uid lookup / uid lookup: ${(byKey / byUid).toFixed(2)}× (resolve API: ${(byApi / byUid).toFixed(2)}×)`,
  );

  const m = new TCModel(
    new GVL({
      gvlSpecificationVersion: 3,
      vendorListVersion: 1,
      tcfPolicyVersion: 5,
      lastUpdated: '2026-01-01T00:00:00Z',
      purposes: {},
      specialPurposes: {},
      features: {},
      specialFeatures: {},
      vendors: {},
      stacks: {},
    } as never),
  );
  m.cmpId = 10;
  m.cmpVersion = 1;
  for (const v of [1, 2, 755, 4242]) m.vendorConsents.set(v);
  for (const p of [1, 2, 3, 4, 7]) m.purposeConsents.set(p);
  const tcf = TCString.encode(m);
  const g = new GppModel();
  g.setFieldValue('usnat', 'SaleOptOutNotice', 1);
  g.setFieldValue('usnat', 'SaleOptOut', 2);
  const gpp = g.encode();
  const base = bench(
    'US Privacy parse (baseline: no library)',
    200_000,
    () => parseConsent({ usPrivacy: '1YNN' }).saleOptOut,
  );
  const t = bench(
    'TCF v2 parse (@iabtcf/core TCString.decode)',
    20_000,
    () => parseConsent({ gdpr: '1', gdprConsent: tcf }).tcf,
  );
  const gp = bench(
    'GPP parse (@iabgpp/cmpapi GppModel, usnat)',
    20_000,
    () => parseConsent({ gpp, gppSid: '7' }).saleOptOut,
  );
  console.log(
    `  TCF / USP: ${(t / base).toFixed(0)}×, GPP / USP: ${(gp / base).toFixed(0)}× — once per sync request, not on lookups`,
  );

  const withId = build(dirB, 10_000, 1_000);
  // Alternating rounds: the first import into a store is slower (page cache, map growth).
  const plainRates: number[] = [];
  const idRates: number[] = [];
  for (let round = 0; round < 3; round++) {
    plainRates.push(importRate(plain.writer, `import round ${round + 1}: no suppressions, no merges`));
    idRates.push(importRate(withId.writer, `import round ${round + 1}: 10,000 suppressed, 1,000 merged uids`));
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(`  import with identity checks / without (medians): ${(med(idRates) / med(plainRates)).toFixed(2)}×`);
  await plain.store.close();
  await withId.store.close();
} finally {
  rmSync(dirA, { recursive: true, force: true });
  rmSync(dirB, { recursive: true, force: true });
}
