// GET /v1/admin/timeline on the real server: a push shows up as a commit, an
// admin change as a registry reload, the ring keeps only its last
// SEGD_TIMELINE_EVENTS, `since` filters, bad callers and bad `since` are
// refused; and `segd loadtest --admin-key` brings the events into its report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  startSegd,
  stopReport,
  runSegd,
  tempDir,
  feedLine,
  segmentsOf,
  waitFor,
  CLEAN_STOP,
  type Segd,
} from './helpers/server.js';
import type { MaintenanceAnswer } from '../src/http/deps.js';
import type { TimelineAnswer, TimelineEvent } from '../src/metrics/timeline.js';
import type { Results } from '../src/loadtest/runner.js';

const ADMIN = 'timeline-admin-key-0123456789';
const INGEST = 'timeline-ingest-key-0123456789';
const RING = 256;

let segd: Segd;
const dirs: string[] = [];

beforeAll(async () => {
  segd = await startSegd({
    env: {
      SEGD_ADMIN_KEYS: ADMIN,
      SEGD_INGEST_KEYS: INGEST,
      SEGD_WORKERS: '2',
      SEGD_TIMELINE_EVENTS: String(RING),
    },
  });
});
afterAll(async () => {
  if (segd) expect(await stopReport(segd)).toEqual(CLEAN_STOP);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const timeline = (query = '', key: string | null = ADMIN) =>
  fetch(`${segd.url}/v1/admin/timeline${query}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
const events = async (since: number): Promise<TimelineAnswer> => {
  const r = await timeline(`?since=${since}`);
  expect(r.status).toBe(200);
  return (await r.json()) as TimelineAnswer;
};
const push = (body: string) =>
  fetch(`${segd.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${INGEST}`, 'content-type': 'application/x-ndjson' },
    body,
  });

describe('GET /v1/admin/timeline', () => {
  it('records a commit with its records after an HTTP push', async () => {
    const before = Date.now();
    const r = await push(
      feedLine({ op: 'add', uid: 't1', segments: [1] }) + feedLine({ op: 'add', uid: 't2', segments: [2] }),
    );
    expect(r.status).toBe(200);
    const after = Date.now();
    const commits = (await events(before - 1)).events.filter((e) => e.kind === 'commit' && e.detail?.records === 2);
    expect(commits).toHaveLength(1);
    const c = commits[0]!;
    expect(c.thread).toBe('main');
    expect(c.t).toBeGreaterThanOrEqual(before - 1);
    expect(c.t + c.ms).toBeLessThanOrEqual(after + 1);
    expect(c.ms).toBeGreaterThan(0);
    expect(c.us).toBeGreaterThan(0);
    expect(typeof c.detail?.cpuMs).toBe('number');
  });

  it('records a registry reload after an admin change', async () => {
    const before = Date.now();
    const r = await fetch(`${segd.url}/v1/admin/segments/4242`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Timeline test', segtax: 4 }),
    });
    expect(r.status).toBe(201);
    const reloads = (await events(before - 1)).events.filter((e) => e.kind === 'registry-reload');
    expect(reloads).toHaveLength(1);
    expect(reloads[0]!.detail).toEqual({ change: 'putSegment', id: 4242 });
  });

  it('answers only events after `since`, oldest first', async () => {
    const all = (await events(0)).events;
    expect(all.length).toBeGreaterThan(1);
    for (let i = 1; i < all.length; i++) expect(all[i]!.t).toBeGreaterThanOrEqual(all[i - 1]!.t);
    const mid = all[Math.floor(all.length / 2)]!;
    const later = (await events(mid.t)).events;
    expect(later.every((e) => e.t > mid.t)).toBe(true);
    expect(later.some((e) => e.seq === mid.seq)).toBe(false);
    // A fractional since is a time too: just before the event includes it.
    expect((await events(mid.t - 0.001)).events.some((e) => e.seq === mid.seq)).toBe(true);
    expect((await events(Date.now() + 60_000)).events).toEqual([]);
  });

  it('keeps only the last SEGD_TIMELINE_EVENTS events', async () => {
    // Each scrape is an event (no scrape cache in tests).
    for (let i = 0; i < RING + 10; i++) expect((await fetch(`${segd.url}/metrics`)).status).toBe(200);
    const a = await events(0);
    expect(a.capacity).toBe(RING);
    expect(a.events.length).toBeLessThanOrEqual(RING);
    expect(a.recorded).toBeGreaterThan(RING + 10);
    expect(a.oldestSeq).toBeGreaterThan(a.recorded - RING);
    // The newest are kept: the last RING of every event recorded (a loaded
    // machine adds loop-delay events between the scrapes; workers' events
    // arrive later than they began, so by time they are not in seq order),
    // the latest scrapes among them.
    expect(a.events.map((e: TimelineEvent) => e.seq).sort((x, y) => x - y)).toEqual(
      Array.from({ length: RING }, (_, i) => a.recorded - RING + 1 + i),
    );
    expect(a.events.some((e: TimelineEvent) => e.kind === 'metrics-scrape')).toBe(true);
  });

  it('refuses callers without the admin key (401 UNAUTHORIZED)', async () => {
    for (const key of [null, INGEST, 'x'.repeat(30)]) {
      const r = await timeline('?since=0', key);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
  });

  it('refuses a malformed since (400 BAD_SINCE)', async () => {
    for (const since of ['abc', '-5', '1e3', '12abc', '0x10', '1.5.2']) {
      const r = await timeline(`?since=${encodeURIComponent(since)}`);
      expect(r.status, since).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('BAD_SINCE');
    }
    // No since: everything the ring holds.
    expect((await timeline()).status).toBe(200);
  });
});

const maintenance = (task: string, key: string | null = ADMIN, method = 'POST') =>
  fetch(`${segd.url}/v1/admin/maintenance/${task}`, {
    method,
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });

describe('POST /v1/admin/maintenance/:task', () => {
  it('sweep: runs a TTL sweep pass now that removes expired memberships, and marks it on the timeline', async () => {
    // Three seconds: expiries are whole seconds from the push's second, so a TTL of 1 can be over within a millisecond.
    expect((await push(feedLine({ op: 'add', uid: 'mt-expiring', segments: [{ id: 77, ttl: 3 }] }))).status).toBe(200);
    expect(await segmentsOf(segd, 'mt-expiring')).toEqual([77]);
    // Expired memberships are never answered; the sweep is what frees them.
    await waitFor(async () => (await segmentsOf(segd, 'mt-expiring')).length === 0);
    const before = Date.now();
    let answer: MaintenanceAnswer | undefined;
    // A pass runs once the earliest stored expiry (whole seconds) has passed.
    await waitFor(async () => {
      const r = await maintenance('sweep');
      expect(r.status).toBe(200);
      answer = (await r.json()) as MaintenanceAnswer;
      return answer.ran;
    });
    expect(answer!.task).toBe('sweep');
    expect(answer!.detail.removed).toBeGreaterThanOrEqual(1);
    expect(answer!.detail.scanned).toBeGreaterThanOrEqual(1);
    const sweeps = (await events(before - 1)).events.filter((e) => e.kind === 'sweep');
    expect(sweeps.some((e) => Number(e.detail?.removed ?? 0) >= 1)).toBe(true);
    // Nothing else can have expired: the next pass has nothing to do.
    const again = (await (await maintenance('sweep')).json()) as MaintenanceAnswer;
    expect(again.ran).toBe(false);
  });

  it('filter-save: writes the whole known-users filter now and marks it on the timeline', async () => {
    const before = Date.now();
    const r = await maintenance('filter-save');
    expect(r.status).toBe(200);
    const a = (await r.json()) as MaintenanceAnswer;
    expect(a).toMatchObject({ task: 'filter-save', ran: true });
    expect(a.detail.bytes).toBeGreaterThan(0);
    const saves = (await events(before - 1)).events.filter((e) => e.kind === 'filter-save');
    expect(saves.map((e) => e.detail?.bytes)).toContain(a.detail.bytes);
  });

  it('refuses unknown tasks (404), callers without the admin key (401) and other methods (405)', async () => {
    for (const task of ['nope', 'SWEEP', '..%2Fsweep', 'x'.repeat(300)]) {
      const r = await maintenance(task);
      expect(r.status, task).toBe(404);
      expect(((await r.json()) as { error: { message: string } }).error.message).toContain('sweep, filter-save');
    }
    for (const key of [null, INGEST]) expect((await maintenance('sweep', key)).status).toBe(401);
    expect((await maintenance('sweep', ADMIN, 'GET')).status).toBe(405);
  });
});

describe('segd loadtest --admin-key', () => {
  it('puts the run’s server events in results.json and the report, with an attribution of slow answers', async () => {
    const out = tempDir('segd-lt-timeline-');
    dirs.push(out);
    const r = await runSegd(
      [
        'loadtest',
        '--target',
        segd.url,
        '--scenario',
        'mixed',
        '--duration',
        '2',
        '--warmup',
        '0.5',
        '--rate',
        '500',
        '--ingest-rate',
        '2000',
        '--ingest-batch',
        '200',
        '--users',
        '1000',
        '--keys',
        '1000',
        '--out',
        out,
        '--quiet',
      ],
      { LOADTEST_ADMIN_KEY: ADMIN, LOADTEST_INGEST_KEY: INGEST },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    const run = res.results.find((x) => x.scenario === 'mixed' && x.target === 'segd')!;
    expect(run.status).toBe('ran');
    // The ingest stream's commits happened inside the measured window.
    const commits = run.events!.filter((e) => e.kind === 'commit');
    expect(commits.length).toBeGreaterThan(2);
    const from = run.figures!.startMs!;
    expect(commits.some((e) => e.t >= from && e.t <= from + run.figures!.seconds * 1000)).toBe(true);
    const a = run.attribution!;
    expect(a.thresholdUs).toBe(run.figures!.latencyUs.p99);
    expect(a.samples).toBeGreaterThan(0);
    expect(a.kinds.map((k) => k.kind)).toContain('commit');
    for (const k of a.kinds) expect(k.samples).toBeLessThanOrEqual(a.samples);
    expect(a.unexplained.samples).toBeLessThanOrEqual(a.samples);
    // The slow answers themselves stay out of results.json.
    expect((run.figures as { slow?: unknown }).slow).toBeUndefined();
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('Slow answers against server events');
    expect(html).toMatch(/<text [^>]*class="lane">commit<\/text>/);
    expect(r.stdout).toMatch(/answers slower than p99 .*unexplained \d+%/);
  }, 60_000);
});
