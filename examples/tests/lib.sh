# shellcheck shell=bash
# Shared by the examples' shell tests and scripts/demo: start craft-kv nodes on loopback, find
# the leader, wait for conditions (always bounded), and clean up every process and directory.
#   KV=<craft-kv binary> CTL=<craftctl binary> must be set by the caller.

CRAFT_KV_PIDS=()
CRAFT_KV_DIR="${CRAFT_KV_DIR:-$(mktemp -d /tmp/craft-kv.XXXXXX)}"
# Ports: node i uses base+i (Raft), base+10+i (clients), base+20+i (HTTP), from a random base
# below 32768, where Linux's ephemeral range (32768-60999) starts: there a node's own outgoing
# connection could take a port another node is about to listen on. A run claims its base with
# a lock file held while it and its nodes live, so the tests ctest runs side by side never
# share one (one base in 120: the likely cause of a "no leader within 20 s" in one CI run).
if [[ -z "${CRAFT_KV_BASE:-}" ]]; then
    mkdir -p /tmp/craft-kv-ports
    for _ in {1..100}; do
        CRAFT_KV_BASE=$((20000 + (RANDOM % 120) * 100))
        exec {CRAFT_KV_PORT_LOCK}>"/tmp/craft-kv-ports/$CRAFT_KV_BASE"
        flock -n "$CRAFT_KV_PORT_LOCK" && break
        exec {CRAFT_KV_PORT_LOCK}>&-
        CRAFT_KV_BASE=""
    done
    if [[ -z "$CRAFT_KV_BASE" ]]; then
        echo "no free block of ports for craft-kv nodes (locks in /tmp/craft-kv-ports)" >&2
        exit 1
    fi
fi

kv_raft_port() { echo $((CRAFT_KV_BASE + $1)); }
kv_client_port() { echo $((CRAFT_KV_BASE + 10 + $1)); }
kv_http_port() { echo $((CRAFT_KV_BASE + 20 + $1)); }

# kv_peers N: the --peers value of an N-node cluster.
kv_peers() {
    local i out=""
    for ((i = 1; i <= $1; i++)); do out+="${out:+,}$i=127.0.0.1:$(kv_raft_port "$i")"; done
    echo "$out"
}
kv_http_list() {
    local i out=""
    for ((i = 1; i <= $1; i++)); do out+="${out:+,}127.0.0.1:$(kv_http_port "$i")"; done
    echo "$out"
}

# kv_start ID N [extra flags...]: starts node ID of an N-node cluster in the background.
kv_start() {
    local id=$1 n=$2
    shift 2
    "$KV" --id "$id" --peers "$(kv_peers "$n")" --data-dir "$CRAFT_KV_DIR/node$id" \
        --client-port "$(kv_client_port "$id")" --http-port "$(kv_http_port "$id")" \
        --election-timeout-ms 500 --heartbeat-ms 50 --log-level warn "$@" \
        >>"$CRAFT_KV_DIR/node$id.log" 2>&1 &
    CRAFT_KV_PIDS[$id]=$!
}

# kv_kill ID [SIGNAL]: stops node ID and waits for it.
kv_kill() {
    local pid=${CRAFT_KV_PIDS[$1]:-}
    [[ -n "$pid" ]] || return 0
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "CRAFT_KV_PIDS[$1]"
}

kv_cleanup() {
    local id
    for id in "${!CRAFT_KV_PIDS[@]}"; do kv_kill "$id" KILL; done
    rm -rf "$CRAFT_KV_DIR"
}

# kv_cli ID ARGS...: redis-cli against node ID (2 s connect/read bound by timeout).
kv_cli() {
    local id=$1
    shift
    timeout 10 redis-cli -p "$(kv_client_port "$id")" "$@"
}

# kv_info ID FIELD: one field of INFO on node ID (empty when unreachable).
kv_info() {
    kv_cli "$1" INFO 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}

# eventually SECONDS CMD...: retries CMD every 0.1 s until it succeeds or time is up.
eventually() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while ((SECONDS < end)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    "$@"
}

# kv_leader N: the id of the node that leads among nodes 1..N (all running ones agree), or
# fails.
kv_leader() {
    local i l="" role
    for ((i = 1; i <= $1; i++)); do
        [[ -n "${CRAFT_KV_PIDS[$i]:-}" ]] || continue
        role=$(kv_info "$i" role)
        if [[ "$role" == leader ]]; then
            [[ -z "$l" ]] || return 1
            l=$i
        fi
    done
    [[ -n "$l" ]] && echo "$l"
}

# kv_wait_leader N: waits (bounded) for one leader that every running node follows; prints it.
kv_wait_leader() {
    local n=$1 end=$((SECONDS + 20)) l i ok
    while ((SECONDS < end)); do
        if l=$(kv_leader "$n"); then
            ok=1
            for ((i = 1; i <= n; i++)); do
                [[ -n "${CRAFT_KV_PIDS[$i]:-}" ]] || continue
                [[ "$(kv_info "$i" leader)" == "$l" ]] || ok=0
            done
            if ((ok)); then
                echo "$l"
                return 0
            fi
        fi
        sleep 0.1
    done
    echo "no leader within 20 s (ports from $CRAFT_KV_BASE); what each node said:" >&2
    kv_report "$n" >&2
    return 1
}

# kv_report N: for each of nodes 1..N started here, whether its process runs and the end of its
# log (for a failure's message: the test's directory is removed on exit).
kv_report() {
    local i pid state
    for ((i = 1; i <= $1; i++)); do
        pid=${CRAFT_KV_PIDS[$i]:-}
        [[ -n "$pid" ]] || continue
        if kill -0 "$pid" 2>/dev/null; then state="running"; else state="not running"; fi
        echo "--- node $i (pid $pid, $state), last lines of its log:"
        tail -n 8 "$CRAFT_KV_DIR/node$i.log" 2>/dev/null || true
    done
}

# raw PORT FORMAT: sends printf-FORMAT bytes to 127.0.0.1:PORT, prints what comes back within
# a second (or until the server closes).
raw() {
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    # shellcheck disable=SC2059
    printf "$2" >&3
    timeout 1 cat <&3 || true
    exec 3<&- 3>&-
}

# check DESCRIPTION EXPECTED ACTUAL: prints ok or fails the test.
check() {
    if [[ "$2" == "$3" ]]; then
        echo "ok: $1"
    else
        echo "FAILED: $1: expected '$2', got '$3'" >&2
        for f in "$CRAFT_KV_DIR"/node*.log; do
            [[ -f "$f" ]] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
        done
        exit 1
    fi
}
# check_contains DESCRIPTION NEEDLE ACTUAL
check_contains() {
    if [[ "$3" == *"$2"* ]]; then
        echo "ok: $1"
    else
        check "$1" "*$2*" "$3"
    fi
}
