// `npm run bench:activation [-- --users N --seconds S --rounds R]`: OpenRTB
// enrichment and WebSocket lookups against the bare uWebSockets.js
// hello-world measured in the same run, alternating, same generator.
//
//   enrichment: wrk, POST /openrtb2/enrich with a 2.5 KB banner bid request
//               (test/fixtures/openrtb/banner.json, minified; user.id drawn
//               60% known / 40% unknown) and a partner key; baselines: the
//               hello-world answering the same POSTs (body read, dropped)
//               and plain GETs.
//   websocket:  the harness's WebSocket driver, 8 connections × 64 frames in
//               flight of {id, uid}; baseline: the hello-world echoing each frame.
// Servers on one CPU, generators (wrk, this process) on the other (taskset), when there are two.
// Reports only; prints a table and exits 0 unless something crashed.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { intFlag, parseFlags } from '../src/terminal/flags.js';
import { uidFor, DEFAULT_SYNTHETIC } from '../src/gen/synthetic.js';
import { driveHttp, type DriveResult, type LoadShape } from '../src/loadtest/drive-http.js';
import { driveWs } from '../src/loadtest/drive-ws.js';
import { installCleanupHandlers, pin, planPinning, startServer, tempDirs } from '../src/loadtest/processes.js';
import { runBench } from './run-bench.js';
import { writeActivationData } from './activation-data.js';
import type { HttpReq } from '../src/loadtest/scenarios.js';
import { envWithoutSegd, SEGD_BIN } from './seeded-segd.js';

const ROOT = resolve(import.meta.dirname, '../..');
const flags = parseFlags('npm run bench:activation --', process.argv.slice(2), {
  users: 'users in the data set (default 100000)',
  seconds: 'seconds per measured run (default 5)',
  rounds: 'alternating rounds (default 2)',
  connections: 'wrk connections (default 50)',
});
const USERS = intFlag(flags, 'users', { min: 1000, max: 100_000_000, def: 100_000 });
const SECONDS = intFlag(flags, 'seconds', { min: 1, max: 3600, def: 5 });
const ROUNDS = intFlag(flags, 'rounds', { min: 1, max: 100, def: 2 });
const CONNECTIONS = intFlag(flags, 'connections', { min: 1, max: 10_000, def: 50 });
const KEY = 'bench-partner-key-0123456789';
const HOST = '127.0.0.1';
const pinning = planPinning(true);
installCleanupHandlers((m) => process.stderr.write(`bench-activation: ${m}\n`));

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
}

const shape = (warmupS: number): LoadShape => ({
  connections: CONNECTIONS,
  rate: 0,
  warmupS,
  durationS: SECONDS,
  timeoutS: 10,
  maxRequests: Number.MAX_SAFE_INTEGER,
  okBelow: 300,
});
const figures = ({ figures: f }: DriveResult): Figures => ({
  rps: f.rps,
  p50: f.latencyUs.p50,
  p99: f.latencyUs.p99,
  p999: f.latencyUs.p999,
});

/** wrk, closed loop, cycling through `requests`. */
async function wrk(port: number, requests: HttpReq[], warmupS: number): Promise<Figures> {
  return figures(await driveHttp({ ...shape(warmupS), host: HOST, port, requests, generator: 'wrk' }));
}

/** 8 sockets, 64 frames in flight each, after a 1 s warm-up. */
async function wsLoad(url: string, uids: string[], key = ''): Promise<Figures> {
  return figures(await driveWs({ ...shape(1), connections: 8, pipeline: 64, url, partnerKey: key, uids }));
}

async function start(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const server = await startServer(name, args, { ...envWithoutSegd(), ...env });
  if (name === 'segd') await server.waitLog((x) => x.msg === 'ready', 120_000, 'ready');
  if (pinning.pinned) pin(server.proc.pid!, pinning.serverCpu!);
  return server.port;
}

async function main(): Promise<void> {
  // Data: N synthetic users; a taxonomy of 5000 segments over two providers;
  // the bench partner licensed to a third of them.
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-act-'));
  tempDirs.add(dir);
  if (pinning.pinned) pin(process.pid, pinning.generatorCpu!);
  const { feed, config } = writeActivationData(dir, USERS, KEY);
  const known = (i: number) => uidFor(DEFAULT_SYNTHETIC.seed, Math.floor((i * 7919) % USERS));
  const unknown = (i: number) => uidFor(DEFAULT_SYNTHETIC.seed, USERS + i);
  const uidsAt = Array.from({ length: 2000 }, (_, i) => (i % 5 < 3 ? known(i) : unknown(i)));

  // Bodies: the banner fixture, minified, one per uid.
  const banner = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/openrtb/banner.json'), 'utf8'));
  const bodies = uidsAt
    .slice(0, 500)
    .map((uid, i) => JSON.stringify({ ...banner, id: `req-${i}`, tmax: 1000, user: { ...banner.user, id: uid } }));
  const avgBytes = Math.round(bodies.reduce((a, b) => a + b.length, 0) / bodies.length);
  const posts: HttpReq[] = bodies.map((body) => ({
    method: 'POST',
    path: '/openrtb2/enrich',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body,
  }));
  const gets: HttpReq[] = [{ method: 'GET', path: '/', headers: {} }];

  process.stderr.write(`starting segd with ${USERS} users…\n`);
  const segd = await start('segd', [SEGD_BIN, 'serve'], {
    SEGD_PORT: '0',
    SEGD_HOST: '127.0.0.1',
    SEGD_DATA_DIR: join(dir, 'data'),
    SEGD_SEED: feed,
    SEGD_WORKERS: '1',
    SEGD_CONFIG: config,
    SEGD_LOOKUP_AUTH: 'required',
    SEGD_LOG_LEVEL: 'info',
    SEGD_DMP_DOMAIN: 'dmp.example',
  });
  const hello = await start('hello', [join(ROOT, 'dist/src/loadtest/hello-world.js')], {});
  const enrichOutcomes = async () => {
    const text = await (await fetch(`http://127.0.0.1:${segd}/metrics`)).text();
    return Object.fromEntries(
      [...text.matchAll(/^segd_enrich_total\{outcome="(\w+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]),
    );
  };

  const results: Record<string, Figures[]> = { helloGet: [], helloPost: [], enrich: [], helloWs: [], segdWs: [] };
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`round ${r + 1}/${ROUNDS}: HTTP…\n`);
    results.helloGet!.push(await wrk(hello, gets, 1));
    results.helloPost!.push(await wrk(hello, posts, 0));
    results.enrich!.push(await wrk(segd, posts, 1));
    process.stderr.write(`round ${r + 1}/${ROUNDS}: WebSocket…\n`);
    results.helloWs!.push(await wsLoad(`ws://127.0.0.1:${hello}/`, uidsAt));
    results.segdWs!.push(await wsLoad(`ws://127.0.0.1:${segd}/v1/ws`, uidsAt, KEY));
  }
  const outcomes = await enrichOutcomes();

  const best = (k: string) => results[k]!.reduce((a, b) => (b.rps > a.rps ? b : a));
  const fmt = (f: Figures) =>
    `${Math.round(f.rps).toLocaleString('en-US').padStart(9)} /s   p50 ${String(f.p50).padStart(6)} µs   p99 ${String(f.p99).padStart(6)} µs   p99.9 ${String(f.p999).padStart(6)} µs`;
  const ratio = (a: string, b: string) => (best(a).rps / best(b).rps).toFixed(2);
  console.log(
    `\nsegd activation benchmark — ${USERS} users, ${ROUNDS} alternating rounds × ${SECONDS} s, best round shown (Node ${process.version}; ${pinning.why})`,
  );
  console.log(
    `bid request body ≈ ${avgBytes} bytes (banner fixture, minified); wrk -t1 -c${CONNECTIONS}; WebSocket: 8 connections × 64 in flight\n`,
  );
  console.log(`hello-world GET              ${fmt(best('helloGet'))}`);
  console.log(`hello-world POST (same body) ${fmt(best('helloPost'))}`);
  console.log(
    `segd POST /openrtb2/enrich   ${fmt(best('enrich'))}   = ${ratio('enrich', 'helloPost')}× hello POST, ${ratio('enrich', 'helloGet')}× hello GET`,
  );
  console.log(`hello-world WebSocket echo   ${fmt(best('helloWs'))}`);
  console.log(`segd /v1/ws lookups          ${fmt(best('segdWs'))}   = ${ratio('segdWs', 'helloWs')}× hello echo`);
  console.log(`\nenrichment outcomes over the run: ${JSON.stringify(outcomes)}`);
  console.log('every round:', JSON.stringify(results));
}

runBench(main);
