// `segd loadtest --scenario tail` against a real segd fed by a real
// nats-server: every companion runs beside the lookups and reports what it
// did — the push and NATS feeds with their freshness probes, a snapshot swap
// through the inbox, a TTL sweep of memberships pushed to expire, filter saves
// cookie syncs, and deliveries to a webhook sink — and a missing prerequisite
// is a usage error. Speed is
// never asserted here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { runSegd, startSegd, stopReport, CLEAN_STOP, tempDir, type Segd } from './helpers/server.js';
import { freePort, startNats, type Nats } from './helpers/nats.js';
import type { Results } from '../src/loadtest/runner.js';
import type { FeedFigures } from '../src/loadtest/feed-stream.js';

const USERS = 5000;
const SEED = 23;
const INGEST = 'tail-ingest-key-0123456789';
const ADMIN = 'tail-admin-key-0123456789';

let segd: Segd;
let nats: Nats;
let work: string;
let inbox: string;

beforeAll(async () => {
  work = tempDir('segd-lt-tail-');
  nats = await startNats(await freePort(), join(work, 'nats'));
  const nc = await connect({ servers: nats.url });
  await (await jetstreamManager(nc)).streams.add({ name: 'SEGMENTS', subjects: ['segments.>'] });
  await nc.close();
  const feed = join(work, 'feed.ndjson');
  expect(
    (await runSegd(['gen', '--users', String(USERS), '--seed', String(SEED), '--out', feed, '--quiet'])).code,
  ).toBe(0);
  const cfg = join(work, 'segd.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      partners: [{ id: 'lt', name: 'Load test', sync: { url: 'https://lt.example/m?u=${UID}', type: 'pixel' } }],
    }),
  );
  const dataDir = join(work, 'data');
  inbox = join(dataDir, 'inbox');
  mkdirSync(inbox, { recursive: true });
  segd = await startSegd({
    dataDir,
    env: {
      SEGD_CONFIG: cfg,
      SEGD_SEED: feed,
      SEGD_INBOX: inbox,
      SEGD_INBOX_POLL_MS: '100',
      SEGD_INGEST_KEYS: INGEST,
      SEGD_ADMIN_KEYS: ADMIN,
      SEGD_NATS_URL: nats.url,
      // The sweep scenario asks for its pass: the timed one must not take its work first.
      SEGD_SWEEP_MS: '3600000',
    },
  });
});

afterAll(async () => {
  // Everything stops before the report is judged, so a failed stop leaves nothing running.
  const report = segd ? await stopReport(segd) : CLEAN_STOP;
  await nats?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  expect(report).toEqual(CLEAN_STOP);
});

function loadtest(out: string, extra: string[], env: Record<string, string> = {}) {
  return runSegd(
    [
      'loadtest',
      '--target',
      segd.url,
      '--rate',
      '300',
      '--duration',
      '2',
      '--warmup',
      '0.5',
      '--connections',
      '4',
      '--users',
      String(USERS),
      '--seed',
      String(SEED),
      '--keys',
      '2000',
      '--out',
      out,
      '--quiet',
      ...extra,
    ],
    env,
  );
}

describe('segd loadtest --scenario tail', () => {
  it('runs lookups beside each companion and reports what the companion did', async () => {
    const out = join(work, 'out');
    const r = await loadtest(out, [
      '--scenario',
      'tail',
      '--ingest-rate',
      '2000',
      '--ingest-batch',
      '100',
      '--probe-ms',
      '100',
      '--nats-url',
      nats.url,
      '--inbox',
      inbox,
      '--sweep-memberships',
      '3000',
      '--sync-rate',
      '200',
      '--partner',
      'lt',
      '--ingest-key',
      INGEST,
      '--admin-key',
      ADMIN,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    const by = (name: string) => res.results.find((x) => x.scenario === name && x.target === 'segd')!;
    expect(res.results.filter((x) => x.target === 'segd').map((x) => [x.scenario, x.status])).toEqual(
      ['lookup', 'mixed', 'nats', 'swap', 'sweep', 'filter-save', 'syncs', 'outbound'].map((n) => [n, 'ran']),
    );
    for (const x of res.results) expect(x.figures!.errorCount, x.scenario).toBe(0);
    // Every segd run has its hello-world control.
    expect(res.results.filter((x) => x.control).length).toBe(8);
    expect(by('lookup').background).toBeUndefined();

    for (const name of ['mixed', 'nats']) {
      const f = by(name).background!.figures as FeedFigures;
      expect(f.transport).toBe(name === 'mixed' ? 'HTTP push' : 'NATS JetStream');
      expect(f.batch.errorCount, name).toBe(0);
      expect(f.acked, name).toBeGreaterThan(1000);
      // Probes were acked, then seen by a lookup; none got lost.
      expect(f.freshness!.requests, name).toBeGreaterThan(5);
      expect(f.freshness!.errorCount, name).toBe(0);
      expect(f.freshness!.latencyUs.p50).toBeGreaterThan(0);
    }
    // What segd applied from the push feed is what the feed sent, probes included.
    const push = by('mixed').background!.figures as FeedFigures;
    expect(push.applied).toBeGreaterThanOrEqual(push.acked);
    expect(by('mixed').server!.diff['segd_loader_records_total{source="push",outcome="applied"}']).toBe(push.applied);
    expect(by('nats').server!.diff['segd_loader_records_total{source="nats",outcome="applied"}']).toBeGreaterThan(1000);

    const swap = by('swap').background!;
    expect(swap.warning).toBeUndefined();
    expect((swap.figures as { swapMs: number }).swapMs).toBeGreaterThan(0);
    expect(readdirSync(inbox).filter((n) => n.includes('loadtest-swap'))).toEqual([]);

    const sweep = by('sweep').background!;
    expect(sweep.warning).toBeUndefined();
    expect((sweep.figures as { detail: { removed: number } }).detail.removed).toBeGreaterThanOrEqual(3000);

    const saves = by('filter-save').background!.figures as { saves: number; bytes: number };
    expect(saves.saves).toBeGreaterThanOrEqual(2);
    expect(saves.bytes).toBeGreaterThan(0);

    const syncs = by('syncs').background!.figures as { requests: number; errorCount: number };
    expect(syncs.requests).toBeGreaterThan(300);
    expect(syncs.errorCount).toBe(0);

    // The feed's changes reached the sink; the destination and its partner are gone afterwards.
    const outbound = by('outbound').background!;
    // (A busy machine may keep the feed below its rate: that warning is the feed's, not the delivery's.)
    expect(outbound.warning ?? '').not.toMatch(/nothing was delivered|polling/);
    expect((outbound.figures as { deliveredChanges: number }).deliveredChanges).toBeGreaterThan(0);
    const left = await fetch(`${segd.url}/v1/admin/destinations`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    expect(((await left.json()) as { destinations: unknown[] }).destinations).toEqual([]);

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const label of ['feed', 'snapshot swap', 'TTL sweep', 'filter saves', 'cookie syncs', 'outbound'])
      expect(html).toContain(`<th>${label}</th>`);
    expect(r.stdout).toMatch(/fresh p99/);
  }, 120_000);

  it('pixel: open-loop /px hits with cookies, every hit stored by the writer, probes seen by a lookup', async () => {
    const out = join(work, 'out-pixel');
    const r = await loadtest(out, ['--scenario', 'pixel', '--probe-ms', '100', '--admin-key', ADMIN]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    const run = res.results.find((x) => x.scenario === 'pixel' && x.target === 'segd')!;
    expect(run.status).toBe('ran');
    expect(run.figures!.errorCount).toBe(0);
    expect(run.server!.diff['segd_http_requests_total{route="insights",status="204"}']).toBeGreaterThan(300);
    const f = run.background!.figures as {
      stored: number;
      refused: number;
      lost: number;
      visibleUs: { p50: number };
      neverSeen: number;
    };
    expect(run.background!.warning).toBeUndefined();
    // The probe's window lies inside the run's: the writer stored at least the hits answered in it, none refused or lost.
    expect(f.stored).toBeGreaterThan(300);
    expect([f.refused, f.lost, f.neverSeen]).toEqual([0, 0, 0]);
    expect(f.visibleUs.p50).toBeGreaterThan(0);
    expect(run.server!.diff['segd_queued_writes_total{queue="exposures",outcome="stored"}']).toBeGreaterThan(300);
  }, 60_000);

  it('refuses a tail scenario without what it needs (exit 2, says which flag)', async () => {
    const cases: Array<[string, string[], RegExp]> = [
      ['swap', [], /--inbox/],
      ['nats', [], /--nats-url/],
      ['sweep', ['--ingest-key', INGEST], /--admin-key/],
      ['filter-save', [], /--admin-key/],
    ];
    for (const [scenario, extra, why] of cases) {
      const r = await loadtest(join(work, `bad-${scenario}`), ['--scenario', scenario, ...extra]);
      expect(r.code, scenario).toBe(2);
      expect(r.stderr, scenario).toMatch(why);
    }
  });

  it('fails the syncs scenario up front when the partner has no sync template', async () => {
    const out = join(work, 'out-nosync');
    const r = await loadtest(out, ['--scenario', 'syncs', '--partner', 'nobody']);
    expect(r.code).toBe(1);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    expect(res.results[0]!.status).toBe('failed');
    expect(res.results[0]!.reason).toMatch(/no sync template for --partner nobody/);
  });
});
