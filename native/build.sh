#!/usr/bin/env bash
# Builds the native open-loop client (native/openloop/openloop.c) into
# native/build/openloop with gcc -O2. `segd loadtest` drives open loops with it
# when it is there, and with the Node client otherwise (docs/load-testing.md).
# gcc and libc6-dev come with the Debian image (.ci/setup-system.sh installs
# them if not). Without a C compiler this says so and exits 0, so `npm test`
# and `npm run bench` still run; --require makes that an error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/build/openloop"
src="$here/openloop/openloop.c"
cc=${CC:-gcc}
if ! command -v "$cc" >/dev/null 2>&1; then
  msg="native/build.sh: no C compiler ($cc); segd loadtest will use the Node open-loop client"
  if [[ "${1:-}" == "--require" ]]; then echo "$msg" >&2; exit 1; fi
  echo "$msg" >&2
  exit 0
fi
# Up to date: nothing to do (the build runs before every test and bench).
if [[ -x "$out" && "$out" -nt "$src" && "$out" -nt "$0" ]]; then exit 0; fi
mkdir -p "$here/build"
"$cc" -O2 -Wall -Wextra -std=gnu11 -o "$out.tmp" "$src" -lm
mv "$out.tmp" "$out"
