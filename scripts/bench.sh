#!/usr/bin/env bash
# Runs the benchmark suite, `clemmys bench`, with everything it compares
# against: builds clemmys in release and the example actions, installs
# `wasmtime serve` (wasmtime-cli, the 48.0 line Clemmys uses) into
# target/peer/ if it is missing, builds the wasi:http hello component it
# serves (examples/peer/hello-http, for wasm32-wasip2), then runs
#
#   target/release/clemmys bench --peer target/peer/bin/wasmtime \
#       --peer-component <hello_http.wasm> "$@"
#
# Extra arguments go to `clemmys bench`: `--quick` for a smoke run of about a
# minute, `--only warm,peer,...`, `--out target/bench/bench.json` (also
# writes target/bench/bench.svg), `--publish` (docs/bench.svg and
# docs/bench.json, for the README), `--json`. See docs/BENCHMARKS.md.
#
# Works from any directory. Run it on an idle machine: figures taken while
# something else uses the CPU are worthless.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PEER_ROOT="$REPO/target/peer"
WASMTIME="$PEER_ROOT/bin/wasmtime"
PEER_TARGET=wasm32-wasip2
PEER_BUILD="$REPO/target/peer-build"
COMPONENT="$PEER_BUILD/$PEER_TARGET/release/hello_http.wasm"

# (a) wasmtime serve: the peer, same version line as our wasmtime.
if [ ! -x "$WASMTIME" ]; then
    echo "bench.sh: installing wasmtime-cli 48.0.x into $PEER_ROOT" >&2
    echo "bench.sh: this compiles wasmtime and takes about 20 minutes on 2 cores (once)" >&2
    cargo install --locked wasmtime-cli --version '~48.0' --root "$PEER_ROOT"
fi
echo "bench.sh: peer $("$WASMTIME" --version)" >&2

# (b) The component it serves.
installed="$(rustup target list --installed)"
if ! grep -qx "$PEER_TARGET" <<<"$installed"; then
    echo "bench.sh: installing the $PEER_TARGET target" >&2
    rustup target add "$PEER_TARGET" >&2
fi
CARGO_TARGET_DIR="$PEER_BUILD" cargo build --quiet --release \
    --manifest-path "$REPO/examples/peer/hello-http/Cargo.toml" \
    --target "$PEER_TARGET"

# (c) Clemmys in release, and the example actions it deploys.
cargo build --quiet --release -p clemmys
bash "$REPO/scripts/build-examples.sh" >/dev/null

# (d) The suite.
exec "$REPO/target/release/clemmys" bench \
    --actions-dir "$REPO/target/examples/wasm32-wasip1/release" \
    --peer "$WASMTIME" --peer-component "$COMPONENT" "$@"
