#!/usr/bin/env bash
# Makes sure this machine can build Clemmys: a C toolchain, curl and a Rust
# toolchain (rustup, stable), plus the wasm32-wasip1 target for the example
# actions and, for the JavaScript engine (QuickJS, C, built for wasm32-wasip1
# in runtimes/js), clang, lld, wasi-libc and clang's wasm32 runtime library,
# Node with npm for the tests that use OpenWhisk's npm client, Chromium
# for the test that renders a web action's page in a browser, and
# PostgreSQL for the tests of the PostgreSQL store, and nats-server for
# those of the NATS bus.
# Safe to rerun; does nothing that is already done.
#
# Sourced by demo.sh and test.sh; can also be run on its own.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v wasm-ld >/dev/null 2>&1 || missing+=(lld)
command -v llvm-ar >/dev/null 2>&1 || missing+=(llvm)
[ -f /usr/lib/wasm32-wasi/libc.a ] || missing+=(wasi-libc)
compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a' >/dev/null \
    || missing+=(libclang-rt-dev-wasm32)
# Node and npm drive a node with Apache OpenWhisk's own npm client in the
# tests (clients/npm).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# Headless Chromium renders a web action's HTML page, scripts and all
# (crates/cli/tests/all/browser.rs).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# PostgreSQL for the tests of the PostgreSQL store (scripts/postgres.sh
# starts a throwaway cluster; the package's own cluster is not used).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# nats-server (JetStream) for the tests of the NATS bus (scripts/nats.sh
# starts a throwaway server; the package's own service is not used).
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${missing[*]}" >&2
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "setup: please install ${missing[*]} (no apt-get here)" >&2
        exit 1
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "setup: installing Rust with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt >&2
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
    echo "setup: adding the wasm32-wasip1 target" >&2
    rustup target add wasm32-wasip1 >&2
fi
