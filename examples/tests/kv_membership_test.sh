#!/usr/bin/env bash
# Membership changes on craft-kv processes through craftctl: a 4th node started outside the
# configuration (--initial-voters 1,2,3) joins as a learner, catches up, becomes a voter;
# then the leader is removed, steps down, and the three left carry on. Bad requests are
# refused, naming the problem.
#   kv_membership_test.sh <craft-kv> <craftctl>
set -euo pipefail
KV=$1 CTL=$2
# shellcheck source=examples/tests/lib.sh
source "$(dirname "$0")/lib.sh"
trap kv_cleanup EXIT

bad=$("$KV" --id 1 --peers "$(kv_peers 3)" --initial-voters 1,5 --data-dir "$CRAFT_KV_DIR/x" \
    --client-port "$(kv_client_port 1)" --http-port "$(kv_http_port 1)" 2>&1 && echo "exit 0" ||
    echo "exit $?")
check_contains "--initial-voters naming a node without an address" \
    "--initial-voters: node 5 is not in --peers" "$bad"
check_contains "... exits 2" "exit 2" "$bad"

# Every node's address book holds all four; the cluster starts with three voters.
for id in 1 2 3 4; do kv_start "$id" 4 --initial-voters 1,2,3; done
leader=$(kv_wait_leader 3)
nodes=$(kv_http_list 4)
echo "leader: node $leader"
check "SET before node 4 joins" OK "$(kv_cli "$leader" SET before joined)"
check "node 4 hears no leader while outside" 0 "$(kv_info 4 leader)"

check_contains "add-learner of a node with no address is refused" "node 9 has no address" \
    "$("$CTL" add-learner --nodes "$nodes" --id 9 || true)"
out=$("$CTL" add-learner --nodes "$nodes" --id 4)
check_contains "craftctl add-learner 4" '"learners":[4]' "$out"
check_contains "... and says ok" '"ok":true' "$out"
node4_has() { [[ "$(kv_cli 4 GET "$1")" == "$2" ]]; }
eventually 20 node4_has before joined
check "node 4, a learner, caught up and reads" joined "$(kv_cli 4 GET before)"
out=$("$CTL" add-voter --nodes "$nodes" --id 4)
check_contains "craftctl add-voter 4" '"voters":[1,2,3,4]' "$out"
check_contains "add-learner of a voter is refused" "node 4 is a voter" \
    "$("$CTL" add-learner --nodes "$nodes" --id 4 2>&1 || true)"
check_contains "cluster lists node 4's state" "127.0.0.1:$(kv_http_port 4)" \
    "$("$CTL" cluster --nodes "$nodes")"

# The leader removes itself: it steps down once the change is in force.
out=$("$CTL" remove --nodes "$nodes" --id "$leader")
check_contains "craftctl remove $leader (the leader)" '"ok":true' "$out"
kv_kill "$leader"
new=$(kv_wait_leader 4)
echo "new leader: node $new"
check "a node of the three left leads" 1 "$((new != leader))"
check "SET after the leader left" OK "$(kv_cli "$new" SET after left)"
check "GET on node 4" left "$(kv_cli 4 GET after)"
check "GET of the first write on node 4" joined "$(kv_cli 4 GET before)"
status=$("$CTL" status --node "127.0.0.1:$(kv_http_port "$new")")
voters=$(echo "$status" | tr -d ' \n' | sed -n 's/.*"voters":\[\([0-9,]*\)\].*/\1/p')
check "three voters left" 3 "$(echo "$voters" | tr ',' '\n' | grep -c .)"
check "the removed leader is not among them" "" "$(echo ",$voters," | grep ",$leader," || true)"
echo "kv_membership_test: all checks passed"
