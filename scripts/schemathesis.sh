#!/usr/bin/env bash
# Tests the real rest-sessions binary against its own /openapi.json with schemathesis
# (every check: no 5xx, documented statuses, content types and reply schemas, inputs
# outside the schema rejected, inputs inside it accepted, the create -> get/set/kill links),
# once on a throwaway redis-server and once on the embedded store (events on, so
# `/{app}/events` serves its JSON pages). Bounded: a fixed seed,
# a few dozen examples per operation, and each run under `timeout`.
# Needs: cargo, redis-server, curl, and schemathesis (pip install schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug/rest-sessions
cargo build --quiet -p rest-sessions
# `st` where pip put it on PATH, else the same CLI through the interpreter.
if command -v st >/dev/null 2>&1; then st=(st); else st=(python3 -m schemathesis.cli); fi
examples=${ST_MAX_EXAMPLES:-50}
seed=${ST_SEED:-20261129}
pids=()
work=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until http://127.0.0.1:$1/ping answers PONG (at most 15 s).
wait_ping() {
  for _ in $(seq 150); do
    if [ "$(curl -s --max-time 1 "http://127.0.0.1:$1/ping" || true)" = PONG ]; then return 0; fi
    sleep 0.1
  done
  echo "rest-sessions on port $1 did not answer /ping" >&2
  return 1
}

run_st() { # name port
  echo "== schemathesis: $1 store =="
  # From the scratch folder: schemathesis leaves a cache folder where it runs.
  (cd "$work" && timeout 600 "${st[@]}" run "http://127.0.0.1:$2/openapi.json" \
    --checks all \
    --max-examples "$examples" \
    --seed "$seed" \
    --request-timeout 10 \
    --generation-database none \
    --no-color) || {
    echo "-- the server's log ($1 store), last lines:"
    tail -n 20 "$work/$1-store.log"
    return 1
  }
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

status=0
port=$(free_port)
env -u RS_AUTH_TOKEN RS_PORT="$port" RS_REDISPORT="$redis_port" RS_WIPE=0 RS_EVENTS=true RUST_LOG=warn \
  "$bin" >"$work/redis-store.log" 2>&1 &
pids+=($!)
wait_ping "$port"
run_st redis "$port" || status=1

port=$(free_port)
env -u RS_AUTH_TOKEN RS_PORT="$port" RS_WIPE=0 RS_EVENTS=true RUST_LOG=warn "$bin" --store memory \
  >"$work/memory-store.log" 2>&1 &
pids+=($!)
wait_ping "$port"
run_st memory "$port" || status=1

exit "$status"
