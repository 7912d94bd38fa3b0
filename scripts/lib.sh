# Shell functions the scripts share; sourced, never run. The sourcing
# script defines `die`.

# Prints a loopback TCP port nothing listens on, tried at random in
# 20000-32767: below Linux's ephemeral range (32768-60999), where a
# connection's own local port (which no probe sees) could make a server's
# bind fail. Another process may still take it before the caller does.
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 12768))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}
