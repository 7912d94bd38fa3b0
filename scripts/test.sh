#!/usr/bin/env bash
# Runs every test of Clemmys: formatting, the unit and integration tests of
# the whole workspace (real servers on loopback, real wasm), doc tests,
# clippy and rustdoc with warnings denied. This is what CI runs (.ci/run).
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

echo "== starting a throwaway PostgreSQL for the PostgreSQL store's tests"
POSTGRES_DIR="$(mktemp -d)"
trap 'bash scripts/postgres.sh destroy "$POSTGRES_DIR"' EXIT
CLEMMYS_TEST_POSTGRES_URL="$(POSTGRES_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    bash scripts/postgres.sh start "$POSTGRES_DIR")"
export CLEMMYS_TEST_POSTGRES_URL

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
    cargo test --workspace --doc --quiet
else
    cargo test --workspace --no-fail-fast
fi

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo doc -D warnings (no broken or private links in the API docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== all tests passed"
