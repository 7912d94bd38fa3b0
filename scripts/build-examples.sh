#!/usr/bin/env bash
# Builds the example actions (examples/actions, a workspace of its own) for
# wasm32-wasip1 in release, into target/examples/, and prints where the
# modules are and their sizes. Works from any directory; safe to rerun.
#
# The examples get a target dir of their own so this never waits on the
# lock of the host build in target/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=wasm32-wasip1
export CARGO_TARGET_DIR="$REPO/target/examples"
OUT="$CARGO_TARGET_DIR/$TARGET/release"

installed="$(rustup target list --installed)"
if ! grep -qx "$TARGET" <<<"$installed"; then
    echo "installing the $TARGET target" >&2
    rustup target add "$TARGET" >&2
fi

# Quiet on success; on failure cargo's diagnostics still go to stderr.
cd "$REPO/examples/actions"  # so that examples/actions/.cargo/config.toml applies
cargo build --quiet --release \
    --manifest-path "$REPO/examples/actions/Cargo.toml" \
    --target "$TARGET"

echo "$OUT/"
shopt -s nullglob
modules=("$OUT"/*.wasm)
if [ ${#modules[@]} -eq 0 ]; then
    echo "build-examples: no .wasm files in $OUT" >&2
    exit 1
fi
for wasm in "${modules[@]}"; do
    printf '%10d  %s\n' "$(stat -c %s "$wasm")" "$(basename "$wasm")"
done
