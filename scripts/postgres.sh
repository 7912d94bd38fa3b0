#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in a directory of its own, from Debian's
# `postgresql` package (scripts/setup.sh installs it), for the tests and
# benchmarks of the PostgreSQL store.
#
#   postgres.sh start DIR [PORT]   initialise DIR (once) and start a server on
#                                  127.0.0.1:PORT (a free one if not given;
#                                  a restart keeps the port); prints its URL,
#                                  also written to DIR/url
#   postgres.sh socket-url DIR     the URL of the running server's Unix socket
#                                  (no loopback TCP: cheaper per query)
#   postgres.sh stop DIR           stop it (fast shutdown), keeping DIR
#   postgres.sh destroy DIR        stop it and delete DIR
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` user. Only loopback and a Unix socket in DIR are served, with
# `trust` authentication: never point it at a network. Extra server options
# go in POSTGRES_OPTIONS (the tests turn fsync off there).
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] || die "PostgreSQL is not installed (scripts/setup.sh installs it)"
    echo "$dir"
}

# Runs a server program as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start() {
    local dir="$1" port="${2:-}" bin
    bin="$(bindir)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir"
        chmod 700 "$dir"
        runuser -u postgres -- test -w "$dir" \
            || die "the postgres user cannot reach $dir: give a directory whose parents it can enter (e.g. one made by mktemp -d)"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync \
            --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    if [ -z "$port" ]; then
        if [ -f "$dir/port" ]; then port="$(cat "$dir/port")"; else port="$(free_port)"; fi
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${POSTGRES_OPTIONS:-}" start >/dev/null \
        || { tail -n 20 "$dir/server.log" >&2; die "the server did not start"; }
    local url="postgres://postgres@127.0.0.1:$port/postgres"
    as_owner sh -c "echo $port > '$dir/port'; echo '$url' > '$dir/url'"
    echo "$url"
}

stop() {
    local dir="$1" bin
    bin="$(bindir)"
    [ -f "$dir/data/postmaster.pid" ] || return 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

socket_url() {
    local dir
    dir="$(cd "$1" && pwd)"
    [ -f "$dir/port" ] || die "no server was started in $dir"
    echo "postgres://postgres@localhost/postgres?host=$dir&port=$(cat "$dir/port")"
}

case "${1:-}" in
    socket-url) [ $# -eq 2 ] || die "usage: postgres.sh socket-url DIR"; socket_url "$2" ;;
    start) [ $# -ge 2 ] || die "usage: postgres.sh start DIR [PORT]"; start "$2" "${3:-}" ;;
    stop) [ $# -eq 2 ] || die "usage: postgres.sh stop DIR"; stop "$2" ;;
    destroy) [ $# -eq 2 ] || die "usage: postgres.sh destroy DIR"; stop "$2"; rm -rf "$2" ;;
    *) die "usage: postgres.sh start|socket-url|stop|destroy DIR" ;;
esac
