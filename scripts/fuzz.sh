#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ for a while each and prints, per
# target, the executions, the coverage (libFuzzer's `cov`, edges reached)
# and the corpus size; minimises each corpus afterwards (it is kept in the
# repository, fuzz/corpus/TARGET/). Installs what it needs: a nightly
# toolchain (sanitizers) and cargo-fuzz. A crash stops the script with the
# target's output; libFuzzer leaves the input in fuzz/artifacts/TARGET/.
#
#   bash scripts/fuzz.sh                        # every target, 60 s each
#   bash scripts/fuzz.sh --seconds 3600 --runs 10000000 chain_hop wire
#
# A target stops at --seconds or --runs executions, whichever comes first.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup.sh

seconds=60
runs=-1   # -1: no limit on executions (libFuzzer's own default)
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown flag $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal >&2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked >&2
fi
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

# Seeds (valid objects of every kind) go in beside whatever the corpora
# already hold.
cargo run --quiet -p clemmys-fuzzing --example seed-corpus >/dev/null

cd fuzz
mkdir -p logs
summary=()
for target in "${targets[@]}"; do
    if [ "$runs" -ge 0 ]; then limit=", at most $runs runs"; else limit=""; fi
    echo "== $target: ${seconds} s$limit" >&2
    log="logs/$target.log"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -runs="$runs" -print_final_stats=1 >"$log" 2>&1 || {
        tail -40 "$log" >&2
        echo "fuzz.sh: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    }
    executions=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1)
    coverage=$(grep -oP '(DONE|pulse|NEW|REDUCE|INITED).*?cov: \K[0-9]+' "$log" | tail -1)
    cargo +nightly fuzz cmin "$target" "corpus/$target" >>"$log" 2>&1
    files=$(find "corpus/$target" -type f | wc -l)
    summary+=("$(printf '%-20s %12s %8s %8s' "$target" "${executions:-?}" "${coverage:-?}" "$files")")
done

printf '%-20s %12s %8s %8s\n' target executions cov corpus
printf '%s\n' "${summary[@]}"
