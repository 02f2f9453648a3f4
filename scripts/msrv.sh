#!/usr/bin/env bash
# The MSRV build: every crate of the workspace, with its tests, examples and benches,
# type-checked by the oldest toolchain Cargo.toml promises (`rust-version`), so that a
# promise the code or a dependency broke is caught before a user on that toolchain finds it.
#
# Dependencies are resolved as cargo's MSRV-aware resolver resolves them for such a user
# (`incompatible-rust-versions = "fallback"`, the default of resolver 3): newer releases of
# a dependency that need a newer rustc are passed over. The committed Cargo.lock is built
# by the current stable toolchain and may hold such releases (uuid 1.29 needs 1.89), so the
# build runs on a copy of the sources under target/msrv-src with a lockfile of its own;
# the repository's Cargo.lock is not touched.
#
# The toolchain is installed with rustup when missing and the network answers; otherwise
# the step is skipped with the reason printed (exit 0), so an offline run does not fail on
# it. Time on the 2-core development machine: see CONTRIBUTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
if [ -z "$msrv" ]; then
  echo "msrv: no rust-version in Cargo.toml"
  exit 1
fi
if ! command -v rustup >/dev/null 2>&1; then
  echo "msrv: skipped, rustup is not installed (needed to get Rust $msrv)"
  exit 0
fi
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  echo "msrv: installing Rust $msrv (minimal profile)"
  if ! timeout 300 rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1; then
    echo "msrv: skipped, Rust $msrv is not installed and could not be installed (offline?)"
    exit 0
  fi
fi

copy=target/msrv-src
rm -rf "$copy/crates"
mkdir -p "$copy"
cp -r crates Cargo.toml Cargo.lock "$copy/"
cd "$copy"
# An offline machine keeps the copy's last lockfile; a first offline run has none to use.
CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback timeout 300 \
  cargo "+$msrv" update --quiet 2>&1 || echo "msrv: lockfile not refreshed (offline?): using the copied one"
echo "msrv: cargo +$msrv check --workspace --all-targets"
CARGO_TARGET_DIR="$PWD/../msrv" timeout 1800 cargo "+$msrv" check --workspace --all-targets 2>&1 \
  | grep -v -e '^ *Compiling' -e '^ *Checking' -e '^ *Downloaded' -e '^ *Downloading' -e '^ *Locking' -e '^ *Adding' -e '^ *Updating'
