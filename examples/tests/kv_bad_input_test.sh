#!/usr/bin/env bash
# craft-kv against bad input: malformed RESP, arguments over the limit, too many arguments,
# unknown commands, garbage, a client leaving mid-request, wrong flags, and no leader.
#   kv_bad_input_test.sh <craft-kv> <craftctl>
set -euo pipefail
KV=$1 CTL=$2
# shellcheck source=examples/tests/lib.sh
source "$(dirname "$0")/lib.sh"
trap kv_cleanup EXIT

# Wrong flags: usage and a non-zero exit, nothing started.
status=0
out=$("$KV" --id 1 --peers "$(kv_peers 1)" --data-dir "$CRAFT_KV_DIR/x" --client-port 1 \
    --http-port 2 --bogus 2>&1) || status=$?
[[ $status -ne 0 ]] || check "unknown flag exits non-zero" "non-zero" "$status"
check_contains "unknown flag is named" "bogus" "$out"
check_contains "usage is printed" "--client-port" "$out"
status=0
out=$("$KV" --id 1 --peers "1=127.0.0.1" --data-dir "$CRAFT_KV_DIR/x" --client-port 1 \
    --http-port 2 2>&1) || status=$?
[[ $status -ne 0 ]] || check "bad --peers exits non-zero" "non-zero" "$status"
check_contains "bad --peers is explained" "'127.0.0.1': no port" "$out"
check_contains "... with the flag's form" "id=host:port" "$out"
status=0
out=$("$KV" --id 4 --peers "$(kv_peers 3)" --data-dir "$CRAFT_KV_DIR/x" --client-port 1 \
    --http-port 2 2>&1) || status=$?
[[ $status -ne 0 ]] || check "an id missing from --peers exits non-zero" "non-zero" "$status"
check_contains "an id missing from --peers is explained" "must include this node" "$out"
status=0
out=$("$KV" --id 1 --peers "$(kv_peers 1)" --data-dir "$CRAFT_KV_DIR/x" --client-port 1 \
    --http-port 2 --host localhost 2>&1) || status=$?
[[ $status -ne 0 ]] || check "a host name for --host exits non-zero" "non-zero" "$status"
check_contains "a host name for --host is explained" "'localhost' is not an IP address" "$out"
status=0
"$CTL" cluster >/dev/null 2>&1 || status=$?
[[ $status -ne 0 ]] || check "craftctl without --nodes exits non-zero" "non-zero" "$status"
for bad in -5 0 99999999999999999999 2abc; do
    status=0
    out=$("$CTL" remove --nodes 127.0.0.1:1 --id "$bad" 2>&1) || status=$?
    [[ $status -ne 0 ]] || check "craftctl --id $bad exits non-zero" "non-zero" "$status"
    check_contains "craftctl --id $bad is explained" "'$bad' is not a node id" "$out"
done

# One node of a three-node cluster alone: no leader, so commands fail after a bounded wait.
kv_start 1 3 --command-timeout-ms 1000
eventually 10 kv_cli 1 PING
start=$SECONDS
check_contains "SET without a leader" "TRYAGAIN no leader" "$(kv_cli 1 SET k v 2>&1)"
check_contains "GET without a leader" "TRYAGAIN no leader" "$(kv_cli 1 GET k 2>&1)"
((SECONDS - start < 8)) || check "bounded wait" "< 8 s" "$((SECONDS - start)) s"
kv_kill 1
rm -rf "$CRAFT_KV_DIR/node1"

# A single-node cluster with small limits.
kv_start 1 1 --max-bulk-bytes 1024 --max-args 8
eventually 10 kv_cli 1 PING
port=$(kv_client_port 1)
eventually 10 kv_cli 1 SET ready yes

check_contains "unknown command" "ERR unknown command 'FLY'" "$(raw "$port" 'FLY me\r\n')"
check_contains "wrong arity" "ERR wrong number of arguments for 'get'" \
    "$(raw "$port" '*1\r\n$3\r\nGET\r\n')"
check_contains "SET with options" "ERR syntax error" "$(kv_cli 1 SET k v EX 10 2>&1)"
big=$(head -c 2000 /dev/zero | tr '\0' x)
check_contains "argument over --max-bulk-bytes" "exceeds the 1024-byte limit" \
    "$(raw "$port" "*3\r\n\$3\r\nSET\r\n\$1\r\nk\r\n\$2000\r\n$big\r\n")"
check_contains "more than --max-args" "too many arguments (9, at most 8)" \
    "$(raw "$port" '*9\r\n')"
check_contains "a declared count of 2^62" "too many arguments" "$(raw "$port" '*4611686018427387904\r\n')"
check_contains "not a bulk string" "expected '\$', got ':'" "$(raw "$port" '*2\r\n$3\r\nGET\r\n:5\r\n')"
check_contains "a negative bulk length" "invalid bulk length" "$(raw "$port" '*1\r\n$-5\r\n')"
check_contains "pipelined commands answered in order" "$(printf '+PONG\r\n+OK\r\n$1\r\n1\r\n')" \
    "$(raw "$port" '*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\np\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\np\r\n')"

# Garbage and half requests: the server keeps serving, nothing half-done is applied.
head -c 65536 /dev/urandom >"$CRAFT_KV_DIR/garbage"
for i in 1 2 3; do
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    cat "$CRAFT_KV_DIR/garbage" >&3 2>/dev/null || true
    exec 3<&- 3>&-
done
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nabc' >&3
exec 3<&- 3>&-
check "PING after garbage and a client gone mid-request" PONG "$(kv_cli 1 PING)"
check "the half-sent SET was never applied" 0 "$(kv_cli 1 EXISTS half)"
check "earlier data intact" yes "$(kv_cli 1 GET ready)"
check "DBSIZE" 2 "$(kv_cli 1 DBSIZE)"

# The admin endpoint: node ids are whole numbers from 1; an edit that changes nothing says so.
http=$(kv_http_port 1)
for bad in -1 0 2abc %%202; do  # %%: raw is printf (a space before the 2)
    out=$(raw "$http" "POST /transfer-leader?to=$bad HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    check_contains "transfer-leader to=$bad is refused" "400" "$out"
    check_contains "... naming the parameter" "bad parameter 'to'" "$out"
done
# (httplib waits for the body until its 5 s read timeout, then refuses it)
exec 3<>"/dev/tcp/127.0.0.1/$http"
printf 'POST /snapshot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
check_contains "a POST without Content-Length is explained" "a POST needs a Content-Length" \
    "$(timeout 10 cat <&3 || true)"
exec 3<&- 3>&-
check_contains "an unknown path is explained" "no such endpoint (GET / lists them)" \
    "$(raw "$http" 'GET /nope HTTP/1.0\r\n\r\n')"
check_contains "removing a non-member changes nothing, and says so" '"changed":false' \
    "$(raw "$http" 'POST /membership/remove?id=9 HTTP/1.0\r\nContent-Length: 0\r\n\r\n')"

# Default limits: a read whose reply would be huge (one 1 MB value named 70 times) is refused.
kv_kill 1
kv_start 1 1
eventually 10 kv_cli 1 SET ready yes
head -c 1000000 /dev/zero | tr '\0' x | kv_cli 1 -x SET big >/dev/null
# shellcheck disable=SC2046
check_contains "MGET of a 70 MB reply" "is over the 67108864-byte limit; ask for fewer keys" \
    "$(kv_cli 1 MGET $(printf 'big %.0s' {1..70}) 2>&1)"
check "MGET of a few" 1000000 "$(kv_cli 1 MGET big ready | head -1 | tr -d '\n' | wc -c)"
echo "all passed"
