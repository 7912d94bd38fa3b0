#!/usr/bin/env bash
# Runs every test of Clemmys: formatting, the unit and integration tests of
# the whole workspace (real servers on loopback, real wasm), doc tests, and
# clippy with warnings denied. This is what CI runs (.ci/run).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup.sh

echo "== building the example actions (wasm32-wasip1)"
bash scripts/build-examples.sh >/dev/null
echo "== building the JavaScript engine (runtimes/js, wasm32-wasip1)"
bash scripts/build-runtimes.sh >/dev/null

echo "== installing Apache OpenWhisk's npm client (clients/npm, pinned by its lock file)"
npm ci --prefix clients/npm --no-audit --no-fund --silent

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path runtimes/js/Cargo.toml -- --check

echo "== the JavaScript engine's own tests (native)"
CARGO_TARGET_DIR="$REPO/target/runtimes" cargo test --quiet --manifest-path runtimes/js/Cargo.toml

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
    cargo test --workspace --doc --quiet
else
    cargo test --workspace --no-fail-fast
fi

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== all tests passed"
