#!/usr/bin/env bash
# The main job, from a fresh Debian machine: installs what is missing
# (build tools, Rust, the wasm32-wasip1 target), builds Clemmys and the
# example actions, starts a node on the embedded store, pins its key broker,
# deploys the `hello` example as a CONFIDENTIAL action, invokes it and prints
# the decrypted result, then keeps the node serving until Ctrl-C.
#
#   bash scripts/demo.sh          # run, then keep serving
#   bash scripts/demo.sh --once   # run, then stop the node
#
# Environment: CLEMMYS_LISTEN (default 127.0.0.1:3233), CLEMMYS_DATA_DIR
# (default target/demo/data), CLEMMYS_HOME (the client's keys; default
# target/demo/client).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup.sh

ONCE=false
[ "${1:-}" = "--once" ] && ONCE=true
LISTEN="${CLEMMYS_LISTEN:-127.0.0.1:3233}"
DATA="${CLEMMYS_DATA_DIR:-$REPO/target/demo/data}"
export CLEMMYS_HOME="${CLEMMYS_HOME:-$REPO/target/demo/client}"
export WSK_CONFIG_FILE="$DATA/wskprops"

echo "== building the example actions (wasm32-wasip1)"
bash scripts/build-examples.sh >/dev/null
echo "== building the JavaScript engine (runtimes/js, wasm32-wasip1)"
bash scripts/build-runtimes.sh >/dev/null
EXAMPLES="$REPO/target/examples/wasm32-wasip1/release"
echo "== building clemmys (release; the first build takes about 10 minutes)"
cargo build --release --quiet -p clemmys
BIN="$REPO/target/release/clemmys"

echo "== starting a node on $LISTEN (data in $DATA)"
mkdir -p "$DATA"
rm -f "$DATA/wskprops"
"$BIN" serve --listen "$LISTEN" --data-dir "$DATA" &
NODE=$!
stop_node() { kill "$NODE" 2>/dev/null || true; wait "$NODE" 2>/dev/null || true; }
trap stop_node EXIT
for _ in $(seq 1 300); do
    if [ -s "$DATA/wskprops" ] && "$BIN" namespace list >/dev/null 2>&1; then break; fi
    if ! kill -0 "$NODE" 2>/dev/null; then echo "the node exited; see the messages above" >&2; exit 1; fi
    sleep 0.1
done

echo "== pinning the key broker (its attestation is shown below)"
"$BIN" broker trust --yes
echo "== deploying hello as a confidential action"
"$BIN" action update hello "$EXAMPLES/hello.wasm"
echo "== invoking it: parameters sealed to the enclave, result decrypted here"
"$BIN" action invoke hello --param name Clemmys --result
echo "== what the provider stored (ciphertext only):"
"$BIN" --json activation list --limit 1 --full | grep -E '"(activationId|status|sealed)"' | cut -c1-100
echo "== verifying the enclave's receipt"
"$BIN" activation verify --last

if $ONCE; then
    echo "== done"
    exit 0
fi
cat <<INFO

The node keeps serving on http://$LISTEN (Ctrl-C stops it). Try, in another shell:
  export WSK_CONFIG_FILE=$WSK_CONFIG_FILE CLEMMYS_HOME=$CLEMMYS_HOME
  $BIN action invoke hello -p name you -r
  $BIN action create wc $EXAMPLES/wordcount.wasm && $BIN action invoke wc -p text 'to be or not' -r
  $BIN activation list
INFO
trap - EXIT
wait "$NODE"
