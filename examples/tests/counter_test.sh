#!/usr/bin/env bash
# craft-counter as one node and as three: INCRBY/DECRBY/GET through any node, overflow refused,
# and the counts recovered after a restart from a snapshot plus the log after it.
#   counter_test.sh <craft-counter> <craftctl>
set -euo pipefail
KV=$1 CTL=$2
# shellcheck source=examples/tests/lib.sh
source "$(dirname "$0")/lib.sh"
trap kv_cleanup EXIT

for id in 1 2 3; do kv_start "$id" 3 --snapshot-entries 10; done
leader=$(kv_wait_leader 3)
f=$((leader % 3 + 1))
check "INCRBY through a follower" 5 "$(kv_cli "$f" INCRBY visits 5)"
check "DECRBY through the leader" 3 "$(kv_cli "$leader" DECRBY visits 2)"
for i in $(seq 1 27); do kv_cli "$f" INCR visits >/dev/null; done
check "GET after 27 INCRs" 30 "$(kv_cli "$leader" GET visits)"
check "GET of an unknown counter" "" "$(kv_cli "$f" GET nothing)"
check_contains "overflow refused" "overflow" "$(kv_cli "$f" INCRBY visits 9223372036854775807 2>&1)"
check_contains "not a number" "not an integer" "$(kv_cli "$f" INCRBY visits ten 2>&1)"
check_contains "SET is not a counter command" "unknown command" "$(kv_cli "$f" SET a b 2>&1)"
snap=$("$CTL" status --node "127.0.0.1:$(kv_http_port "$f")")
check_contains "snapshots were taken (every 10 entries)" '"snapshot_index": ' "$snap"
[[ "$snap" != *'"snapshot_index": 0,'* ]] || check "a snapshot index" "> 0" "0"

# Every node restarts: each loads its newest snapshot and replays the log after it.
for id in 1 2 3; do kv_kill "$id"; done
for id in 1 2 3; do kv_start "$id" 3 --snapshot-entries 10; done
kv_wait_leader 3 >/dev/null
for id in 1 2 3; do check "node $id after the restart" 30 "$(kv_cli "$id" GET visits)"; done
echo "all passed"
