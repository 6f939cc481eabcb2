// `segd backup --out DIR` — a hot copy of the store at SEGD_DATA_DIR, safe
// beside a running server: LMDB's own consistent copy (one read transaction,
// compacting: free pages are left out) so lookups and the loader go on while
// it runs. The copy carries every source checkpoint (they live in the env, in
// the same transactions as the data they cover), so a node started on DIR
// resumes JetStream right after the copied sequence.
//
// The known-users filter file is copied when it describes the copy: a Bloom
// filter only gains bits, so bits saved at or after the copied write sequence
// hold every user of the copy. Such a file is written out stamped with the
// copy's sequence (the one a starting node checks); an older file, or none
// yet (the server building its first), is waited for up to --filter-wait ms
// (the server saves it every SEGD_BLOOM_SAVE_MS) and otherwise left out: the
// node started on the copy then rebuilds it.
import { performance } from 'node:perf_hooks';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../config/load.js';
import { openStore, userCount, writeSequence, type Store } from '../store/env.js';
import { FILTER_FILE } from '../filters/known-users.js';
import { loadFilter, saveFilter } from '../filters/persist.js';
import { parseFlags } from '../terminal/flags.js';

/** What `DIR/backup.json` records beside the copy. */
export interface BackupManifest {
  createdAt: string;
  from: string;
  /** meta `writes` of the copy: the filter and the store agree on it. */
  writes: number;
  users: number;
  /** Every `ckpt:*` entry of the copy (JetStream: `ckpt:nats:<stream>:<durable>` → {seq, at, subject}). */
  checkpoints: Record<string, unknown>;
  filter: 'copied' | 'none' | 'left out: not saved since the copy (rebuilt at start)';
  seconds: number;
}

export const MANIFEST_FILE = 'backup.json';

function checkpointsOf(store: Store): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of store.meta.getRange({ start: 'ckpt:', end: 'ckpt;' })) out[key] = value;
  return out;
}

/** Copies the saved filter into `out` if its bits cover `writes`, waiting up to `waitMs` for a save that does. */
async function copyFilter(
  dataDir: string,
  out: string,
  writes: number,
  waitMs: number,
): Promise<BackupManifest['filter']> {
  const path = join(dataDir, FILTER_FILE);
  const until = performance.now() + waitMs;
  for (;;) {
    let saved: Awaited<ReturnType<typeof loadFilter>> | null = null;
    try {
      saved = await loadFilter(path);
    } catch (err) {
      // No file yet: the server may be building its first filter (≈ 17 s at 10M users), so it is waited for too.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(path) && performance.now() >= until)
        return 'none';
      // A save in progress renames over the file; a torn read is retried like a stale one.
    }
    if (saved && saved.writes >= writes) {
      await saveFilter(join(out, FILTER_FILE), saved.filter, saved.added, writes);
      return 'copied';
    }
    if (performance.now() >= until)
      return saved || existsSync(path) ? 'left out: not saved since the copy (rebuilt at start)' : 'none';
    await sleep(200);
  }
}

export async function backupCommand(argv: string[]): Promise<number> {
  const flags = parseFlags('backup', argv, {
    out: 'directory to write the copy into (created; must be empty)',
    'filter-wait': 'ms to wait for the server to save a filter covering the copy (default 2 × SEGD_BLOOM_SAVE_MS)',
  });
  const config = loadConfig();
  if (typeof flags.out !== 'string' || flags.out === '') throw new Error('backup: --out DIR is required');
  const out = resolve(flags.out);
  if (!existsSync(join(config.dataDir, 'data.mdb'))) throw new Error(`no store at ${config.dataDir}`);
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`backup: ${out} is not empty`);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const waitMs = flags['filter-wait'] !== undefined ? Number(flags['filter-wait']) : 2 * config.bloomSaveMs;
  if (!Number.isFinite(waitMs) || waitMs < 0) throw new Error('backup: --filter-wait must be a number of ms ≥ 0');

  const t0 = performance.now();
  const store = openStore(config.dataDir, { maxReaders: config.maxReaders, readOnly: true });
  let manifest: BackupManifest;
  try {
    await store.env.backup(out, true);
  } finally {
    await store.close();
  }
  // What the copy holds is read from the copy itself, not from the live env that moved on.
  const copy = openStore(out, { readOnly: true });
  try {
    const writes = writeSequence(copy);
    manifest = {
      createdAt: new Date().toISOString(),
      from: resolve(config.dataDir),
      writes,
      users: userCount(copy),
      checkpoints: checkpointsOf(copy),
      filter: config.bloomUsers > 0 ? await copyFilter(config.dataDir, out, writes, waitMs) : 'none',
      seconds: 0,
    };
  } finally {
    await copy.close();
  }
  manifest.seconds = Math.round(performance.now() - t0) / 1000;
  writeFileSync(join(out, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
  process.stdout.write(
    `backup: ${manifest.users} users, write seq ${manifest.writes}, ${Object.keys(manifest.checkpoints).length} checkpoint(s), filter ${manifest.filter}, ${manifest.seconds}s → ${out}\n`,
  );
  return 0;
}
