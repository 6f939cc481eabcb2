// The seed feed: a file imported once into an empty store (or one whose
// seeding a crash interrupted, resumed from its checkpoint), before the inbox.
import { existsSync } from 'node:fs';
import type { Store } from '../store/env.js';
import { userCount } from '../store/env.js';
import type { Logger } from '../log.js';
import { importFile, type FileCheckpoint, type ImportOptions, type ImportSummary } from './file-import.js';
import type { Writer } from './writer.js';

export const SEED_CHECKPOINT = 'ckpt:seed';

/** Imports the seed file when the store needs it; null when it did not. */
export async function importSeed(
  store: Store,
  writer: Writer,
  path: string,
  opts: Omit<ImportOptions, 'checkpointKey'>,
  log: Logger,
): Promise<ImportSummary | null> {
  const cp = store.meta.get(SEED_CHECKPOINT) as FileCheckpoint | undefined;
  if (cp?.done) return null;
  // Only an empty store is seeded (or one whose seeding a crash interrupted).
  if (!cp && userCount(store) > 0) return null;
  if (!existsSync(path)) {
    log.warn({ seed: path }, 'seed file not found; starting empty');
    return null;
  }
  const s = await importFile(store, writer, path, { checkpointKey: SEED_CHECKPOINT, ...opts });
  log.info({ seed: path, applied: s.applied, rejected: s.rejected, ms: Math.round(s.ms) }, 'seed feed imported');
  return s;
}
