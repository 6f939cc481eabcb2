// A real LMDB store in a temp dir for tests that drive the writer directly,
// removed after the file's tests; the privacy actions on such a writer.
import { afterAll } from 'vitest';
import { rmSync } from 'node:fs';
import { openStore, type Store } from '../../src/store/env.js';
import { pino } from 'pino';
import { Forget } from '../../src/privacy/forget.js';
import type { Writer } from '../../src/loader/writer.js';
import { tempDir } from './server.js';

export function tempStore(): Store {
  const dir = tempDir();
  const store = openStore(dir);
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** Opt-outs and deletions on `writer`, composed as the loader does. */
export function forgetting(store: Store, writer: Writer): Forget {
  return new Forget(store, writer, writer.graph, writer.suppressed, {
    deletionTombstoneDays: 30,
    log: pino({ level: 'silent' }),
  });
}
