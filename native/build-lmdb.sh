#!/usr/bin/env bash
# Builds lmdb-js's native addon from source (node-gyp's Release build: -O3)
# into node_modules/lmdb/build/Release, which lmdb-js loads before its
# prebuilt package. Runs as npm's postinstall.
#
# Why: the prebuilt addon lmdb 3.5.6 ships for Linux (@lmdb/lmdb-linux-x64)
# is a debug build: its DWARF producer reads `-g -O3 -O0`, and the last -O
# wins. Built here, a restored node's catch-up at 10M costs the writer
# 31.9 µs of CPU a record against 49.1 (bench:catchup, 3 alternating rounds,
# 2026-12-04), and its 20,000-record commits take 0.6–0.8 s against
# 0.75–1.3 s (docs/benchmarks/2026-12-04-afternoon.md). Lookups gain little:
# batch 815k against 801k keys per CPU-second.
#
# Needs g++, make and python3 (.ci/setup-system.sh installs them; roaring
# builds from source the same way) and Node's headers (node-gyp finds them
# through npm's `nodedir`, or downloads them). Without a compiler this says so
# and exits 0: segd then runs on the prebuilt addon, and logs that it does.
# --require makes that an error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lmdb="$root/node_modules/lmdb"
out="$lmdb/build/Release/lmdb.node"
if [[ ! -f "$lmdb/package.json" ]]; then
  echo "native/build-lmdb.sh: no node_modules/lmdb (run npm ci)" >&2
  exit 1
fi
# Up to date: built after this lmdb was installed.
if [[ -f "$out" && "$out" -nt "$lmdb/package.json" ]]; then exit 0; fi
for tool in g++ make python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    msg="native/build-lmdb.sh: no $tool; lmdb-js keeps its prebuilt addon (a debug build: writes cost ≈ 1.5× a source build)"
    if [[ "${1:-}" == "--require" ]]; then echo "$msg" >&2; exit 1; fi
    echo "$msg" >&2
    exit 0
  fi
done
# npm hands its own node-gyp to lifecycle scripts; run by hand, the one installed beside segd's deps.
gyp=${npm_config_node_gyp:-$root/node_modules/node-gyp/bin/node-gyp.js}
echo "native/build-lmdb.sh: building lmdb-js's addon from source (about 30 s on 2 cores)"
(cd "$lmdb" && node "$gyp" rebuild --jobs 2 >"$lmdb/build-from-source.log" 2>&1) || {
  echo "native/build-lmdb.sh: the build failed; its log: $lmdb/build-from-source.log" >&2
  tail -20 "$lmdb/build-from-source.log" >&2
  exit 1
}
echo "native/build-lmdb.sh: built $out"
