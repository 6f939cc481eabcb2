// The pixel's write path, in process on real LMDB: `npm run bench:insights-pixel
// [-- --rate R --seconds S --workers W --index on|off --store DIR --uids cycle|new --writemap MB]`.
//
// `--store DIR` runs on a copy of a prepared store (DIR itself is not
// written), so inserts land in a B-tree of its size; `--uids new` makes every
// hit a browser never seen (uniform random uids, as a cookie-less first visit
// or the loadtest's worst case), `cycle` (default) repeats 1M uids per worker.
// The writer has a known-users filter, as the server's has.
//
// W worker threads stand in for the lookup workers: each takes R/W hits a
// second into the workers' own queue (identity/match-queue.ts: batches of up
// to 500 or every 5 ms, refused while 64 batches await the writer) and posts
// each batch to this thread, which hands it to the loader's Exposures as the
// supervisor does. Prints hits stored and refused a second, and the CPU time
// (user + system) per stored hit of the writer's thread and of the workers'
// (/proc/thread-self: a thread's own ticks): on a machine shared with other
// jobs, the steadier figures.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { intFlag, parseFlags } from '../src/terminal/flags.js';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { Exposures, type ExposureItem } from '../src/loader/exposures.js';
import { MatchQueue } from '../src/identity/match-queue.js';
import { InsightsIndex } from '../src/insights/insights-index.js';
import { BlockedBloom, sizeFor } from '../src/filters/blocked-bloom.js';
import { userCount, writeSequence } from '../src/store/env.js';
import { runBench } from './run-bench.js';
import { cpuSecondsOfStat } from './proc-stat.js';

interface Job {
  rate: number;
  seconds: number;
  index: number;
  fresh: boolean;
}
type Counts = Record<'stored' | 'refused' | 'lost', number>;

/** CPU seconds (user + system) the calling thread has used (Linux: fields 14 and 15 of its stat, in ticks of 10 ms). */
function threadCpu(): number {
  return cpuSecondsOfStat('/proc/thread-self/stat');
}

/** A lookup worker's side: hits at `rate`, queued and sent in batches; posts its counts and CPU at the end. */
function hitter({ rate, seconds, index, fresh }: Job): void {
  const port = parentPort!;
  const counts: Counts = { stored: 0, refused: 0, lost: 0 };
  const waiting = new Map<number, () => void>();
  let id = 0;
  port.on('message', (m: { id: number }) => {
    waiting.get(m.id)?.();
    waiting.delete(m.id);
  });
  const queue = new MatchQueue<ExposureItem>(
    (items) =>
      new Promise<void>((resolve) => {
        waiting.set(++id, resolve);
        port.postMessage({ id, items });
      }),
    () => undefined,
    (outcome, n) => (counts[outcome] += n),
  );
  const uid = fresh ? () => randomBytes(16).toString('base64url') : (n: number) => `w${index}-u${n % 1_000_000}`;
  const cpu0 = threadCpu();
  const start = performance.now();
  let sent = 0;
  const tick = (): void => {
    const elapsed = performance.now() - start;
    const due = Math.floor((Math.min(elapsed, seconds * 1000) / 1000) * rate);
    for (; sent < due; sent++) queue.push({ campaign: `c${sent % 10}`, event: 'imp', uid: uid(sent) });
    if (elapsed < seconds * 1000) setTimeout(tick, 1);
    else {
      queue.flush();
      const done = setInterval(() => {
        if (queue.inFlight > 0) return;
        clearInterval(done);
        port.postMessage({ counts, cpu: threadCpu() - cpu0 });
      }, 5);
    }
  };
  tick();
}

async function main(): Promise<void> {
  const flags = parseFlags(
    'npm run bench:insights-pixel --',
    process.argv.slice(2),
    {
      rate: 'pixel hits a second offered, in all (default 20000)',
      seconds: 'how long (default 10)',
      workers: 'worker threads sending hits (default 2)',
      index: 'the insights index: on | off (default on)',
      store: 'a prepared store to run on a copy of (default: an empty one)',
      uids: 'cycle (1M per worker, repeats after) | new (every hit a new browser) (default cycle)',
      writemap: 'LMDB through a writable map with this headroom in MiB (default 0: off, as SEGD_WRITEMAP_HEADROOM_MB)',
    },
    [],
  );
  const index = flags.index ?? 'on';
  if (index !== 'on' && index !== 'off') throw new Error('--index is on or off');
  const rate = intFlag(flags, 'rate', { min: 100, max: 10_000_000, def: 20_000 });
  const seconds = intFlag(flags, 'seconds', { min: 1, max: 3600, def: 10 });
  const workers = intFlag(flags, 'workers', { min: 1, max: 64, def: 2 });
  const uids = flags.uids ?? 'cycle';
  if (uids !== 'cycle' && uids !== 'new') throw new Error('--uids is cycle or new');
  const writemapMb = intFlag(flags, 'writemap', { min: 0, max: 1_000_000, def: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-pixel-'));
  if (typeof flags.store === 'string') cpSync(flags.store, dir, { recursive: true });
  const store = openStore(dir, writemapMb > 0 ? { writemap: { headroom: writemapMb * 2 ** 20 } } : {});
  const users = userCount(store);
  if (index === 'on') new InsightsIndex(store);
  // As the server's known-users filter (SEGD_BLOOM_USERS, SEGD_BLOOM_FP_RATE defaults): the writer adds each new user.
  const known = new BlockedBloom(sizeFor(Math.max(1_000_000, Math.ceil(users * 1.25)), 0.01));
  const writer = new Writer(store, { onNewUser: (uid) => known.add(uid) });
  const exposures = new Exposures(store, writer, 86_400, async () => undefined);
  const total: Counts = { stored: 0, refused: 0, lost: 0 };
  let workerCpu = 0;
  const writes0 = writeSequence(store);
  const writer0 = threadCpu();
  const t0 = performance.now();
  await Promise.all(
    Array.from(
      { length: workers },
      (_, index) =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), {
            workerData: { rate: rate / workers, seconds, index, fresh: uids === 'new' } satisfies Job,
          });
          w.on('error', reject);
          w.on('message', (m: { id: number; items: ExposureItem[] } | { counts: Counts; cpu: number }) => {
            if ('counts' in m) {
              for (const k of ['stored', 'refused', 'lost'] as const) total[k] += m.counts[k];
              workerCpu += m.cpu;
              void w.terminate().then(() => resolve());
              return;
            }
            exposures.apply(m.items).then(
              () => w.postMessage({ id: m.id }),
              (err: unknown) => reject(err as Error),
            );
          });
        }),
    ),
  );
  const wall = (performance.now() - t0) / 1000;
  const writerCpu = threadCpu() - writer0;
  const commits = writeSequence(store) - writes0;
  const per = (s: number, n: number) => ((s * 1e6) / Math.max(1, n)).toFixed(1);
  console.log(
    `pixel: ${rate} hits/s offered by ${workers} workers for ${seconds} s, index ${index}, uids ${uids}, ` +
      `${users} users before${writemapMb > 0 ? `, writemap ${writemapMb} MiB` : ''}: ` +
      `stored ${Math.round(total.stored / seconds)}/s, refused ${Math.round(total.refused / seconds)}/s, lost ${total.lost}; ` +
      `writer CPU ${writerCpu.toFixed(2)} s in ${wall.toFixed(1)} s (${per(writerCpu, total.stored)} µs per stored hit), ` +
      `workers ${workerCpu.toFixed(2)} s (${per(workerCpu, total.stored + total.refused)} µs per hit); ` +
      `${commits} commits (${Math.round(total.stored / Math.max(1, commits))} hits each)`,
  );
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

if (isMainThread) runBench(main);
else hitter(workerData as Job);
