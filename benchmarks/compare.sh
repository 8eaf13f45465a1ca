#!/usr/bin/env bash
# craft-kv beside etcd, measured the same way: installs what is missing (etcd, redis-tools,
# wrk), builds craft-kv, then runs a 3-node cluster of each system on 127.0.0.1, one after
# the other, and drives its leader with the same number of closed-loop clients (one request
# outstanding per client, no pipelining) writing values of the same size to random keys for
# the same time. Prints a table (requests/s, p50 and p99 latency, the servers' CPU time) and
# the craft-kv/etcd ratios; every process and directory it made is gone when it exits.
#
#   benchmarks/compare.sh [--clients N] [--value-size BYTES] [--seconds S] [--warmup S]
#                         [--keyspace K] [--json]
#
# Both systems keep their defaults: every log write synced before it is acknowledged,
# heartbeat 100 ms, election timeout 1 s, a snapshot every 100,000 entries.
# craft-kv is driven by redis-benchmark (SET), etcd by wrk through its v3 JSON gateway
# (POST /v3/kv/put): Debian packages neither etcd's own benchmark tool nor a gRPC load
# tool. The gateway costs etcd a JSON decode and a loopback gRPC hop per request, but little
# throughput: on the project's 2-core machine, back to back, wrk through it made 2.1k puts/s
# and `etcdctl check perf --load=l` (native gRPC, 500 clients) 2.25k.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$CRAFT_ROOT"

usage() {
    cat <<EOF
Usage: benchmarks/compare.sh [options]
  --clients N         concurrent clients, one request outstanding each (default 64)
  --value-size BYTES  size of each written value (default 256)
  --seconds S         measured time per system (default 10)
  --warmup S          unmeasured load before each measurement (default 2)
  --keyspace K        keys are drawn at random from K (default 100000)
  --json              print one JSON object on stdout (progress and table go to stderr)
  -h, --help          this help
Environment: CRAFT_COMPARE_CLIENTS, CRAFT_COMPARE_VALUE_SIZE, CRAFT_COMPARE_SECONDS,
CRAFT_COMPARE_WARMUP, CRAFT_COMPARE_KEYSPACE set the defaults; CRAFT_JOBS the build's
parallelism.
EOF
}

clients=${CRAFT_COMPARE_CLIENTS:-64}
value_size=${CRAFT_COMPARE_VALUE_SIZE:-256}
seconds=${CRAFT_COMPARE_SECONDS:-10}
warmup=${CRAFT_COMPARE_WARMUP:-2}
keyspace=${CRAFT_COMPARE_KEYSPACE:-100000}
json=0

bad_usage() {
    echo "compare.sh: $*" >&2
    usage >&2
    exit 2
}
while (($#)); do
    case $1 in
        --clients | --value-size | --seconds | --warmup | --keyspace)
            (($# >= 2)) || bad_usage "$1 needs a value"
            case $1 in
                --clients) clients=$2 ;;
                --value-size) value_size=$2 ;;
                --seconds) seconds=$2 ;;
                --warmup) warmup=$2 ;;
                --keyspace) keyspace=$2 ;;
            esac
            shift 2
            ;;
        --json) json=1 && shift ;;
        -h | --help) usage && exit 0 ;;
        *) bad_usage "unknown argument '$1'" ;;
    esac
done
for pair in "clients=$clients" "value-size=$value_size" "seconds=$seconds" \
    "warmup=$warmup" "keyspace=$keyspace"; do
    [[ "${pair#*=}" =~ ^[1-9][0-9]{0,8}$ ]] || bad_usage "--${pair%%=*} must be a positive integer"
done
# craft-kv refuses an argument over its --max-bulk-bytes (1 MiB by default).
((value_size <= 1048576)) || bad_usage "--value-size must be at most 1048576"

# With --json, stdout carries only the JSON object; everything a person reads goes to stderr.
if ((json)); then
    exec 3>&1 1>&2
else
    exec 3>&1
fi

craft_section "Dependencies"
# etcd-server and etcd-client are etcd 3.4 on Debian 12; wrk drives etcd's HTTP gateway;
# redis-benchmark (redis-tools, in CRAFT_PACKAGES) drives craft-kv.
craft_ensure_packages "${CRAFT_PACKAGES[@]}" etcd-server etcd-client wrk
for tool in etcd etcdctl wrk redis-benchmark; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found after installing packages" >&2
        exit 1
    }
done
echo "ok: $(etcd --version | head -n 1), $(redis-benchmark --version), $(dpkg-query -W -f='wrk ${Version}' wrk)"

craft_section "Build: craft-kv"
craft_configure_main_build
cmake --build build -j"$CRAFT_JOBS" --target craft-kv
KV="$CRAFT_ROOT/build/examples/craft-kv"

WORK=""
ETCD_PIDS=()
LOAD_PID=""
CRAFT_KV_PIDS=()

# alive PID: the process exists and is not a zombie (kill -0 succeeds on zombies).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*") "}
    [[ "${stat:0:1}" != Z ]]
}

# stop_pid PID [GRACE]: SIGTERM, up to GRACE seconds (default 10) to exit, then SIGKILL.
stop_pid() {
    local pid=$1 end=$((SECONDS + ${2:-10}))
    kill -TERM "$pid" 2>/dev/null || return 0
    while alive "$pid" && ((SECONDS < end)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    set +e           # one step failing must not skip the others
    trap '' INT TERM # nor a second Ctrl-C
    [[ -n "$LOAD_PID" ]] && stop_pid "$LOAD_PID" 2
    for pid in "${ETCD_PIDS[@]}"; do stop_pid "$pid" 0; done
    if declare -F kv_cleanup >/dev/null; then
        kv_cleanup
    fi
    [[ -n "$WORK" ]] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Everything the run writes lives under one directory.
WORK=$(mktemp -d /tmp/craft-compare.XXXXXX)

# fail MESSAGE [LOG...]: prints MESSAGE and the end of each log, then exits 1.
fail() {
    echo "error: $1" >&2
    shift
    local log
    for log in "$@"; do
        [[ -s "$log" ]] && { echo "--- last lines of $log" >&2; tail -n 15 "$log" >&2; }
    done
    exit 1
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_base FIRST STEPS OFFSET...: a random base FIRST + k*100 (k < STEPS) whose base+OFFSET
# ports are all free; a few tries, then fails.
free_base() {
    local first=$1 steps=$2 try base off ok
    shift 2
    for try in 1 2 3 4 5 6 7 8 9 10; do
        base=$((first + (RANDOM % steps) * 100))
        ok=1
        for off in "$@"; do port_free $((base + off)) || ok=0; done
        ((ok)) && echo "$base" && return 0
    done
    echo "error: no free ports found after $try tries" >&2
    return 1
}

# cpu_seconds PID...: user+system CPU time the processes have used so far.
cpu_seconds() {
    local pid stat fields ticks=0
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
        read -ra fields <<<"${stat##*") "}"
        ticks=$((ticks + fields[11] + fields[12])) # utime, stime (fields 14 and 15 of stat)
    done
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# run_load LIMIT OUT CMD...: runs a load tool in the background under a time limit and waits
# for it, so Ctrl-C reaches the trap at once and the cleanup can stop the tool.
run_load() {
    local limit=$1 out=$2 rc=0
    shift 2
    timeout "$limit" "$@" >"$out" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=""
    ((rc != 124)) || fail "$1 did not finish within $limit s" "$out"
    ((rc == 0)) || fail "$1 exited with status $rc" "$out"
}

# ---------------------------------------------------------------------------------------------
craft_section "craft-kv: 3 nodes on 127.0.0.1 (LevelDB log, synced)"
CRAFT_KV_DIR="$WORK/craft-kv"
mkdir -p "$CRAFT_KV_DIR"
# Ports below Linux's ephemeral range (32768 and up): there, the nodes' own outgoing
# connections, made while the others are still starting, can take a port a node is about to
# listen on ("Address already in use").
CRAFT_KV_BASE=$(free_base 20000 127 1 2 3 11 12 13 21 22 23)
# shellcheck source=examples/tests/lib.sh
source "$CRAFT_ROOT/examples/tests/lib.sh"

# kv_start (lib.sh) shortens the election timeout for the tests; here craft-kv keeps all its
# defaults, as etcd does.
for id in 1 2 3; do
    "$KV" --id "$id" --peers "$(kv_peers 3)" --data-dir "$CRAFT_KV_DIR/node$id" \
        --client-port "$(kv_client_port "$id")" --http-port "$(kv_http_port "$id")" \
        --log-level warn >>"$CRAFT_KV_DIR/node$id.log" 2>&1 &
    CRAFT_KV_PIDS[id]=$!
done
kv_logs=("$CRAFT_KV_DIR"/node{1,2,3}.log)
if ! leader=$(kv_wait_leader 3); then
    for id in 1 2 3; do
        alive "${CRAFT_KV_PIDS[id]}" ||
            fail "craft-kv node $id exited during start-up" "$CRAFT_KV_DIR/node$id.log"
    done
    fail "craft-kv: no leader that all 3 nodes follow within 20 s" "${kv_logs[@]}"
fi
kv_port=$(kv_client_port "$leader")
echo "node $leader leads; clients connect to it on 127.0.0.1:$kv_port"

# rb_csv FILE COLUMN: a column of redis-benchmark's --csv SET line, found by its header
# (7.0: test, rps, avg/min/p50/p95/p99/max_latency_ms).
rb_csv() {
    awk -F, -v want="$2" '{ gsub(/"/, "") }
        $1 == "test" { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == "SET" && (want in col) { print $(col[want]) }' "$1"
}

# redis_bench N: N SETs from $clients connections; sets rb_rps, rb_p50, rb_p99 (ms).
# -P 1: one request in flight per connection. redis-benchmark 7 exits non-zero on the first
# error reply; the commit index check below catches any SET that still was not written.
redis_bench() {
    local out="$WORK/redis-benchmark.out"
    run_load $((seconds * 5 + 60)) "$out" redis-benchmark -h 127.0.0.1 -p "$kv_port" \
        -c "$clients" -n "$1" -d "$value_size" -r "$keyspace" -P 1 -t set --csv
    # It asks for CONFIG, which craft-kv does not have, and warns; nothing is wrong.
    grep -v '^WARNING: Could not fetch server CONFIG' "$out" || true
    rb_rps=$(rb_csv "$out" rps)
    rb_p50=$(rb_csv "$out" p50_latency_ms)
    rb_p99=$(rb_csv "$out" p99_latency_ms)
    [[ -n "$rb_rps" && -n "$rb_p50" && -n "$rb_p99" ]] ||
        fail "could not read rps, p50 and p99 from redis-benchmark's CSV" "$out"
}

# redis-benchmark stops after a number of requests, not a time: warm up with growing runs
# until one lasts about half the warm-up, then size the measured run from that rate.
echo "warm-up (about $warmup s) to size the measured run:"
n=$((clients * 20))
for _ in 1 2 3 4 5 6; do
    redis_bench "$n"
    elapsed=$(awk -v n="$n" -v r="$rb_rps" 'BEGIN { printf "%.3f", n / r }')
    awk -v e="$elapsed" -v w="$warmup" 'BEGIN { exit !(e >= w / 2) }' && break
    n=$(awk -v n="$n" -v e="$elapsed" -v w="$warmup" \
        'BEGIN { f = w / e; if (f > 10) f = 10; printf "%d", n * f + 1 }')
done
n=$(awk -v r="$rb_rps" -v s="$seconds" -v c="$clients" \
    'BEGIN { n = int(r * s); printf "%d", (n > c ? n : c) }')

echo "measured: $n SETs (about $seconds s at the warm-up's $rb_rps req/s):"
commit_before=$(kv_info "$leader" commit_index)
cpu_before=$(cpu_seconds "${CRAFT_KV_PIDS[@]}") || fail "a craft-kv node exited" "${kv_logs[@]}"
redis_bench "$n"
cpu_after=$(cpu_seconds "${CRAFT_KV_PIDS[@]}") || fail "a craft-kv node exited" "${kv_logs[@]}"
commit_after=$(kv_info "$leader" commit_index)
# Each SET is one log entry: fewer committed entries than SETs means some were not written.
[[ "$commit_before" =~ ^[0-9]+$ && "$commit_after" =~ ^[0-9]+$ ]] ||
    fail "could not read the leader's commit_index from INFO" "${kv_logs[@]}"
((commit_after - commit_before >= n)) ||
    fail "craft-kv committed $((commit_after - commit_before)) entries for $n SETs" "${kv_logs[@]}"
echo "ok: the leader's commit index advanced by $((commit_after - commit_before)) for $n SETs"
# Results (kv_* here, et_* for etcd): requests, seconds, req/s, p50 and p99 ms, server CPU s.
kv_n=$n kv_rps=$rb_rps kv_p50=$rb_p50 kv_p99=$rb_p99
kv_s=$(awk -v n="$n" -v r="$rb_rps" 'BEGIN { printf "%.2f", n / r }')
kv_cpu=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "%.2f", b - a }')

for id in 1 2 3; do stop_pid "${CRAFT_KV_PIDS[id]}" && unset "CRAFT_KV_PIDS[id]"; done

# ---------------------------------------------------------------------------------------------
craft_section "etcd: 3 nodes on 127.0.0.1 (WAL fsync on, etcd's default)"
# Node i serves clients on base+i and peers on base+10+i; below 20000, so apart from
# craft-kv's ports and from a system etcd on 2379/2380.
etcd_base=$(free_base 10000 100 1 2 3 11 12 13)
etcd_cluster="" etcd_endpoints=""
for i in 1 2 3; do
    etcd_cluster+="${etcd_cluster:+,}e$i=http://127.0.0.1:$((etcd_base + 10 + i))"
    etcd_endpoints+="${etcd_endpoints:+,}127.0.0.1:$((etcd_base + i))"
done
etcd_logs=()
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/etcd/e$i" \
        --listen-client-urls "http://127.0.0.1:$((etcd_base + i))" \
        --advertise-client-urls "http://127.0.0.1:$((etcd_base + i))" \
        --listen-peer-urls "http://127.0.0.1:$((etcd_base + 10 + i))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_base + 10 + i))" \
        --initial-cluster "$etcd_cluster" --initial-cluster-state new \
        --initial-cluster-token "craft-compare-$$" \
        --logger zap --log-level warn >"$WORK/etcd-e$i.log" 2>&1 &
    ETCD_PIDS+=($!)
    etcd_logs+=("$WORK/etcd-e$i.log")
done

ctl() { timeout 10 etcdctl --dial-timeout=2s --command-timeout=5s "$@"; }

# Healthy (a quorum commits a proposal through every endpoint) and one leader all agree on,
# within 30 s.
end=$((SECONDS + 30))
etcd_leader=""
while ((SECONDS < end)); do
    for i in 1 2 3; do
        alive "${ETCD_PIDS[i - 1]}" || fail "etcd node e$i exited during start-up" "${etcd_logs[i - 1]}"
    done
    if ctl --endpoints "$etcd_endpoints" endpoint health >/dev/null 2>&1; then
        # -w simple: endpoint, id, version, db size, is leader, is learner, term, index, ...
        status=$(ctl --endpoints "$etcd_endpoints" endpoint status -w simple 2>/dev/null || true)
        leaders=$(awk -F', ' '$5 == "true" { print $1 }' <<<"$status")
        terms=$(awk -F', ' '{ print $7 }' <<<"$status" | sort -u | wc -l)
        if [[ $(wc -l <<<"$status") == 3 && $(grep -c . <<<"$leaders") == 1 && "$terms" == 1 ]]; then
            etcd_leader=$leaders
            break
        fi
    fi
    sleep 0.2
done
[[ -n "$etcd_leader" ]] ||
    fail "etcd: no healthy 3-node cluster with one leader within 30 s ($etcd_endpoints)" \
        "${etcd_logs[@]}"
echo "$etcd_leader leads; clients connect to it"

etcd_revision() {
    ctl --endpoints "$etcd_leader" endpoint status -w json | grep -o '"revision":[0-9]*' |
        cut -d: -f2
}

# wrk's script: each request PUTs a value of value_size 'x' bytes (as redis-benchmark's
# -d) to a random key named as redis-benchmark's -r names them ("key:" and 12 digits);
# the gateway wants both base64-encoded. done() prints, on one line after "RESULT": the
# requests completed, the duration and the p50 and p99 latency (microseconds), then wrk's
# error counts: connect, read, write, status (non-2xx/3xx answers), timeout.
cat >"$WORK/put.lua" <<'LUA'
local bit = require("bit")
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local sym = {}
for i = 1, 64 do sym[i - 1] = alphabet:sub(i, i) end

local function base64(s)
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local v = bit.lshift(a, 16) + bit.lshift(b or 0, 8) + (c or 0)
        out[#out + 1] = sym[bit.rshift(v, 18)] .. sym[bit.band(bit.rshift(v, 12), 63)] ..
            (b and sym[bit.band(bit.rshift(v, 6), 63)] or "=") ..
            (c and sym[bit.band(v, 63)] or "=")
    end
    return table.concat(out)
end

local value, keyspace
local headers = { ["Content-Type"] = "application/json" }

function init(args)
    value = base64(string.rep("x", tonumber(args[1])))
    keyspace = tonumber(args[2])
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 1000003)
end

function request()
    local key = base64(string.format("key:%012d", math.random(0, keyspace - 1)))
    return wrk.format("POST", "/v3/kv/put", headers,
        '{"key":"' .. key .. '","value":"' .. value .. '"}')
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT %d %d %d %d %d %d %d %d %d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.connect, e.read, e.write, e.status, e.timeout))
end
LUA

# wrk_run SECONDS: sets wrk_* from wrk's RESULT line; fails on any non-2xx answer or
# socket error. -t 1: one client thread, as redis-benchmark; each connection has one
# request in flight (wrk does not pipeline).
wrk_run() {
    local out="$WORK/wrk.out" line
    run_load $(($1 + 60)) "$out" wrk -t 1 -c "$clients" -d "${1}s" --timeout 10s --latency \
        -s "$WORK/put.lua" "http://$etcd_leader" -- "$value_size" "$keyspace"
    cat "$out"
    line=$(grep '^RESULT ' "$out") || fail "wrk printed no RESULT line" "$out"
    read -r _ wrk_requests wrk_duration_us wrk_p50_us wrk_p99_us wrk_connect wrk_read wrk_write \
        wrk_status wrk_timeout <<<"$line"
    ((wrk_status == 0)) ||
        fail "etcd answered $wrk_status of $wrk_requests puts with a non-2xx status" "${etcd_logs[@]}"
    ((wrk_connect + wrk_read + wrk_write + wrk_timeout == 0)) ||
        fail "wrk socket errors: connect $wrk_connect, read $wrk_read, write $wrk_write, timeout $wrk_timeout" \
            "${etcd_logs[@]}"
}

echo "warm-up ($warmup s):"
wrk_run "$warmup"
echo "measured ($seconds s):"
rev_before=$(etcd_revision)
cpu_before=$(cpu_seconds "${ETCD_PIDS[@]}") || fail "an etcd node exited" "${etcd_logs[@]}"
wrk_run "$seconds"
cpu_after=$(cpu_seconds "${ETCD_PIDS[@]}") || fail "an etcd node exited" "${etcd_logs[@]}"
rev_after=$(etcd_revision)
# Each successful put makes one revision; puts still in flight when wrk stopped may add up
# to one per client.
[[ "$rev_before" =~ ^[0-9]+$ && "$rev_after" =~ ^[0-9]+$ ]] ||
    fail "could not read the leader's revision from etcdctl endpoint status" "${etcd_logs[@]}"
revs=$((rev_after - rev_before))
((revs >= wrk_requests && revs <= wrk_requests + clients)) ||
    fail "etcd's revision advanced by $revs for $wrk_requests successful puts" "${etcd_logs[@]}"
echo "ok: the leader's revision advanced by $revs for $wrk_requests puts"
read -r et_n et_s et_rps et_p50 et_p99 et_cpu < <(awk -v n="$wrk_requests" \
    -v d="$wrk_duration_us" -v p50="$wrk_p50_us" -v p99="$wrk_p99_us" -v a="$cpu_before" \
    -v b="$cpu_after" 'BEGIN { printf "%d %.2f %.2f %.3f %.3f %.2f\n", n, d / 1e6,
                               n / (d / 1e6), p50 / 1000, p99 / 1000, b - a }')

for pid in "${ETCD_PIDS[@]}"; do stop_pid "$pid"; done
ETCD_PIDS=()

# ---------------------------------------------------------------------------------------------
craft_section "craft-kv beside etcd: 3 nodes each, 127.0.0.1, $(nproc) cores, synced logs"
row() { printf '%-16s %7s %7s %7s %9s %9s %8s %8s %8s %11s\n' "$@"; }
# CPU us/req: the three servers' CPU time per request, the cost that decides throughput on
# a machine whose cores the servers and the load tool share.
per_req() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.0f", c * 1e6 / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
row system clients "value B" seconds requests "req/s" "p50 ms" "p99 ms" "CPU s" "CPU us/req"
row craft-kv "$clients" "$value_size" "$kv_s" "$kv_n" "$(printf %.0f "$kv_rps")" "$kv_p50" \
    "$kv_p99" "$kv_cpu" "$(per_req "$kv_cpu" "$kv_n")"
row etcd "$clients" "$value_size" "$et_s" "$et_n" "$(printf %.0f "$et_rps")" "$et_p50" \
    "$et_p99" "$et_cpu" "$(per_req "$et_cpu" "$et_n")"
row "craft-kv / etcd" "" "" "" "" "$(ratio "$kv_rps" "$et_rps")" "$(ratio "$kv_p50" "$et_p50")" \
    "$(ratio "$kv_p99" "$et_p99")" "" \
    "$(ratio "$(per_req "$kv_cpu" "$kv_n")" "$(per_req "$et_cpu" "$et_n")")"
echo "craft-kv: redis-benchmark SET to the leader; etcd $(etcd --version | awk 'NR == 1 { print $3 }'):" \
    "wrk POST /v3/kv/put (JSON gateway) to the leader; one request in flight per client."

if ((json)); then
    obj() { # obj N S RPS P50 P99 CPU
        printf '{"requests": %s, "seconds": %s, "ops_per_sec": %s, "p50_ms": %s, "p99_ms": %s, "server_cpu_seconds": %s}' "$@"
    }
    printf '{"clients": %s, "value_size": %s, "craft_kv": %s, "etcd": %s, "ratio_ops_per_sec": %s}\n' \
        "$clients" "$value_size" "$(obj "$kv_n" "$kv_s" "$kv_rps" "$kv_p50" "$kv_p99" "$kv_cpu")" \
        "$(obj "$et_n" "$et_s" "$et_rps" "$et_p50" "$et_p99" "$et_cpu")" \
        "$(awk -v a="$kv_rps" -v b="$et_rps" 'BEGIN { printf "%.3f", a / b }')" >&3
fi
