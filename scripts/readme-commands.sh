#!/usr/bin/env bash
# Runs every command the READMEs and docs pages show (listed by scripts/readme-commands.py:
# README.md, CONTRIBUTING.md, crates/*/README.md, docs/*.md), so that a page cannot drift
# from the code: servers are started, asked once and stopped;
# benchmarks run with a tiny size; the test commands are what scripts/test.sh runs anyway.
# A command shown in a README that this script does not know fails the run: add it here.
# Ports are free ones picked here (a README's 3000, 6379 and 8080 are replaced by them),
# and a local redis-server stands in for the README's Redis. Bounded: each step has a
# time limit. Called by scripts/test.sh; needs redis-server, node (interop/node_modules),
# wrk and curl, which test.sh installs.
# `--dry-run`: only says how each command would be exercised (no Redis, no build, nothing
# run), so a new command on a page is found unknown in a second.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
[ "${1:-}" = --dry-run ] && dry=1

work=$(mktemp -d)
started=()
cleanup() {
  for pid in "${started[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

failures=0
fail() {
  echo "README COMMAND FAILED: $*"
  failures=$((failures + 1))
}

# A Redis for the commands that expect one, and one with the README's password "secret".
redis_port=$(free_port)
secret_port=$(free_port)
if [ "$dry" = 0 ]; then
  setsid redis-server --port "$redis_port" --save '' --appendonly no </dev/null >"$work/redis.log" 2>&1 &
  started+=($!)
  setsid redis-server --port "$secret_port" --requirepass secret --save '' --appendonly no \
    </dev/null >"$work/redis-secret.log" 2>&1 &
  started+=($!)
  for port in "$redis_port" "$secret_port"; do
    for _ in $(seq 50); do
      redis-cli -p "$port" -a secret --no-auth-warning ping 2>/dev/null | grep -q -e PONG -e NOAUTH && break
      sleep 0.1
    done
  done

  # Built once up front, so a server's start is not its build (the commands then build nothing).
  # Two builds: built together, rs-bench's `bench` feature unifies into redis-sessions, and
  # `cargo run -p rest-sessions` alone (a README line) would then rebuild it inside its 60 s.
  cargo build --release -p rs-bench 2>&1 | grep -v '^ *Compiling' || true
  cargo build --release -p rest-sessions 2>&1 | grep -v '^ *Compiling' || true
  cargo build -p redis-sessions-axum --example demo 2>&1 | grep -v '^ *Compiling' || true
  cargo build -p sessions-admin 2>&1 | grep -v '^ *Compiling' || true
  cargo build --release -p sessions-admin --example check-rate 2>&1 | grep -v '^ *Compiling' || true
  export PATH="$PWD/target/release:$PATH"   # `rest-sessions`, as an installed binary
fi

# Runs `command` (a README line, ports replaced) as a server in its own process group,
# asks `http://127.0.0.1:port/path` once until the reply contains `expect` (60 s at most),
# then stops it with SIGTERM (what an operator sends) and waits for it (15 s at most).
serve_once() {
  local port=$1 path=$2 expect=$3 command=$4 log="$work/server.log"
  if [ "$dry" = 1 ]; then echo "would serve and ask GET $path: $command"; return; fi
  setsid bash -c "exec env $command" </dev/null >"$log" 2>&1 &
  local pid=$!
  started+=("$pid")
  local reply="" ok=0
  for _ in $(seq 600); do
    reply=$(curl -sS --max-time 2 "http://127.0.0.1:$port$path" 2>/dev/null || true)
    if [[ "$reply" == *"$expect"* ]]; then ok=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ok" = 1 ]; then
    echo "ok: $command (GET $path: ${reply:0:60})"
  else
    fail "$command (GET $path answered '${reply:0:200}'); its log:"
    tail -n 20 "$log"
  fi
}

# Runs a command to completion within `limit` seconds.
run_bounded() {
  local limit=$1 command=$2 log="$work/run.log"
  if [ "$dry" = 1 ]; then echo "would run (at most $limit s): $command"; return; fi
  local began=$SECONDS
  if timeout --kill-after=10 "$limit" bash -c "$command" </dev/null >"$log" 2>&1; then
    echo "ok: $command ($((SECONDS - began)) s)"
  else
    fail "$command; its output:"
    tail -n 30 "$log"
  fi
}

# The curl examples of the REST README, in order, against one server of the embedded store.
curl_port=$(free_port)
curl_server_pid=""
TOKEN=""
curl_step() {
  local expected=$1 command=${2//127.0.0.1:3000/127.0.0.1:$curl_port}
  if [ "$dry" = 1 ]; then echo "would curl, expecting $expected: $2"; return; fi
  if [ -z "$curl_server_pid" ]; then
    setsid bash -c "RS_PORT=$curl_port RS_WIPE=0 exec rest-sessions --store memory" \
      </dev/null >"$work/curl-server.log" 2>&1 &
    curl_server_pid=$!
    started+=("$curl_server_pid")
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$curl_port/ping" >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  local status body="$work/curl-body"
  status=$(TOKEN=$TOKEN RS_AUTH_TOKEN=unused bash -c \
    "curl() { command curl -sS --max-time 5 -o '$body' -w '%{http_code}' \"\$@\"; }; $command" </dev/null || echo 000)
  if [[ -z "$TOKEN" && "$command" == *"/create/"* ]]; then
    TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("token",""))' "$body" 2>/dev/null || true)
  fi
  if { [ "$expected" = 2xx ] && [[ "$status" == 2?? ]]; } || [ "$status" = "$expected" ]; then
    echo "ok: $2 ($status)"
  else
    fail "$2: HTTP $status, expected $expected: $(head -c 200 "$body" 2>/dev/null)"
  fi
}

tiny_bench="--sizes 20 --reps 1 --sequential 20 --cached-gets 200 --json $work/bench.json"
tiny_rest_bench="--seconds 1 --reps 1 --connections 2 --get-sessions 50"
tiny_durable="--seconds 1 --reps 1 --concurrency 2"

while IFS=$'\t' read -r expected command page; do
  with_ports=${command//127.0.0.1:6379/127.0.0.1:$redis_port}
  port=$(free_port)
  case "$command" in
    "scripts/test.sh" | "cargo test --workspace" | "cargo test -p "* | "scripts/schemathesis.sh" | \
    "cargo package" | "scripts/import-cycles.py" | "scripts/readme-commands.sh")
      echo "ok: $command (what scripts/test.sh runs)" ;;
    "cargo fmt --all --check" | "cargo clippy --workspace --all-targets -- -D warnings" | \
    'RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps' | "python3 scripts/doc-links.py" | \
    "python3 scripts/import-cycles.py "* | "python3 scripts/public-api.py --check" | "scripts/msrv.sh" | \
    "scripts/readme-commands.sh --dry-run")
      echo "ok: $command (a gate scripts/test.sh runs)" ;;
    "scripts/test-fast.sh" | "cargo build --workspace")
      run_bounded 900 "$command" ;;
    curl\ *)
      curl_step "$expected" "$command" ;;
    "cargo run --release -p rest-sessions -- --store memory" | "rest-sessions --store memory")
      serve_once "$port" /ping PONG "RS_PORT=$port $command" ;;
    "cargo run --release -p rest-sessions")
      serve_once "$port" /health '"status":"ok"' "RS_PORT=$port RS_REDISPORT=$redis_port $command" ;;
    "RS_REDISURL=redis://:secret@redis.internal:6379/0 rest-sessions")
      serve_once "$port" /health '"status":"ok"' \
        "RS_PORT=$port ${command//redis.internal:6379/127.0.0.1:$secret_port}" ;;
    'RS_AUTH_TOKEN=$(openssl rand -hex 32) RS_CONSOLE=true RS_CONSOLE_APPS=shop,blog RS_EVENTS=true rest-sessions')
      # The console's page is public (it asks for the token): its title shows it is served.
      serve_once "$port" /console "rest-sessions console" "RS_PORT=$port RS_REDISPORT=$redis_port $command" ;;
    "cargo run -p redis-sessions-axum --example demo" | \
    "cargo run -p redis-sessions-axum --example demo -- --redis redis://127.0.0.1:6379/")
      serve_once "$port" / "<" "PORT=$port $with_ports" ;;
    "REDIS_URL=redis://127.0.0.1:6379/ PORT=8080 cargo run -p redis-sessions-axum --example demo")
      serve_once "$port" / "<" "${with_ports//PORT=8080/PORT=$port}" ;;
    "cargo run --release -p rs-bench" | "cargo run --release -p rs-bench -- --cluster")
      sep=$([[ "$command" == *" -- "* ]] && echo "" || echo " --")
      run_bounded 300 "$command$sep $tiny_bench" ;;
    "cargo run --release -p rs-bench --bin rest-bench")
      run_bounded 300 "$command -- $tiny_rest_bench" ;;
    "cargo run --release -p rs-bench --bin durable-bench")
      run_bounded 300 "$command -- $tiny_durable" ;;
    "cargo run --release -p rs-bench --bin set-cost")
      run_bounded 300 "$command -- --keys 10,100 --reps 3" ;;
    "cargo run --release -p rs-bench --bin events-cost")
      run_bounded 300 "$command -- --sessions 200 --reps 1" ;;
    "cargo run --release -p sessions-admin --example check-rate")
      run_bounded 300 "$command -- --sessions 2000" ;;
    sessions-admin\ *)
      # Against the local Redis (empty namespace: every command must end 0 or 1, never 2).
      run_bounded 60 "RS_REDISPORT=$redis_port target/debug/$command; rc=\$?; [ \$rc -le 1 ]" ;;
    "scripts/overload-bench.py")
      run_bounded 300 "$command --tiny" ;;
    "scripts/bench.sh")
      run_bounded 600 "REST_BENCH_ARGS='$tiny_rest_bench' $command $tiny_bench" ;;
    *)
      fail "not exercised by scripts/readme-commands.sh (add it there): $command (shown in $page)" ;;
  esac
done < <(python3 scripts/readme-commands.py)

if [ "$failures" -gt 0 ]; then
  echo "readme commands: $failures failed"
  exit 1
fi
echo "readme commands: all ok"
