#!/usr/bin/env bash
# A 3-process craft-kv cluster driven with redis-cli: writes and reads through followers,
# redis-benchmark against a follower with zero errors, kill -9 of the leader (every
# acknowledged write still readable), the killed node restarted and caught up, craftctl.
#   kv_cluster_test.sh <craft-kv> <craftctl>
set -euo pipefail
KV=$1 CTL=$2
# shellcheck source=examples/tests/lib.sh
source "$(dirname "$0")/lib.sh"
trap kv_cleanup EXIT

for id in 1 2 3; do kv_start "$id" 3; done
leader=$(kv_wait_leader 3)
f1=$((leader % 3 + 1))
f2=$((f1 % 3 + 1))
echo "leader: node $leader; followers: $f1, $f2"

# Writes through a follower are forwarded; reads anywhere are linearizable.
check "SET through follower $f1" OK "$(kv_cli "$f1" SET greeting hello)"
check "GET through follower $f2" hello "$(kv_cli "$f2" GET greeting)"
check "GET through the leader" hello "$(kv_cli "$leader" GET greeting)"
for i in $(seq 1 10); do kv_cli "$f2" INCR hits >/dev/null; done
check "10 INCRs through follower $f2" 10 "$(kv_cli "$f1" GET hits)"
check "INCRBY" 15 "$(kv_cli "$f1" INCRBY hits 5)"
check "DECRBY" 12 "$(kv_cli "$leader" DECRBY hits 3)"
check "MSET" OK "$(kv_cli "$f1" MSET a 1 b 2 c 3)"
check "MGET" "$(printf '1\n2\n\n3')" "$(kv_cli "$f2" MGET a b missing c)"
check "EXISTS" 2 "$(kv_cli "$f2" EXISTS a b missing)"
check "DEL" 1 "$(kv_cli "$f1" DEL a missing)"
check "DBSIZE" 4 "$(kv_cli "$f2" DBSIZE)"
check "GET of a missing key" "" "$(kv_cli "$f1" GET a)"
check_contains "INCR of a non-number" "not an integer" "$(kv_cli "$f1" INCR greeting 2>&1)"
check_contains "INFO has the Raft fields" "role:follower" "$(kv_cli "$f1" INFO)"
check_contains "INFO names the leader" "leader:$leader" "$(kv_cli "$f1" INFO)"

# redis-benchmark against a follower: every request answered without an error.
bench=$(timeout 120 redis-benchmark -p "$(kv_client_port "$f1")" -t set,get -n 20000 -c 16 \
    -r 1000 -q 2>&1 | tr '\r' '\n')
echo "$bench" | grep -E "requests per second" || true
check_contains "redis-benchmark SET ran" "SET:" "$bench"
check_contains "redis-benchmark GET ran" "GET:" "$bench"
if grep -qiE "error|timeout" <<<"$bench"; then check "redis-benchmark errors" "" "$bench"; fi
echo "ok: redis-benchmark without errors"

# Acknowledged writes, then kill -9 of the leader.
for i in $(seq 1 50); do
    check "SET k$i" OK "$(kv_cli "$f1" SET "k$i" "v$i")"
done
kv_kill "$leader" KILL
echo "killed the leader (node $leader) with SIGKILL"
new=$(kv_wait_leader 3)
[[ "$new" != "$leader" ]] || check "a new leader" "not $leader" "$new"
echo "new leader: node $new"
for i in $(seq 1 50); do
    check "k$i after the leader's death" "v$i" "$(kv_cli "$f2" GET "k$i")"
done
check "hits after the leader's death" 12 "$(kv_cli "$f1" GET hits)"
check "SET with the new leader" OK "$(kv_cli "$f1" SET after crash)"

# The killed node restarts from its data directory and catches up.
kv_start "$leader" 3
commit=$(kv_info "$new" commit_index)
caught_up() { (($(kv_info "$leader" applied_index) >= commit)); }
eventually 20 caught_up
check "the restarted node serves the write it missed" crash "$(kv_cli "$leader" GET after)"

# craftctl: cluster view, snapshot, leadership transfer.
nodes=$(kv_http_list 3)
cluster=$("$CTL" cluster --nodes "$nodes")
echo "$cluster"
check_contains "craftctl cluster shows the leader" "leader" "$cluster"
check_contains "craftctl snapshot" '"ok":true' "$("$CTL" snapshot --node "127.0.0.1:$(kv_http_port "$f2")")"
check_contains "craftctl status" '"snapshot_index"' "$("$CTL" status --node "127.0.0.1:$(kv_http_port "$f2")")"
check_contains "craftctl metrics" "craft_log_write_seconds_bucket" \
    "$("$CTL" metrics --node "127.0.0.1:$(kv_http_port "$f2")")"
target=$(( new % 3 + 1 ))
check_contains "craftctl transfer-leader" '"ok":true' "$("$CTL" transfer-leader --nodes "$nodes" --to "$target")"
check "node $target leads after the transfer" "$target" "$(kv_wait_leader 3)"
check "the data survived everything" v50 "$(kv_cli "$target" GET k50)"

# SIGTERM: every node stops cleanly.
for id in 1 2 3; do
    pid=${CRAFT_KV_PIDS[$id]}
    kill -TERM "$pid"
    status=0
    wait "$pid" || status=$?
    unset "CRAFT_KV_PIDS[$id]"
    check "node $id exits 0 on SIGTERM" 0 "$status"
done
echo "all passed"
