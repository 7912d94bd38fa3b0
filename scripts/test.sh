#!/usr/bin/env bash
# Runs every test of Clemmys: formatting, the unit and integration tests of
# the whole workspace (real servers on loopback, real wasm), doc tests,
# clippy and rustdoc with warnings denied. This is what CI runs (.ci/run).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup.sh

# Each stage says how long the one before it took, so that a slow CI run
# shows where its time went.
echo "   (setup: $SECONDS s)"
STAGE_STARTED=$SECONDS
stage() {
    local now=$SECONDS
    [ -n "${STAGE_NAME:-}" ] && echo "   (${STAGE_NAME}: $((now - STAGE_STARTED)) s)"
    STAGE_NAME="$1"
    STAGE_STARTED=$now
    [ -n "$1" ] && echo "== $1"
    return 0
}

stage "building the example actions (wasm32-wasip1)"
bash scripts/build-examples.sh >/dev/null
stage "building the JavaScript engine (runtimes/js, wasm32-wasip1)"
bash scripts/build-runtimes.sh >/dev/null

stage "installing Apache OpenWhisk's npm client (clients/npm, pinned by its lock file)"
npm ci --prefix clients/npm --no-audit --no-fund --silent

stage "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path runtimes/js/Cargo.toml -- --check

stage "the JavaScript engine's own tests (native)"
CARGO_TARGET_DIR="$REPO/target/runtimes" cargo test --quiet --manifest-path runtimes/js/Cargo.toml

stage "starting a throwaway PostgreSQL for the PostgreSQL store's tests"
POSTGRES_DIR="$(mktemp -d)"
trap 'bash scripts/postgres.sh destroy "$POSTGRES_DIR"' EXIT
CLEMMYS_TEST_POSTGRES_URL="$(POSTGRES_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    bash scripts/postgres.sh start "$POSTGRES_DIR")"
export CLEMMYS_TEST_POSTGRES_URL

stage "building the tests"
cargo test --workspace --no-run --quiet
stage "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
    stage "doc tests"
    cargo test --workspace --doc --quiet
else
    cargo test --workspace --no-fail-fast
fi

stage "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
stage "cargo doc -D warnings (no broken or private links in the API docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
stage ""
echo "== all tests passed in $SECONDS s"
