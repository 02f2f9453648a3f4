#!/usr/bin/env bash
# Runs both benchmarks from a fresh machine: installs what they need when missing
# (redis-server, wrk, node and the interop npm packages), then the library benchmark
# (rs-bench: ours vs the npm module vs the Redis ceiling) and the REST benchmark
# (rest-bench: rest-sessions vs Express + the npm module, loaded by wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ! -d interop/node_modules/redis-sessions ] || [ ! -d interop/node_modules/express ]; then
  (cd interop && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo build --release -p rs-bench -p rest-sessions
./target/release/rs-bench "$@"
# REST_BENCH_ARGS: rest-bench's own flags (e.g. `--seconds 1` for a quick check).
# shellcheck disable=SC2086
./target/release/rest-bench ${REST_BENCH_ARGS:-}
