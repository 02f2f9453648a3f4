#!/usr/bin/env bash
# The fast tier, for contributors: what can be checked without root, network or a Redis,
# in a few minutes from a warm target/ (the figure is in CONTRIBUTING.md). It runs
#   - the unit tests of every crate (`--lib --bins`),
#   - the doc tests (every example in the docs compiles, and runs unless marked no_run),
#   - every integration test of the embedded (in-memory) store: the behaviour suite's
#     `::memory` half, the model and merge property tests, the middleware's and the REST
#     server's embedded-store tests (test names holding `memory` or `embedded`),
# and installs nothing. The Redis, cluster, Sentinel, Node-interop, browser, schemathesis and
# overload suites are the full tier: scripts/test.sh.
#
# No test here starts a redis-server: RS_TEST_SERVER and RS_TEST_CLI point at nothing, so a
# test that would need one fails here rather than passing on a machine that happens to
# have Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

export RS_TEST_SERVER=/nonexistent/redis-server RS_TEST_CLI=/nonexistent/redis-cli
began=$SECONDS
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() {
  echo "--- $*"
  "$@" 2>&1 | tee -a "$log" | grep -v -e '^ *Compiling' -e '^test .* ok$' || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}
step cargo test --workspace --lib --bins --no-fail-fast
step cargo test --workspace --doc --no-fail-fast
# `memory_budget`: the REST server's overload tests, which load it for minutes (full tier).
step cargo test --workspace --test '*' --no-fail-fast -- memory embedded --skip memory_budget
awk '/^test result:/ { p += $4; f += $6 } END { printf "fast tier: %d passed, %d failed", p, f }' "$log"
echo " in $((SECONDS - began)) s"
exit "$status"
