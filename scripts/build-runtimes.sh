#!/usr/bin/env bash
# Builds the JavaScript engine (runtimes/js: QuickJS through rquickjs, a
# workspace of its own) for wasm32-wasip1 in release, into
# target/runtimes/wasm32-wasip1/release/clemmys-js.wasm, and prints its path
# and size. Works from any directory; safe to rerun.
#
# QuickJS is C. rquickjs-sys compiles it with the clang of a WASI SDK that it
# would download; instead we hand it one laid out from Debian's packages
# (clang, lld, wasi-libc, libclang-rt-dev-wasm32; scripts/setup.sh installs
# them): bin/clang is a wrapper renaming the target for clang 14, and the
# sysroot links Debian's wasm32-wasi headers and libc.
#
# Then clemmys-preinit (crates/preinit, a host tool of the root workspace,
# built in the root workspace's target directory) pre-initializes the
# engine with Wizer: QuickJS and the prelude are set up once here, and the
# module written is that snapshot (docs/JAVASCRIPT.md).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/scripts/setup.sh"
HOST_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
TARGET=wasm32-wasip1
export CARGO_TARGET_DIR="$REPO/target/runtimes"
OUT="$CARGO_TARGET_DIR/$TARGET/release"

SDK="$CARGO_TARGET_DIR/wasi-sdk"
mkdir -p "$SDK/bin" "$SDK/share/wasi-sysroot/include" "$SDK/share/wasi-sysroot/lib"
ln -sfn "$REPO/runtimes/js/toolchain/clang" "$SDK/bin/clang"
ln -sfn "$(command -v llvm-ar || command -v llvm-ar-14)" "$SDK/bin/ar"
ln -sfn /usr/include/wasm32-wasi "$SDK/share/wasi-sysroot/include/wasm32-wasi"
ln -sfn /usr/lib/wasm32-wasi "$SDK/share/wasi-sysroot/lib/wasm32-wasi"
export WASI_SDK="$SDK"

cargo build --quiet --release \
    --manifest-path "$REPO/runtimes/js/Cargo.toml" \
    --target "$TARGET"

# `--workspace` resolves features as the workspace's own builds do, so the
# tool shares their wasmtime build instead of compiling another.
CARGO_TARGET_DIR="$HOST_TARGET_DIR" cargo build --quiet \
    --manifest-path "$REPO/Cargo.toml" --workspace --bin clemmys-preinit
"$HOST_TARGET_DIR/debug/clemmys-preinit" "$OUT/clemmys-js.wasm" "$OUT/clemmys-js.wasm"

printf '%10d  %s\n' "$(stat -c %s "$OUT/clemmys-js.wasm")" "$OUT/clemmys-js.wasm"
