#!/usr/bin/env bash
# Membership changes on craft-kv processes through craftctl: a 4th node started outside the
# configuration (--initial-voters 1,2,3) joins as a learner with its address (the three
# members' --peers never list it), catches up, becomes a voter; a member restarted with its
# old --peers still knows it; then the leader is removed, steps down, and the three left
# carry on. Bad requests are refused, naming the problem.
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

# Nodes 1-3 know only each other; node 4 knows all four and starts outside the configuration.
for id in 1 2 3; do kv_start "$id" 3; done
kv_start 4 4 --initial-voters 1,2,3
leader=$(kv_wait_leader 3)
nodes=$(kv_http_list 4)
echo "leader: node $leader"
check "SET before node 4 joins" OK "$(kv_cli "$leader" SET before joined)"
check "node 4 hears no leader while outside" 0 "$(kv_info 4 leader)"

check_contains "add-learner of a node with no address is refused" "node 9 has no address" \
    "$("$CTL" add-learner --nodes "$nodes" --id 9 || true)"
check_contains "add-learner of node 4 without its address is refused" "node 4 has no address" \
    "$("$CTL" add-learner --nodes "$nodes" --id 4 || true)"
check_contains "a bad --address is refused" "bad port" \
    "$("$CTL" add-learner --nodes "$nodes" --id 4 --address 127.0.0.1:x 2>&1 || true)"
at4="127.0.0.1:$(kv_raft_port 4)"
out=$("$CTL" add-learner --nodes "$nodes" --id 4 --address "$at4")
check_contains "craftctl add-learner 4 --address $at4" '"learners":[4]' "$out"
check_contains "... and says ok" '"ok":true' "$out"
out=$("$CTL" add-learner --nodes "$nodes" --id 4 --address "$at4")
check_contains "the same add-learner again is done, nothing changes" '"learners":[4]' "$out"
node4_has() { [[ "$(kv_cli 4 GET "$1")" == "$2" ]]; }
eventually 20 node4_has before joined
check "node 4, a learner, caught up and reads" joined "$(kv_cli 4 GET before)"
out=$("$CTL" add-voter --nodes "$nodes" --id 4)
check_contains "craftctl add-voter 4" '"voters":[1,2,3,4]' "$out"
check_contains "add-learner of a voter is refused" "node 4 is a voter" \
    "$("$CTL" add-learner --nodes "$nodes" --id 4 2>&1 || true)"
check_contains "cluster lists node 4's state" "127.0.0.1:$(kv_http_port 4)" \
    "$("$CTL" cluster --nodes "$nodes")"

# A follower of the three restarts with its old --peers: the stored configuration gives it
# node 4's address.
f=$((leader % 3 + 1))
kv_kill "$f"
kv_start "$f" 3
f_knows_4() { "$CTL" status --node "127.0.0.1:$(kv_http_port "$f")" 2>/dev/null | grep -q "$at4"; }
eventually 20 f_knows_4
check_contains "node $f, restarted without node 4 in --peers, has its address" "$at4" \
    "$("$CTL" status --node "127.0.0.1:$(kv_http_port "$f")")"

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
