#!/usr/bin/env bash
# A throwaway nats-server with JetStream in a directory of its own, from
# Debian's `nats-server` package (scripts/setup.sh installs it), for the
# NATS bus's tests and scripts/cluster.sh.
#
#   nats.sh start DIR [PORT]   start a server on 127.0.0.1:PORT (a free one if
#                              not given; a restart keeps the port), its
#                              JetStream store in DIR/jetstream; prints its
#                              URL, also written to DIR/url
#   nats.sh stop DIR           stop it, keeping DIR (and the stream's messages)
#   nats.sh destroy DIR        stop it and delete DIR
#
# It runs as the current user, serves loopback only, without
# authentication: never point it at a network.
set -euo pipefail

die() { echo "nats.sh: $*" >&2; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start() {
    local dir="$1" port="${2:-}"
    # Debian puts it in /usr/sbin, which a user's PATH may lack.
    local server
    server="$(command -v nats-server || echo /usr/sbin/nats-server)"
    [ -x "$server" ] || die "nats-server is not installed (scripts/setup.sh installs it)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # A port chosen here may be taken before the server binds it: then
    # another one is tried (a given or kept port is not changed).
    local chosen=""
    if [ -z "$port" ]; then
        if [ -f "$dir/port" ]; then port="$(cat "$dir/port")"; else port="$(free_port)"; chosen=1; fi
    fi
    for _ in 1 2 3 4 5; do
        launch "$server" "$dir" "$port" && return
        [ -n "$chosen" ] && grep -q "address already in use" "$dir/server.log" 2>/dev/null || break
        mv "$dir/server.log" "$dir/server.log.taken"
        port="$(free_port)"
    done
    tail -n 20 "$dir/server.log" >&2 || true
    die "the server did not start"
}

# Starts nats-server in DIR on PORT and prints its URL once it is ready;
# fails if it is not ready within 10 s or exits first.
launch() {
    local server="$1" dir="$2" port="$3" pid
    # Activation messages carry parameters of a few MB: more than the 1 MB
    # default payload.
    cat >"$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
max_payload: 8MB
jetstream {
    store_dir: "$dir/jetstream"
    max_memory_store: 64MB
    max_file_store: 1GB
}
CONF
    "$server" -c "$dir/nats.conf" -l "$dir/server.log" -P "$dir/pid" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
            && grep -q "Server is ready" "$dir/server.log" 2>/dev/null; then
            echo "$port" >"$dir/port"
            echo "nats://127.0.0.1:$port" >"$dir/url"
            echo "nats://127.0.0.1:$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

stop() {
    local dir="$1" pid
    [ -f "$dir/pid" ] || return 0
    pid="$(cat "$dir/pid")"
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$dir/pid"
    # The log is appended to by the next start: mark where this one ended.
    [ -f "$dir/server.log" ] && mv "$dir/server.log" "$dir/server.log.old"
    return 0
}

case "${1:-}" in
    start) [ $# -ge 2 ] || die "usage: nats.sh start DIR [PORT]"; start "$2" "${3:-}" ;;
    stop) [ $# -eq 2 ] || die "usage: nats.sh stop DIR"; stop "$2" ;;
    destroy) [ $# -eq 2 ] || die "usage: nats.sh destroy DIR"; stop "$2"; rm -rf "$2" ;;
    *) die "usage: nats.sh start|stop|destroy DIR" ;;
esac
