#!/usr/bin/env bash
# The embedded Lambda service against hostile local clients (issue 11 item 6), loopback only:
#  - 512 connections that each send a header line a second (slowloris) do not starve the Invoke
#    API: real invokes made during the attack are answered at once (request deadline, and a full
#    table evicts the oldest unfinished request);
#  - a plain curl on an environment's Runtime API port is refused at once (it is not the
#    environment's process), and the environment keeps serving its own invocations.
set -euo pipefail
: "${LMR_BIN_DIR:?}" "${LMR_SOURCE_DIR:?}"
source "$LMR_SOURCE_DIR/tests/integration/lib/serve.sh"
work=$(mktemp -d)
serve_pid=
slow_pid=
cleanup() {
    [ -n "$slow_pid" ] && kill "$slow_pid" 2>/dev/null || true
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; cat "$work/serve.err" "$work/slow.out" 2>/dev/null | tail -20 >&2; exit 1; }

"$LMR_BIN_DIR/lambdamr" serve --port 0 --log-dir "$work/logs" --request-timeout 2 \
    --function "echo=$LMR_BIN_DIR/fn_test,handler=echo,timeout=5" \
    --function "env=$LMR_BIN_DIR/fn_test,handler=env,timeout=5,concurrency=1" \
    >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
port=$(serve_port "$work/serve.out")
[ -n "$port" ] || fail "serve did not print its port"
url="http://127.0.0.1:$port/2015-03-31/functions"
invoke() { # NAME PAYLOAD: print the answer; fail unless it is a 200 within 3 s
    curl -sS -m 3 -o - -w '\n%{http_code}' -X POST --data "$2" "$url/$1/invocations" >"$work/answer" 2>"$work/curl.err" ||
        fail "invoke $1 failed: $(cat "$work/curl.err")"
    [ "$(tail -1 "$work/answer")" = 200 ] || fail "invoke $1 answered $(cat "$work/answer")"
    sed '$d' "$work/answer"
}
[ "$(invoke echo '{"n":0}')" = '{"n":0}' ] || fail "echo before the attack"

# --- slow clients ---------------------------------------------------------------------------
python3 - "$port" 512 7 >"$work/slow.out" 2>&1 <<'PY' &
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
head = b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(head)
    return s
socks, reopened, failed = [], 0, 0
for _ in range(n):
    socks.append(connect())
print("slow clients: %d connected" % len(socks), flush=True)
end = time.time() + secs
while time.time() < end:
    for i in range(len(socks)):
        try:
            socks[i].sendall(b"X-Slow: 1\r\n")
        except OSError:
            socks[i].close()
            try:
                socks[i] = connect()
                reopened += 1
            except OSError:
                failed += 1
    time.sleep(1)
print("slow clients: done, %d connections cut by the service and reopened, %d reconnects failed"
      % (reopened, failed), flush=True)
PY
slow_pid=$!
for _ in $(seq 100); do grep -q connected "$work/slow.out" && break; sleep 0.1; done
grep -q "512 connected" "$work/slow.out" || fail "the slow clients did not connect: $(cat "$work/slow.out")"
# While all 512 trickle headers (and again after the 2 s deadline cut them and they came back):
for i in 1 2 3 4 5; do
    start=$(date +%s%N)
    [ "$(invoke echo "{\"during\":$i}")" = "{\"during\":$i}" ] || fail "echo $i during the attack"
    ms=$((($(date +%s%N) - start) / 1000000))
    echo "invoke $i during the attack: ${ms} ms"
    sleep 1
done
wait "$slow_pid" || fail "the slow client script failed"
slow_pid=
cat "$work/slow.out"
grep -Eq "done, [1-9][0-9]* connections cut" "$work/slow.out" || fail "the service never cut a slow connection"

# --- a neighbour on a Runtime API port --------------------------------------------------------
api=$(invoke env AWS_LAMBDA_RUNTIME_API)
rt_port=${api##*:}
[ -n "$rt_port" ] || fail "no Runtime API address in '$api'"
rc=0
curl -sS -m 3 "http://127.0.0.1:$rt_port/2018-06-01/runtime/invocation/next" >"$work/stolen" 2>"$work/stolen.err" ||
    rc=$?
# 52: empty reply, 56: connection reset: refused. 28 would be a GET /next left waiting for work.
case $rc in 52 | 56) ;; *) fail "curl on the Runtime API port: exit $rc, got '$(cat "$work/stolen")'" ;; esac
rc=0
curl -sS -m 3 -X POST --data '{"forged":1}' \
    "http://127.0.0.1:$rt_port/2018-06-01/runtime/invocation/x/response" >/dev/null 2>&1 || rc=$?
case $rc in 52 | 56) ;; *) fail "a forged response on the Runtime API port: exit $rc" ;; esac
[ "$(invoke env AWS_LAMBDA_FUNCTION_NAME)" = "AWS_LAMBDA_FUNCTION_NAME=env" ] || fail "env after the neighbour"
grep -q "refused a connection to the Runtime API" "$work/logs/env.log" || fail "the refusal is not in the log"
echo "PASS"
