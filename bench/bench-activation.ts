// `npm run bench:activation [-- --users N --seconds S --rounds R]`: OpenRTB
// enrichment and WebSocket lookups against the bare uWebSockets.js
// hello-world measured in the same run, alternating, same generator.
//
//   enrichment: wrk, POST /openrtb2/enrich with a 2.5 KB banner bid request
//               (test/fixtures/openrtb/banner.json, minified; user.id drawn
//               60% known / 40% unknown) and a partner key; baselines: the
//               hello-world answering the same POSTs (body read, dropped)
//               and plain GETs.
//   websocket:  bench/ws-load.ts, 8 connections × 64 frames in flight of
//               {id, uid}; baseline: the hello-world echoing each frame.
// Servers on one CPU, generators on the other (taskset), when there are two.
// Reports only; prints a table and exits 0 unless something crashed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { followJsonLog } from '../src/loadtest/json-log.js';
import { Synthetic, uidFor, DEFAULT_SYNTHETIC, FIRST_SEGMENT_ID } from '../src/gen/synthetic.js';

const ROOT = resolve(import.meta.dirname, '../..');
const { values: flags } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
  },
});
const USERS = Number(flags.users);
const SECONDS = Number(flags.seconds);
const ROUNDS = Number(flags.rounds);
const KEY = 'bench-partner-key-0123456789';
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'segd-bench-act-'));

const cpus = (() => {
  const r = spawnSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' });
  const m = /list:\s*([\d,\s-]+)$/m.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) return [];
  return m[1]!.trim().split(',').flatMap((p) => {
    const [a, b] = p.split('-').map(Number);
    return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i);
  });
})();
const pinned = cpus.length >= 2;
const pinCmd = (cpu: number, cmd: string, args: string[]): [string, string[]] => (pinned ? ['taskset', ['-c', String(cpus[cpu]), cmd, ...args]] : [cmd, args]);

async function start(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [cmd, argv] = pinCmd(0, process.execPath, args);
  const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, ...env } });
  children.push(p);
  const { waitFor } = followJsonLog(p, name, 1000);
  const l = await waitFor((x) => x.msg === 'listening', 60_000, '"listening"');
  if (name === 'segd') await waitFor((x) => x.msg === 'ready', 120_000, '"ready"');
  return l.port as number;
}

function run(cmd: string, args: string[]): string {
  const [c, a] = pinCmd(1, cmd, args);
  const r = spawnSync(c, a, { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return r.stdout;
}

interface Figures { rps: number; p50: number; p99: number; p999: number }

function wrk(port: number, script: string, seconds: number): Figures {
  const out = run('wrk', ['-t1', `-c${flags.connections}`, `-d${seconds}s`, '-s', script, `http://127.0.0.1:${port}/`]);
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${out}`);
  const w = JSON.parse(line.slice(9));
  return { rps: w.requests / (w.duration_us / 1e6), p50: w.p50, p99: w.p99, p999: w.p999 };
}

function wsLoad(url: string, uidsFile: string, key?: string): Figures {
  const args = [join(ROOT, 'dist/bench/ws-load.js'), url, uidsFile, '--seconds', String(SECONDS), ...(key ? ['--key', key] : [])];
  const out = run(process.execPath, args);
  return JSON.parse(out.trim().split('\n').pop()!) as Figures;
}

// wrk.format only works once wrk has set up the thread: requests are built in init().
const wrkScript = (requestsLua: string) => `local reqs = {}
function init(args)
${requestsLua}
end
local i = 0
function request()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
function done(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests":%.0f,"duration_us":%.0f,"p50":%.0f,"p99":%.0f,"p999":%.0f}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`;

async function main(): Promise<void> {
  // Data: N synthetic users; a taxonomy of 5000 segments over two providers;
  // the bench partner licensed to a third of them.
  const syn = new Synthetic(DEFAULT_SYNTHETIC);
  const feed = join(dir, 'feed.ndjson');
  const lines: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const u = syn.user(i);
    lines.push(JSON.stringify({ op: 'add', uid: u.uid, segments: u.segments.map((s) => (typeof s === 'number' ? s : s.id)) }));
  }
  writeFileSync(feed, lines.join('\n') + '\n');
  const taxonomy = Array.from({ length: DEFAULT_SYNTHETIC.taxonomy }, (_, k) => ({
    id: FIRST_SEGMENT_ID + k, name: `s${k}`, provider: k % 2 ? 'segd' : 'acme-data', segtax: k % 3 ? 4 : 600,
  }));
  const config = join(dir, 'segd.json');
  writeFileSync(config, JSON.stringify({
    partners: [{ id: 'bench', keys: [KEY], segments: taxonomy.filter((_, k) => k % 3 === 0).map((s) => s.id) }],
    segments: taxonomy,
  }));
  const known = (i: number) => uidFor(DEFAULT_SYNTHETIC.seed, Math.floor((i * 7919) % USERS));
  const unknown = (i: number) => uidFor(DEFAULT_SYNTHETIC.seed, USERS + i);
  const uidsAt = Array.from({ length: 2000 }, (_, i) => (i % 5 < 3 ? known(i) : unknown(i)));
  const uidsFile = join(dir, 'uids.txt');
  writeFileSync(uidsFile, uidsAt.join('\n') + '\n');

  // Bodies: the banner fixture, minified, one per uid.
  const banner = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/openrtb/banner.json'), 'utf8'));
  const bodies = uidsAt.slice(0, 500).map((uid, i) => JSON.stringify({ ...banner, id: `req-${i}`, tmax: 1000, user: { ...banner.user, id: uid } }));
  const bodiesFile = join(dir, 'bodies.txt');
  writeFileSync(bodiesFile, bodies.join('\n') + '\n');
  const avgBytes = Math.round(bodies.reduce((a, b) => a + b.length, 0) / bodies.length);
  const postScript = join(dir, 'post.lua');
  writeFileSync(postScript, wrkScript(`for line in io.lines(${JSON.stringify(bodiesFile)}) do
  reqs[#reqs + 1] = wrk.format("POST", "/openrtb2/enrich", { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer ${KEY}" }, line)
end`));
  const getScript = join(dir, 'get.lua');
  writeFileSync(getScript, wrkScript(`reqs[1] = wrk.format("GET", "/")`));

  process.stderr.write(`starting segd with ${USERS} users…\n`);
  const segd = await start('segd', [join(ROOT, 'bin/segd.js'), 'serve'], {
    SEGD_PORT: '0', SEGD_HOST: '127.0.0.1', SEGD_DATA_DIR: join(dir, 'data'), SEGD_SEED: feed, SEGD_WORKERS: '1',
    SEGD_CONFIG: config, SEGD_LOOKUP_AUTH: 'required', SEGD_LOG_LEVEL: 'info', SEGD_DMP_DOMAIN: 'dmp.example',
  });
  const hello = await start('hello', [join(ROOT, 'dist/src/loadtest/hello-world.js')], {});
  const enrichOutcomes = async () => {
    const text = await (await fetch(`http://127.0.0.1:${segd}/metrics`)).text();
    return Object.fromEntries([...text.matchAll(/^segd_enrich_total\{outcome="(\w+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]));
  };

  const results: Record<string, Figures[]> = { helloGet: [], helloPost: [], enrich: [], helloWs: [], segdWs: [] };
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`round ${r + 1}/${ROUNDS}: HTTP…\n`);
    wrk(hello, getScript, 1);
    results.helloGet!.push(wrk(hello, getScript, SECONDS));
    results.helloPost!.push(wrk(hello, postScript, SECONDS));
    wrk(segd, postScript, 1);
    results.enrich!.push(wrk(segd, postScript, SECONDS));
    process.stderr.write(`round ${r + 1}/${ROUNDS}: WebSocket…\n`);
    results.helloWs!.push(wsLoad(`ws://127.0.0.1:${hello}/`, uidsFile));
    results.segdWs!.push(wsLoad(`ws://127.0.0.1:${segd}/v1/ws`, uidsFile, KEY));
  }
  const outcomes = await enrichOutcomes();

  const best = (k: string) => results[k]!.reduce((a, b) => (b.rps > a.rps ? b : a));
  const fmt = (f: Figures) => `${Math.round(f.rps).toLocaleString('en-US').padStart(9)} /s   p50 ${String(f.p50).padStart(6)} µs   p99 ${String(f.p99).padStart(6)} µs   p99.9 ${String(f.p999).padStart(6)} µs`;
  const ratio = (a: string, b: string) => (best(a).rps / best(b).rps).toFixed(2);
  console.log(`\nsegd activation benchmark — ${USERS} users, ${ROUNDS} alternating rounds × ${SECONDS} s, best round shown (Node ${process.version}; ${pinned ? `servers on CPU ${cpus[0]}, generators on CPU ${cpus[1]}` : 'unpinned'})`);
  console.log(`bid request body ≈ ${avgBytes} bytes (banner fixture, minified); wrk -t1 -c${flags.connections}; WebSocket: 8 connections × 64 in flight\n`);
  console.log(`hello-world GET              ${fmt(best('helloGet'))}`);
  console.log(`hello-world POST (same body) ${fmt(best('helloPost'))}`);
  console.log(`segd POST /openrtb2/enrich   ${fmt(best('enrich'))}   = ${ratio('enrich', 'helloPost')}× hello POST, ${ratio('enrich', 'helloGet')}× hello GET`);
  console.log(`hello-world WebSocket echo   ${fmt(best('helloWs'))}`);
  console.log(`segd /v1/ws lookups          ${fmt(best('segdWs'))}   = ${ratio('segdWs', 'helloWs')}× hello echo`);
  console.log(`\nenrichment outcomes over the run: ${JSON.stringify(outcomes)}`);
  console.log('every round:', JSON.stringify(results));
}

async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
  rmSync(dir, { recursive: true, force: true });
}

process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
main().then(
  () => cleanup(),
  async (err) => {
    console.error(err);
    await cleanup();
    process.exit(1);
  },
);
