// The pixel's write path, in process on real LMDB: `npm run bench:insights-pixel
// [-- --rate R --seconds S --workers W --index on|off]`.
//
// W worker threads stand in for the lookup workers: each takes R/W hits a
// second into the workers' own queue (identity/match-queue.ts: batches of up
// to 500 or every 5 ms, refused while 64 batches await the writer) and posts
// each batch to this thread, which hands it to the loader's Exposures as the
// supervisor does. Prints hits stored and refused a second, and the process's
// CPU time (user + system, all threads) per stored hit: on a machine shared
// with other jobs, the steadier figure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { intFlag, parseFlags } from '../src/terminal/flags.js';
import { openStore } from '../src/store/env.js';
import { Writer } from '../src/loader/writer.js';
import { Exposures, type ExposureItem } from '../src/loader/exposures.js';
import { MatchQueue } from '../src/identity/match-queue.js';
import { InsightsIndex } from '../src/insights/insights-index.js';
import { runBench } from './run-bench.js';

interface Job {
  rate: number;
  seconds: number;
  index: number;
}
type Counts = Record<'stored' | 'refused' | 'lost', number>;

/** A lookup worker's side: hits at `rate`, queued and sent in batches; posts its counts at the end. */
function hitter({ rate, seconds, index }: Job): void {
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
  const start = performance.now();
  let sent = 0;
  const tick = (): void => {
    const elapsed = performance.now() - start;
    const due = Math.floor((Math.min(elapsed, seconds * 1000) / 1000) * rate);
    for (; sent < due; sent++)
      queue.push({ campaign: `c${sent % 10}`, event: 'imp', uid: `w${index}-u${sent % 1_000_000}` });
    if (elapsed < seconds * 1000) setTimeout(tick, 1);
    else {
      queue.flush();
      const done = setInterval(() => {
        if (queue.inFlight > 0) return;
        clearInterval(done);
        port.postMessage({ counts });
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
    },
    [],
  );
  const index = flags.index ?? 'on';
  if (index !== 'on' && index !== 'off') throw new Error('--index is on or off');
  const rate = intFlag(flags, 'rate', { min: 100, max: 10_000_000, def: 20_000 });
  const seconds = intFlag(flags, 'seconds', { min: 1, max: 3600, def: 10 });
  const workers = intFlag(flags, 'workers', { min: 1, max: 64, def: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'segd-bench-pixel-'));
  const store = openStore(dir);
  if (index === 'on') new InsightsIndex(store);
  const writer = new Writer(store);
  const exposures = new Exposures(store, writer, 86_400, async () => undefined);
  const total: Counts = { stored: 0, refused: 0, lost: 0 };
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from(
      { length: workers },
      (_, index) =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), {
            workerData: { rate: rate / workers, seconds, index } satisfies Job,
          });
          w.on('error', reject);
          w.on('message', (m: { id: number; items: ExposureItem[] } | { counts: Counts }) => {
            if ('counts' in m) {
              for (const k of ['stored', 'refused', 'lost'] as const) total[k] += m.counts[k];
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
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  console.log(
    `pixel: ${rate} hits/s offered by ${workers} workers for ${seconds} s, index ${index}: stored ${Math.round(total.stored / seconds)}/s, ` +
      `refused ${Math.round(total.refused / seconds)}/s, lost ${total.lost}; ` +
      `CPU ${cpu.toFixed(2)} s in ${wall.toFixed(1)} s, ${((cpu * 1e6) / Math.max(1, total.stored)).toFixed(1)} µs per stored hit`,
  );
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

if (isMainThread) runBench(main);
else hitter(workerData as Job);
