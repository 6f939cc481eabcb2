// lmdb-js's prebuilt addon for Linux is a debug build (-O0); npm's postinstall
// (native/build-lmdb.sh) builds it from source, and lmdb-js loads that one.
// A machine whose install skipped the build fails here, and its segd says so
// in its log at start.
import { describe, expect, it } from 'vitest';
import { join, resolve } from 'node:path';
import { lmdbAddon } from '../src/store/lmdb-addon.js';
import { startSegd, stopReport, CLEAN_STOP } from './helpers/server.js';

describe('lmdb-js native addon', () => {
  it('is the one built from source at install, and segd logs it at start', async () => {
    expect(process.env.LMDB_PREBUILD, 'LMDB_PREBUILD overrides the addon').toBeUndefined();
    const root = resolve(import.meta.dirname, '..');
    expect(lmdbAddon()).toEqual({ path: join(root, 'node_modules/lmdb/build/Release/lmdb.node'), fromSource: true });
    const segd = await startSegd();
    try {
      const line = segd.logs.find((l) => l.msg === 'lmdb addon built from source');
      expect(line?.addon).toBe(join(root, 'node_modules/lmdb/build/Release/lmdb.node'));
    } finally {
      expect(await stopReport(segd)).toEqual(CLEAN_STOP);
    }
  });
});
