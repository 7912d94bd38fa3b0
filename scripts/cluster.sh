#!/usr/bin/env bash
# A scaled-out Clemmys on this machine: PostgreSQL (scripts/postgres.sh),
# nats-server with JetStream (scripts/nats.sh), the key broker
# (`clemmys broker serve`, its sealed state in DIR/broker), a controller
# and two invokers, each a `clemmys serve` process of its own. Every
# process uses the one broker, so confidential actions deployed through
# the controller run on any invoker.
#
#   cluster.sh start DIR [PORT]   start everything under DIR, the API on
#                                 127.0.0.1:PORT (default 3233); prints the
#                                 API URL, the broker URL and the guest auth
#   cluster.sh stop DIR           stop everything, keeping DIR
#   cluster.sh destroy DIR        stop everything and delete DIR
#
# The clemmys binary is $CLEMMYS_BIN, else target/debug/clemmys (built if
# missing). Logs are in DIR/*.log. Every process serves loopback only.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "cluster.sh: $*" >&2; exit 1; }

bin() {
    if [ -n "${CLEMMYS_BIN:-}" ]; then echo "$CLEMMYS_BIN"; return; fi
    local target="${CARGO_TARGET_DIR:-$REPO/target}"
    if [ ! -x "$target/debug/clemmys" ]; then
        (cd "$REPO" && cargo build --quiet -p clemmys) >&2
    fi
    echo "$target/debug/clemmys"
}

# Starts `clemmys serve` in the background with NAME's log and pid file.
launch() {
    local dir="$1" name="$2"
    shift 2
    "$@" >"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
}

start() {
    local dir="$1" port="${2:-3233}" clemmys pg nats broker=""
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # As root, PostgreSQL runs as `postgres`, which must enter DIR.
    [ "$(id -u)" -ne 0 ] || chmod 755 "$dir"
    clemmys="$(bin)"
    bash "$REPO/scripts/postgres.sh" start "$dir/postgres" >/dev/null
    # Its Unix socket: every process is on this machine.
    pg="$(bash "$REPO/scripts/postgres.sh" socket-url "$dir/postgres")"
    nats="$(bash "$REPO/scripts/nats.sh" start "$dir/nats")"
    # One platform key for the host, as for processes of one machine: the
    # broker trusts the enclaves of the invokers because they share it.
    local key="$dir/sim-platform.key"
    launch "$dir" broker "$clemmys" broker serve --listen 127.0.0.1:0 \
        --data-dir "$dir/broker" --sim-platform-key "$key"
    for _ in $(seq 1 300); do
        broker="$(sed -n 's/^clemmys: key broker serving on //p' "$dir/broker.log")"
        [ -n "$broker" ] && break
        kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null \
            || { tail -n 20 "$dir/broker.log" >&2; die "the broker did not start"; }
        sleep 0.1
    done
    [ -n "$broker" ] || die "the broker did not start in 30 s"
    local common=(--bus "$nats" --store "$pg" --broker "$broker" --sim-platform-key "$key" --no-js-engine)
    launch "$dir" controller "$clemmys" serve --role controller --listen "127.0.0.1:$port" \
        --data-dir "$dir/controller" "${common[@]}"
    for _ in $(seq 1 300); do
        [ -f "$dir/controller/wskprops" ] && break
        kill -0 "$(cat "$dir/controller.pid")" 2>/dev/null \
            || { tail -n 20 "$dir/controller.log" >&2; die "the controller did not start"; }
        sleep 0.1
    done
    [ -f "$dir/controller/wskprops" ] || die "the controller did not start in 30 s"
    for i in 0 1; do
        launch "$dir" "invoker$i" "$clemmys" serve --role invoker --invoker-id "invoker$i" \
            --api-host "http://127.0.0.1:$port" --data-dir "$dir/invoker$i" "${common[@]}"
    done
    echo "API: http://127.0.0.1:$port"
    echo "broker: $broker"
    grep '^AUTH=' "$dir/controller/wskprops" | sed 's/^AUTH=/auth: /'
    echo "wskprops: $dir/controller/wskprops"
}

stop() {
    local dir="$1" name pid
    for name in invoker0 invoker1 controller broker; do
        [ -f "$dir/$name.pid" ] || continue
        pid="$(cat "$dir/$name.pid")"
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$dir/$name.pid"
    done
    bash "$REPO/scripts/nats.sh" stop "$dir/nats"
    bash "$REPO/scripts/postgres.sh" stop "$dir/postgres"
}

case "${1:-}" in
    start) [ $# -ge 2 ] || die "usage: cluster.sh start DIR [PORT]"; start "$2" "${3:-}" ;;
    stop) [ $# -eq 2 ] || die "usage: cluster.sh stop DIR"; stop "$2" ;;
    destroy) [ $# -eq 2 ] || die "usage: cluster.sh destroy DIR"; stop "$2"; rm -rf "$2" ;;
    *) die "usage: cluster.sh start|stop|destroy DIR [PORT]" ;;
esac
