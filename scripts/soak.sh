#!/usr/bin/env bash
# Soaks a Clemmys node: builds `clemmys` and `clemmys-soak` in release and
# the example actions, then runs a real `clemmys serve` process under a
# mixed load (plain and confidential, blocking and non-blocking, a
# sequence, creates and deletes, functions that trap, loop, hog memory and
# flood logs) for 30 minutes, printing throughput, p50/p99, errors, RSS and
# open descriptors every minute. It fails if an operation ends unexpectedly,
# if an acknowledged (202) activation has no record at the end, or if RSS
# or descriptors keep growing.
#
#   bash scripts/soak.sh                                # 30 min, no crash
#   bash scripts/soak.sh --minutes 10 --crash-every 2   # SIGKILL + restart
#   bash scripts/soak.sh --minutes 60 --rate 200 --json soak.json
#
# Every flag goes to clemmys-soak (see `--help`).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup.sh

echo "== building the example actions (wasm32-wasip1)" >&2
bash scripts/build-examples.sh >/dev/null
echo "== building clemmys and clemmys-soak (release)" >&2
cargo build --release --quiet -p clemmys -p clemmys-bench --bin clemmys --bin clemmys-soak

exec target/release/clemmys-soak \
    --actions-dir target/examples/wasm32-wasip1/release \
    --clemmys target/release/clemmys \
    "$@"
