// A real LMDB store in a temp dir for tests that drive the writer directly,
// removed after the file's tests.
import { afterAll } from 'vitest';
import { rmSync } from 'node:fs';
import { openStore, type Store } from '../../src/store/env.js';
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
