// Which native addon lmdb-js runs: the one built from source at install
// (native/build-lmdb.sh: node_modules/lmdb/build/Release, optimised) or its
// prebuilt package (for lmdb 3.5.6 on Linux a debug build, -O0: a restored
// node's writer costs ≈ 1.5× the CPU a record). Asked of lmdb-js's own loader
// (node-gyp-build-optional-packages, resolved from lmdb's directory), so the
// answer is the file lmdb-js loaded, whatever decided it.
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';

export interface LmdbAddon {
  path: string;
  /** Built from source here (a node-gyp build directory), not lmdb-js's prebuilt package. */
  fromSource: boolean;
}

export function lmdbAddon(): LmdbAddon {
  const entry = createRequire(import.meta.url).resolve('lmdb');
  let dir = dirname(entry);
  while (!dir.endsWith(`${sep}lmdb`) && dirname(dir) !== dir) dir = dirname(dir);
  const loader = createRequire(entry)('node-gyp-build-optional-packages') as { path(dir: string): string };
  const path = loader.path(dir);
  return { path, fromSource: path.includes(`${sep}build${sep}Release${sep}`) };
}
