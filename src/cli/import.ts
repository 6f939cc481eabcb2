// `segd import PATH` — applies a feed file, or every complete feed file of a
// directory in name order, straight into the store at SEGD_DATA_DIR, with a
// progress bar and a summary. Offline only: while `segd serve` runs on the
// data dir, changes go through its inbox or POST /v1/ingest instead (its
// known-users filter must see every new user). An interrupted import resumes
// where its last batch committed when run again on the same file.
import { performance } from 'node:perf_hooks';
import { OutboxWriter } from '../outbound/outbox.js';
import { DestinationRules } from '../outbound/deltas.js';
import { Registry } from '../partners/registry.js';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { openStore, writemapFromConfig } from '../store/env.js';
import { Writer } from '../loader/writer.js';
import { importFile, type ImportSummary, type ImportProgress } from '../loader/file-import.js';
import { isCompleteFeedName } from '../loader/inbox.js';
import { isSnapshotName, SnapshotLoader } from '../loader/snapshot.js';
import { recordLimits, taxonomyIds } from '../loader/records.js';
import { runningServer } from '../server/pidfile.js';
import { Progress } from '../terminal/progress.js';
import { parseCommand, type FlagSpec } from '../terminal/flags.js';

const SPEC: FlagSpec = {
  rejects: 'directory for <file>.rejects.ndjson (default: <data dir>/rejects)',
  quiet: 'no progress bar',
};
const CHECKPOINT = 'ckpt:import';

export async function importCommand(argv: string[]): Promise<number> {
  const { flags, args } = parseCommand('import PATH', argv, SPEC, 1);
  const target = args[0]!;
  const config = loadConfig();
  const pid = runningServer(config.dataDir);
  if (pid !== null) {
    throw new Error(
      `segd (pid ${pid}) is serving ${config.dataDir}: drop the file into its inbox (${config.inbox}) or POST it to /v1/ingest`,
    );
  }
  const files = (await stat(target)).isDirectory()
    ? (await readdir(target))
        .filter(isCompleteFeedName)
        .sort()
        .map((n) => join(target, n))
    : [target];
  const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  const rejectsDir = typeof flags.rejects === 'string' ? flags.rejects : join(config.dataDir, 'rejects');

  const store = openStore(config.dataDir, {
    maxReaders: config.maxReaders,
    ...writemapFromConfig(config.writemapHeadroomMb),
  });
  // Changes made here are queued for destinations as the server queues them; its sender delivers them once it runs.
  new OutboxWriter(store, new DestinationRules(Registry.load(store)), () => undefined);
  const writer = new Writer(store);
  const snapshots = new SnapshotLoader(store, writer);
  // The same record rules as the server's sources (SEGD_UNKNOWN_SEGMENTS included).
  const limits = recordLimits(config.maxUidBytes, config.unknownSegments, taxonomyIds(store, new Set()));
  snapshots.clearInactive();
  const progress = new Progress('import', Math.max(total, 1), 'bytes', { quiet: flags.quiet === true });
  const t0 = performance.now();
  const sum = { files: 0, applied: 0, stale: 0, rejected: 0, memberships: 0 };
  let done = 0;
  try {
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const opts = {
        checkpointKey: CHECKPOINT,
        batchSize: config.loaderBatchSize,
        maxUidBytes: limits,
        maxLineBytes: config.maxLineBytes,
        maxGzipRatio: config.maxGzipRatio,
        rejectsPath: join(rejectsDir, `${basename(file)}.rejects.ndjson`),
        onProgress: (p: ImportProgress) => progress.update(done + p.bytes),
      };
      // A snapshot replaces the data set (generation swap); any other file is a delta.
      const s: ImportSummary = isSnapshotName(basename(file))
        ? await snapshots.load(file, opts)
        : await importFile(store, writer, file, opts);
      store.meta.removeSync(CHECKPOINT);
      done += sizes[i]!;
      progress.update(done);
      sum.files++;
      sum.applied += s.applied;
      sum.stale += s.stale;
      sum.rejected += s.rejected;
      sum.memberships += s.memberships;
      if (s.rejected)
        process.stderr.write(
          `import: ${basename(file)}: ${s.rejected} rejected → ${join(rejectsDir, `${basename(file)}.rejects.ndjson`)}\n`,
        );
    }
  } finally {
    progress.done();
    snapshots.stop();
    await store.close();
  }
  const secs = (performance.now() - t0) / 1000;
  process.stdout.write(
    `import: ${sum.files} file(s), ${sum.applied} applied, ${sum.stale} stale, ${sum.rejected} rejected, ` +
      `${sum.memberships} memberships in ${secs.toFixed(1)} s (${Math.round(sum.applied / Math.max(secs, 1e-3))} records/s, ` +
      `${Math.round(sum.memberships / Math.max(secs, 1e-3))} memberships/s)\n`,
  );
  return sum.applied > 0 ? 0 : 1;
}
