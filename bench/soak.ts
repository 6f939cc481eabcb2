// Soak: `npm run bench:soak [-- --minutes 10 --users 200000 --rate 2000 --feed 5000 --hostile 0.05 --out soak.html]`.
//
// Mixed traffic for a long stretch against one real segd (2 workers): lookups,
// batches, OpenRTB enrichment, cookie syncs and WebSocket lookups, with a share
// of hostile requests (deep nesting, bad bytes, lying msgpack, forged cookies,
// bodies that never arrive, poison feed records) and an HTTP push feed at a
// steady rate. Every 10 s it samples the process: RSS, V8 heap, open files,
// LMDB reader slots. The verdict: zero 5xx and dropped connections on good
// requests, no 5xx on hostile ones, and every resource flat (the last minute's
// level within a bound of the level after warm-up). Writes an HTML report
// with the resource curves as SVG.
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pack } from 'msgpackr';
import WebSocket from 'ws';
import { intFlag, numFlag, parseFlags } from '../src/terminal/flags.js';
import { FeedStream, pushSender } from '../src/loadtest/feed-stream.js';
import { parseCounters } from '../src/loadtest/metrics-scrape.js';
import { prng } from '../src/loadtest/key-mix.js';
import { uidFor, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { installCleanupHandlers, stopChild, tempDirs } from '../src/loadtest/processes.js';
import { startSeededSegd } from './seeded-segd.js';

const flags = parseFlags('npm run bench:soak --', process.argv.slice(2), {
  minutes: 'minutes of traffic (default 10)',
  users: 'users in the data set (default 200000)',
  rate: 'requests/s (default 2000)',
  feed: 'pushed feed records/s (default 5000)',
  hostile: 'share of hostile requests, 0..1 (default 0.05)',
  out: 'the HTML report (default soak-report.html)',
});
const MINUTES = numFlag(flags, 'minutes', { min: 0.1, max: 7 * 24 * 60, def: 10 });
const USERS = intFlag(flags, 'users', { min: 1000, max: 100_000_000, def: 200_000 });
const RATE = intFlag(flags, 'rate', { min: 1, max: 1_000_000, def: 2_000 });
const FEED = intFlag(flags, 'feed', { min: 0, max: 10_000_000, def: 5_000 });
const HOSTILE = numFlag(flags, 'hostile', { min: 0, max: 1, def: 0.05 });
const OUT = resolve(typeof flags.out === 'string' ? flags.out : 'soak-report.html');
const SAMPLE_MS = 10_000;
const ADMIN = 'soak-admin-key-0123456789';
const INGEST = 'soak-ingest-key-0123456789';
const PARTNER = 'soak-partner-key-0123456789';

const dir = mkdtempSync(join(tmpdir(), 'segd-soak-'));
tempDirs.add(dir);
const say = (s: string) => process.stderr.write(`soak: ${s}\n`);
installCleanupHandlers(say);

interface Tally {
  sent: number;
  byStatus: Record<string, number>;
  dropped: number;
}
const good: Tally = { sent: 0, byStatus: {}, dropped: 0 };
const hostile: Tally = { sent: 0, byStatus: {}, dropped: 0 };
const count = (t: Tally, status: number | 'dropped') => {
  t.sent++;
  if (status === 'dropped') t.dropped++;
  else t.byStatus[status] = (t.byStatus[status] ?? 0) + 1;
};

interface Sample {
  t: number;
  rssMb: number;
  /** Anonymous memory (heaps, buffers): what a leak grows. RSS also counts the LMDB pages the map has touched, which grow with the data. */
  anonMb: number;
  /** Open descriptors that are not sockets (files, pipes); sockets follow the clients' connection pools and are reported apart. */
  files: number;
  sockets: number;
  heapMb: number;
  fds: number;
  readers: number | null;
  rps: number;
}

const deep = (d: number) => '['.repeat(d) + ']'.repeat(d);

async function main() {
  writeFileSync(
    join(dir, 'segd.json'),
    JSON.stringify({
      adminKeys: [ADMIN],
      partners: [
        {
          id: 'dspa',
          name: 'A',
          keys: [PARTNER],
          segments: '*',
          sync: { url: 'https://a.example/s?u=${UID}', type: 'redirect' },
        },
      ],
    }),
  );
  const server = await startSeededSegd({
    dir,
    users: USERS,
    seed: DEFAULT_SYNTHETIC.seed,
    workers: 2,
    host: '127.0.0.1',
    say,
    env: {
      SEGD_INGEST_KEYS: INGEST,
      SEGD_CONFIG: join(dir, 'segd.json'),
      SEGD_ENRICH_BUDGET_MS: '1000',
      // Slow bodies are dropped after 2 s here, so the slow-loris share comes and goes within the run.
      SEGD_BODY_TIMEOUT_MS: '2000',
    },
  });
  const { port, proc: segd } = server.segd;
  say(
    `segd ready on ${port}; ${MINUTES} min of ${RATE} req/s (${Math.round(HOSTILE * 100)}% hostile) and a ${FEED} records/s feed`,
  );
  const origin = `http://127.0.0.1:${port}`;
  say(
    `segd ready on ${port}; ${MINUTES} min of ${RATE} req/s (${Math.round(HOSTILE * 100)}% hostile) and a ${FEED} records/s feed`,
  );

  const rnd = prng(7);
  const known = () => uidFor(DEFAULT_SYNTHETIC.seed, Math.floor(rnd() * USERS));
  const key = () => (rnd() < 0.6 ? known() : `unknown-${Math.floor(rnd() * 1e9)}`);
  const auth = { Authorization: `Bearer ${PARTNER}` };
  const json = { 'Content-Type': 'application/json' };

  const req = async (t: Tally, path: string, init: RequestInit = {}) => {
    try {
      const r = await fetch(`${origin}${path}`, { ...init, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
      await r.arrayBuffer();
      count(t, r.status);
    } catch {
      count(t, 'dropped');
    }
  };
  const wsLookup = (t: Tally, frames: Buffer[]) =>
    new Promise<void>((done) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, { headers: auth });
      let settled = false;
      const end = (status: number | 'dropped') => {
        if (settled) return;
        settled = true;
        count(t, status);
        ws.terminate();
        done();
      };
      ws.once('open', () => {
        for (const f of frames) ws.send(f);
        ws.send(pack({ id: 1, uid: key() }));
      });
      ws.on('message', () => end(200));
      ws.once('close', () => end(t === hostile ? 200 : 'dropped'));
      ws.once('error', () => end(t === hostile ? 200 : 'dropped'));
      setTimeout(() => end('dropped'), 10_000).unref();
    });
  const slowBody = () =>
    new Promise<void>((done) => {
      // Headers with a Content-Length and never the body: segd must drop it on its own deadline.
      const s = connect(port, '127.0.0.1', () =>
        s.write(
          'POST /sync/out HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
        ),
      );
      let out = '';
      s.setEncoding('utf8').on('data', (d: string) => (out += d));
      s.once('close', () => {
        const m = /^HTTP\/1\.1 (\d{3})/.exec(out);
        count(hostile, m ? Number(m[1]) : 408);
        done();
      });
      s.once('error', () => undefined);
      setTimeout(() => s.destroy(), 15_000).unref();
    });

  const goodKinds: Array<() => Promise<void>> = [
    ...Array<() => Promise<void>>(12).fill(() =>
      req(good, `/v1/segments?uid=${encodeURIComponent(key())}`, { headers: auth }),
    ),
    () =>
      req(good, '/v1/segments:batch', {
        method: 'POST',
        headers: { ...auth, ...json },
        body: JSON.stringify({ uids: Array.from({ length: 50 }, key) }),
      }),
    () =>
      req(good, '/openrtb2/enrich', {
        method: 'POST',
        headers: { ...auth, ...json },
        body: JSON.stringify({
          id: 'r',
          tmax: 200,
          imp: [{ id: '1', banner: { w: 300, h: 250 } }],
          user: { id: key() },
          regs: { gdpr: 0 },
        }),
      }),
    () => req(good, '/sync/out', { method: 'POST', headers: json, body: '{"partners":"*","gdpr":0}' }),
    () => req(good, `/sync/in?partner=dspa&puid=p${Math.floor(rnd() * 1e9)}&gdpr=0&f=n`),
    () => wsLookup(good, []),
  ];
  const hostileKinds: Array<() => Promise<void>> = [
    () =>
      req(hostile, '/sync/out', { method: 'POST', headers: json, body: `{"partners":"*","gpp_sid":${deep(32_000)}}` }),
    () =>
      req(hostile, '/openrtb2/enrich', {
        method: 'POST',
        headers: { ...auth, ...json },
        body: `{"id":"r","imp":[],"user":{"id":"x","ext":${deep(20_000)}}}`,
      }),
    () =>
      req(hostile, '/openrtb2/enrich', {
        method: 'POST',
        headers: { ...auth, ...json },
        body: '{"id":"r","imp":[],"user":{"id":"x"},"regs":{"gdpr":"1"}}',
      }),
    () =>
      req(hostile, '/v1/segments:batch', {
        method: 'POST',
        headers: { 'Content-Type': 'application/msgpack' },
        body: Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff]),
      }),
    () => req(hostile, '/v1/segments?uid=%ff%fe%00' + 'a'.repeat(3000)),
    () =>
      req(hostile, '/v1/ingest', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-ndjson', Authorization: `Bearer ${INGEST}` },
        body: `{"op":${deep(50_000)},"uid":"x"}\n{"op":"add","uid":"soak-ok","segments":[1]}\n`,
      }),
    () => req(hostile, '/optout', { headers: { Cookie: `segd=forged-${Math.floor(rnd() * 1e12)}` } }),
    () =>
      req(hostile, `/v1/users?uid=${known()}`, {
        method: 'DELETE',
        headers: { Authorization: 'Bearer wrong-key-0123456789' },
      }),
    () => wsLookup(hostile, [Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff]), Buffer.from('not msgpack')]),
    () => slowBody(),
  ];

  const ingest = new FeedStream(
    {
      origin,
      rate: FEED,
      batch: Math.max(1, Math.round(FEED / 10)),
      inflight: 1,
      segment: 9_999,
      ttlS: 60,
      seed: DEFAULT_SYNTHETIC.seed,
      users: USERS,
      probeEveryMs: 0,
    },
    pushSender(origin, INGEST),
  );
  await ingest.prepare();
  ingest.start();

  const samples: Sample[] = [];
  const fdsOf = (pid: number) => {
    let sockets = 0;
    let files = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++;
        else files++;
      } catch {
        // closed meanwhile
      }
    }
    return { sockets, files };
  };
  let lastSent = 0;
  const t0 = performance.now();
  const sample = async () => {
    const text = await (await fetch(`${origin}/metrics`)).text();
    const m = parseCounters(text);
    const status = readFileSync(`/proc/${segd.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const anonKb = Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const fds = fdsOf(segd.pid!);
    const heap = [...m]
      .filter(([k]) => k.startsWith('segd_nodejs_heap_size_used_bytes'))
      .reduce((a, [, v]) => a + v, 0);
    const readers = m.get('segd_lmdb_readers') ?? null;
    const sent = good.sent + hostile.sent;
    const s: Sample = {
      t: Math.round((performance.now() - t0) / 1000),
      rssMb: rssKb / 1024,
      anonMb: anonKb / 1024,
      heapMb: heap / 2 ** 20,
      fds: fds.files + fds.sockets,
      files: fds.files,
      sockets: fds.sockets,
      readers,
      rps: (sent - lastSent) / (SAMPLE_MS / 1000),
    };
    lastSent = sent;
    samples.push(s);
    say(
      `t=${s.t}s rss ${s.rssMb.toFixed(0)} MB (anon ${s.anonMb.toFixed(0)}) heap ${s.heapMb.toFixed(1)} MB files ${s.files} sockets ${s.sockets} readers ${s.readers ?? 'n/a'} ${s.rps.toFixed(0)} req/s; good ${good.sent} (5xx ${fives(good)}, dropped ${good.dropped}), hostile ${hostile.sent} (5xx ${fives(hostile)})`,
    );
  };
  await sample();
  const sampler = setInterval(
    () => void sample().catch((err: unknown) => say(`sample failed: ${String(err)}`)),
    SAMPLE_MS,
  );

  // Open loop: one request every 1/RATE s, whatever the answers take (bounded in flight).
  const end = t0 + MINUTES * 60_000;
  let inFlight = 0;
  let next = performance.now();
  while (performance.now() < end) {
    next += 1000 / RATE;
    const wait = next - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    if (inFlight > 2_000) continue;
    const kinds = rnd() < HOSTILE ? hostileKinds : goodKinds;
    inFlight++;
    void kinds[Math.floor(rnd() * kinds.length)]!().finally(() => inFlight--);
  }
  while (inFlight > 0) await new Promise((r) => setTimeout(r, 50));
  clearInterval(sampler);
  await sample();
  const feed = await ingest.stop();
  await stopChild(segd, 30_000);

  // Flat: the level over the last minute against the level after the first minute of warm-up.
  const after = (s: number) => samples.filter((x) => x.t >= s);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const warm = after(60).slice(0, 6);
  const last = samples.slice(-6);
  const growth = (f: (s: Sample) => number) => med(last.map(f)) - med(warm.map(f));
  const checks = [
    {
      what: 'anonymous memory (RssAnon)',
      grew: growth((s) => s.anonMb),
      unit: 'MB',
      limit: Math.max(32, med(warm.map((s) => s.anonMb)) * 0.1),
    },
    {
      what: 'V8 heap (all threads)',
      grew: growth((s) => s.heapMb),
      unit: 'MB',
      limit: Math.max(16, med(warm.map((s) => s.heapMb)) * 0.15),
    },
    { what: 'open files and pipes (sockets apart)', grew: growth((s) => s.files), unit: '', limit: 4 },
    ...(samples[0]!.readers !== null
      ? [{ what: 'LMDB readers', grew: growth((s) => s.readers ?? 0), unit: '', limit: 2 }]
      : []),
  ];
  const verdicts = [
    {
      what: 'good requests: no 5xx, none dropped',
      ok: fives(good) === 0 && good.dropped === 0,
      detail: `${good.sent} sent, ${fives(good)} 5xx, ${good.dropped} dropped`,
    },
    {
      what: 'hostile requests: no 5xx',
      ok: fives(hostile) === 0,
      detail: `${hostile.sent} sent, ${fives(hostile)} 5xx; statuses ${JSON.stringify(hostile.byStatus)}`,
    },
    {
      what: 'feed kept its rate (≥ 95%)',
      ok: feed !== null && feed.recordsPerS >= FEED * 0.95 && feed.batch.errorCount === 0,
      detail: feed
        ? `${Math.round(feed.recordsPerS)} records/s, ${feed.applied} applied, ${feed.batch.errorCount} failed batches ${JSON.stringify(feed.batch.errors)}`
        : 'no feed',
    },
    ...checks.map((c) => ({
      what: `${c.what} flat (last minute vs after warm-up, ≤ ${c.limit.toFixed(0)} ${c.unit})`,
      ok: c.grew <= c.limit,
      detail: `${c.grew >= 0 ? '+' : ''}${c.grew.toFixed(1)} ${c.unit}`,
    })),
  ];
  for (const v of verdicts) console.log(`  [${v.ok ? 'PASS' : 'FAIL'}] ${v.what}: ${v.detail}`);
  writeFileSync(
    OUT,
    report(samples, verdicts, { minutes: MINUTES, users: USERS, rate: RATE, feed: FEED, hostile: HOSTILE, good }),
  );
  console.log(`  report: ${OUT}`);
  return verdicts.every((v) => v.ok) ? 0 : 1;
}

function fives(t: Tally): number {
  return Object.entries(t.byStatus)
    .filter(([s]) => Number(s) >= 500)
    .reduce((a, [, n]) => a + n, 0);
}

/** The report: one SVG line chart per resource, and the verdicts. */
function report(
  samples: Sample[],
  verdicts: Array<{ what: string; ok: boolean; detail: string }>,
  run: Record<string, unknown>,
): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const chart = (title: string, f: (s: Sample) => number | null, unit: string) => {
    const pts = samples.map((s) => [s.t, f(s)] as const).filter((p): p is readonly [number, number] => p[1] !== null);
    if (pts.length < 2) return '';
    const W = 560,
      H = 160,
      L = 50,
      B = 24;
    const tMax = Math.max(...pts.map((p) => p[0]));
    const yMax = Math.max(...pts.map((p) => p[1])) * 1.15 || 1;
    const x = (t: number) => L + (t / tMax) * (W - L - 10);
    const y = (v: number) => H - B - (v / yMax) * (H - B - 10);
    const path = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    const ticks = [0, 0.5, 1]
      .map(
        (k) =>
          `<text x="${L - 6}" y="${y(yMax * k) + 4}" text-anchor="end">${(yMax * k).toFixed(yMax < 10 ? 1 : 0)}</text>`,
      )
      .join('');
    return `<figure><figcaption>${esc(title)} (${unit})</figcaption><svg width="${W}" height="${H}" font-size="11" font-family="sans-serif">
<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="#999"/><line x1="${L}" y1="10" x2="${L}" y2="${H - B}" stroke="#999"/>${ticks}
<text x="${W - 10}" y="${H - 6}" text-anchor="end">${tMax} s</text><text x="${L}" y="${H - 6}">0 s</text>
<path d="${path}" fill="none" stroke="#1f6feb" stroke-width="2"/></svg></figure>`;
  };
  return `<!doctype html><meta charset="utf-8"><title>segd soak</title>
<style>body{font-family:sans-serif;margin:24px;max-width:1200px}figure{display:inline-block;margin:8px}.ok{color:#1a7f37}.bad{color:#cf222e}td{padding:2px 8px}</style>
<h1>segd soak</h1><p>${esc(JSON.stringify(run))}</p>
<table>${verdicts.map((v) => `<tr><td class="${v.ok ? 'ok' : 'bad'}">${v.ok ? 'PASS' : 'FAIL'}</td><td>${esc(v.what)}</td><td>${esc(v.detail)}</td></tr>`).join('')}</table>
${chart('Resident memory (RSS, includes touched LMDB pages)', (s) => s.rssMb, 'MB')}${chart('Anonymous memory (RssAnon)', (s) => s.anonMb, 'MB')}${chart('V8 heap used, all threads', (s) => s.heapMb, 'MB')}
${chart('Open files and pipes', (s) => s.files, 'count')}${chart('Open sockets', (s) => s.sockets, 'count')}${chart('LMDB reader slots', (s) => s.readers, 'count')}${chart('Requests sent', (s) => s.rps, 'per s')}
`;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
