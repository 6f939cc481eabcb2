#!/usr/bin/env bash
# Installs the Debian programs segd's tests (and, with --bench, its benchmarks)
# need. Idempotent: packages already present are skipped. Called by .ci/run.
set -euo pipefail

# Programs the test suite runs for real: nats-server (JetStream source tests).
# Chromium and Redis join this list with the issues that need them.
# Programs the test suite runs for real: nats-server (JetStream source tests),
# chromium (cookie sync end to end, driven by playwright-core at /usr/bin/chromium),
# redis-server (the Fastify + Redis baseline of `segd loadtest --compare`).
# gcc and libc6-dev build native/openloop (the open-loop load client; its test runs it).
# haproxy runs deploy/haproxy.cfg in the shard routing and fault tests (test/scale-*.test.ts).
# g++, make and python3: node-gyp builds roaring (CRoaring, the insights index) from source in `npm ci`.
TEST_PACKAGES=(nats-server chromium redis-server gcc libc6-dev haproxy g++ make python3)
# Load generators for `npm run bench` (not needed by the tests).
BENCH_PACKAGES=(wrk util-linux)

want=("${TEST_PACKAGES[@]}")
[[ "${1:-}" == "--bench" ]] && want+=("${BENCH_PACKAGES[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-system: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup-system: nothing to install"
fi
