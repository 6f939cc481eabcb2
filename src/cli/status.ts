// `segd status [--json]` — what the store at SEGD_DATA_DIR holds and where each
// source stands: checkpoints, inbox backlog (the lag of the file source),
// filter freshness, whether a server is running. Read-only; safe beside a
// running server (LMDB readers do not block the writer).
import { SNAPSHOT_TS_KEY } from '../loader/membership-changes.js';
import { freeBytes } from '../store/write-failure.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { openStore, userCount, writeSequence } from '../store/env.js';
import { isCompleteFeedName, INBOX_CHECKPOINT } from '../loader/inbox.js';
import { SEED_CHECKPOINT } from '../loader/seed.js';
import type { FileCheckpoint } from '../loader/file-import.js';
import { FILTER_FILE } from '../filters/known-users.js';
import { loadFilter } from '../filters/persist.js';
import { runningServer } from '../server/pidfile.js';
import { parseFlags } from '../terminal/flags.js';
import { storedStatus } from '../outbound/status.js';

const files = (dir: string, pred: (n: string) => boolean) => {
  try {
    return readdirSync(dir)
      .filter(pred)
      .map((n) => ({ name: n, bytes: statSync(join(dir, n)).size }));
  } catch {
    return [];
  }
};
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const entries = (db: { getStats(): unknown }) => (db.getStats() as { entryCount: number }).entryCount;
const progressOf = (cp: FileCheckpoint | undefined) =>
  cp
    ? {
        file: cp.file,
        offset: cp.offset,
        size: cp.size,
        line: cp.line,
        done: cp.done,
        percent: cp.size ? Math.round((100 * cp.offset) / cp.size) : 100,
      }
    : null;

export async function statusCommand(argv: string[]): Promise<number> {
  const flags = parseFlags('status', argv, { json: 'print JSON' });
  const config = loadConfig();
  if (!existsSync(join(config.dataDir, 'data.mdb'))) throw new Error(`no store at ${config.dataDir}`);
  const store = openStore(config.dataDir, { maxReaders: config.maxReaders, readOnly: true });
  try {
    const writes = writeSequence(store);
    let filter: Record<string, unknown>;
    try {
      const f = await loadFilter(join(config.dataDir, FILTER_FILE));
      filter = {
        state: f.writes === writes ? 'current' : 'stale (rebuilt at next start)',
        users: f.added,
        capacity: f.filter.params.capacity,
        bytes: f.filter.buffer.byteLength,
      };
    } catch (err) {
      filter = {
        state:
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? 'missing (built at next start)'
            : `unusable: ${(err as Error).message}`,
      };
    }
    const waiting = files(config.inbox, isCompleteFeedName);
    const report = {
      dataDir: config.dataDir,
      server: runningServer(config.dataDir),
      store: {
        users: userCount(store),
        fileBytes: statSync(join(config.dataDir, 'data.mdb')).size,
        // A full disk stops the loader (lookups go on): the first thing to look at when commits stop.
        freeBytes: freeBytes(config.dataDir),
        schema: store.meta.get('schema'),
        commits: writes,
        lastCommitAt: (store.meta.get('lastCommitAt') as number | undefined) ?? null,
        // Which members generation is live, and the ts of the snapshot it came from (changes older than it are stale).
        generation: store.generation(),
        snapshotTs: (store.meta.get(SNAPSHOT_TS_KEY) as number | undefined) ?? null,
      },
      filter,
      identity: {
        ids: entries(store.idmap),
        // One entry per (profile, linked id).
        links: entries(store.links),
        suppressed: entries(store.optout),
        auditEntries: entries(store.audit),
      },
      // Outbound destinations: how far each is delivered (the running sender's live view: GET /v1/admin/destinations).
      outbound: storedStatus(store),
      sources: {
        seed: {
          file: config.seed || null,
          checkpoint: progressOf(store.meta.get(SEED_CHECKPOINT) as FileCheckpoint | undefined),
        },
        inbox: {
          dir: config.inbox,
          waitingFiles: waiting.length,
          waitingBytes: waiting.reduce((a, f) => a + f.bytes, 0),
          inProgress: progressOf(store.meta.get(INBOX_CHECKPOINT) as FileCheckpoint | undefined),
          done: files(join(config.inbox, 'done'), () => true).length,
          rejectFiles: files(join(config.inbox, 'rejects'), (n) => n.endsWith('.rejects.ndjson')).map((f) => f.name),
        },
        import: { interrupted: progressOf(store.meta.get('ckpt:import') as FileCheckpoint | undefined) },
        nats: config.natsUrl
          ? {
              servers: config.natsUrl,
              stream: config.natsStream,
              durable: config.natsDurable,
              appliedThroughSeq:
                (store.meta.get(`ckpt:nats:${config.natsStream}:${config.natsDurable}`) as { seq: number } | undefined)
                  ?.seq ?? 0,
            }
          : null,
      },
    };
    if (flags.json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return 0;
    }
    const s = report.store;
    const inbox = report.sources.inbox;
    const lines = [
      `segd status — ${report.dataDir}`,
      `store    ${s.users.toLocaleString('en')} users · ${mib(s.fileBytes)} (${mib(s.freeBytes)} free on its filesystem) · schema ${String(s.schema)} · ${s.commits} commits` +
        (s.lastCommitAt ? ` · last commit ${new Date(s.lastCommitAt).toISOString()}` : ''),
      `snapshot ${s.snapshotTs ? `generation ${s.generation}, from a snapshot as of ${new Date(s.snapshotTs * 1000).toISOString()} (older changes are stale)` : 'none loaded'}`,
      `identity ${report.identity.ids.toLocaleString('en')} ids · ${report.identity.links.toLocaleString('en')} links · ${report.identity.suppressed.toLocaleString('en')} suppressed (opt-out, deletion) · ${report.identity.auditEntries} audit entries`,
      `server   ${report.server ? `running (pid ${report.server})` : 'not running'}`,
      `filter   ${String(filter.state)}${filter.users !== undefined ? ` · ${Number(filter.users).toLocaleString('en')} users · ${mib(Number(filter.bytes))}` : ''}`,
      `seed     ${report.sources.seed.file ?? 'none'}${report.sources.seed.checkpoint ? (report.sources.seed.checkpoint.done ? ' · done' : ` · ${report.sources.seed.checkpoint.percent}%`) : ''}`,
      `inbox    ${inbox.dir} · ${inbox.waitingFiles} file(s) waiting (${mib(inbox.waitingBytes)})` +
        (inbox.inProgress
          ? ` · in progress: ${inbox.inProgress.file} at ${inbox.inProgress.percent}% (line ${inbox.inProgress.line})`
          : '') +
        ` · ${inbox.done} done · ${inbox.rejectFiles.length} rejects file(s)`,
      `nats     ${report.sources.nats ? `${report.sources.nats.stream} as ${report.sources.nats.durable}: applied through stream seq ${report.sources.nats.appliedThroughSeq} (live lag: /readyz, segd_nats_pending)` : 'off'}`,
      `import   ${report.sources.import.interrupted ? `interrupted: ${report.sources.import.interrupted.file} at ${report.sources.import.interrupted.percent}% (run segd import again to resume)` : 'none interrupted'}`,
      ...report.outbound.map(
        (d) =>
          `outbound ${d.id}: delivered through seq ${d.cursor} · ${d.backlog.toLocaleString('en')} queued (oldest ${d.lagSeconds.toFixed(1)} s) · ` +
          `${d.sent} sent · ${d.failed} refused · ${d.retried} retried · ${d.deadLetters} dead letter(s)` +
          (d.lastError ? ` · last error ${new Date(d.lastError.at).toISOString()}: ${d.lastError.message}` : ''),
      ),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    await store.close();
  }
}
