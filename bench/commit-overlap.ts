// Can a catch-up commit leave the loader thread free while LMDB syncs?
// `node dist/bench/commit-overlap.js --store DIR [--records 20000] [--rounds 3] [--chain N]`.
//
// A restored node's core sits idle in the fdatasync inside each commit
// (docs/benchmarks/2026-12-04-afternoon.md): LMDB syncs on the committing
// thread, and the writer commits with transactionSync on the loader thread.
// lmdb-js's asynchronous transaction runs its callback on the calling thread
// and commits on lmdb-js's write thread. This opens a copy of DIR (a store of
// synthetic users, seed 1, as `segd backup` writes it) and, rounds
// alternating, rewrites `--records` random existing users in one transaction
// each way: synchronous, and asynchronous until flushed to disk. Meanwhile
// the main thread spins in 1 ms slices between turns of its event loop;
// reported: the whole commit's wall time and the ms the main thread had for
// other work (what a catch-up would spend parsing the next pull).
// `--chain N` then times N commits back to back each way: synchronous ones,
// and asynchronous ones each begun once the last has committed (not
// flushed), so its writes can run while LMDB syncs the last one.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, userCount, type OpenOptions } from '../src/store/env.js';
import { uidFor } from '../src/gen/synthetic.js';
import { prng } from '../src/loadtest/key-mix.js';
import { intFlag, parseFlags, type Flags } from '../src/terminal/flags.js';

const say = (msg: string) => console.log(`[commit-overlap ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Runs `commit`, spinning the main thread in 1 ms slices between event-loop turns until it settles. */
async function measure(commit: () => Promise<unknown>): Promise<{ wallMs: number; freeMs: number }> {
  let slices = 0;
  let stop = false;
  const spin = () => {
    if (stop) return;
    const t = performance.now();
    while (performance.now() - t < 1);
    slices++;
    setImmediate(spin);
  };
  const t0 = performance.now();
  const done = commit();
  setImmediate(spin);
  await done;
  stop = true;
  return { wallMs: performance.now() - t0, freeMs: slices };
}

async function main(f: Flags): Promise<void> {
  if (typeof f.store !== 'string') throw new Error('--store DIR');
  const records = intFlag(f, 'records', { min: 1, max: 1_000_000, def: 20_000 });
  const rounds = intFlag(f, 'rounds', { min: 1, max: 100, def: 3 });
  const dir = mkdtempSync(join(tmpdir(), 'segd-commit-overlap-'));
  try {
    cpSync(f.store, dir, { recursive: true });
    // lmdb-js env options over the store's (compared run by run), e.g. '{"maxFreeSpaceToLoad":1000}'.
    const lmdb = typeof f.lmdb === 'string' ? (JSON.parse(f.lmdb) as Record<string, unknown>) : undefined;
    const store = openStore(dir, lmdb ? { lmdb: lmdb as OpenOptions['lmdb'] } : {});
    const users = userCount(store);
    const { env, members } = store;
    const rnd = prng(3);
    // Every record rewrites a user's stored value (the same length, one byte changed): a page dirtied a record.
    const rewrite = () => {
      for (let i = 0; i < records; i++) {
        const uid = uidFor(1, Math.floor(rnd() * users));
        const old = members.getBinary(uid);
        if (old === undefined) throw new Error(`${uid}: not in the store (not seed 1?)`);
        const next = Buffer.from(old);
        next[next.length - 1]! ^= 1;
        void members.put(uid, next);
      }
    };
    say(`${users.toLocaleString('en-US')} users; ${records} records a transaction; a warm-up commit first`);
    env.transactionSync(rewrite);
    for (let r = 1; r <= rounds; r++) {
      const sync = await measure(async () => env.transactionSync(rewrite));
      const async = await measure(() => env.transaction(rewrite).then(() => env.flushed));
      say(
        `round ${r}: synchronous ${sync.wallMs.toFixed(0)} ms (main thread free ${sync.freeMs} ms); ` +
          `asynchronous until flushed ${async.wallMs.toFixed(0)} ms (main thread free ${async.freeMs} ms)`,
      );
    }
    // A catch-up commits one transaction after another: asynchronous ones
    // chained on each other's commit (not flush) let the next transaction's
    // writes run while LMDB syncs the last (lmdb-js's overlapping sync).
    const chain = intFlag(f, 'chain', { min: 0, max: 1000, def: 0 });
    for (let r = 1; chain > 0 && r <= rounds; r++) {
      const t0 = performance.now();
      for (let i = 0; i < chain; i++) {
        env.transactionSync(rewrite);
        await new Promise((res) => setImmediate(res));
      }
      const syncMs = performance.now() - t0;
      const t1 = performance.now();
      for (let i = 0; i < chain; i++) await env.transaction(rewrite);
      const committedMs = performance.now() - t1;
      await env.flushed;
      const asyncMs = performance.now() - t1;
      const perRecord = (ms: number) => ((ms * 1000) / (chain * records)).toFixed(1);
      say(
        `chain round ${r}: ${chain} synchronous commits ${syncMs.toFixed(0)} ms (${perRecord(syncMs)} µs a record); ` +
          `${chain} asynchronous, each begun once the last committed: all committed ${committedMs.toFixed(0)} ms, ` +
          `flushed ${asyncMs.toFixed(0)} ms (${perRecord(asyncMs)} µs a record)`,
      );
    }
    await env.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main(
  parseFlags('node dist/bench/commit-overlap.js', process.argv.slice(2), {
    store: 'DIR: a store of synthetic users, seed 1 (copied; the copy is removed after)',
    records: 'records a transaction (default 20000)',
    rounds: 'rounds, each a synchronous and an asynchronous commit (default 3)',
    chain: 'then rounds of this many commits back to back, each way (default 0: none)',
    lmdb: 'JSON: lmdb-js env options over the store’s (e.g. {"maxFreeSpaceToLoad":1000})',
  }),
);
