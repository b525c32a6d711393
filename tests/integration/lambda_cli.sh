#!/usr/bin/env bash
# `lambdamr serve` answers the AWS CLI: a bash custom runtime (curl on the Runtime API) and
# the bootstrap binary, sync and async, FunctionError for a failing function, clean stop.
set -euo pipefail
: "${LMR_BIN_DIR:?}" "${LMR_SOURCE_DIR:?}"
source "$LMR_SOURCE_DIR/tests/integration/lib/serve.sh"
work=$(mktemp -d)
serve_pid=
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/serve.out" ] && cat "$work/serve.out" "$work/serve.err" >&2; exit 1; }
# Send signal $1 to serve, wait up to 10 s for it to end, and require exit status 0 ($2 ends that message).
stop_serve() {
    kill -"$1" "$serve_pid"
    for _ in $(seq 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$serve_pid" 2>/dev/null; then fail "serve did not stop on SIG$1"; fi
    wait "$serve_pid" || fail "serve exited with an error status$2"
    serve_pid=
}

"$LMR_BIN_DIR/lambdamr" serve --help | grep -q -- "--function" || fail "serve --help"
if "$LMR_BIN_DIR/lambdamr" serve --function bad 2>/dev/null; then fail "a bad --function spec was accepted"; fi
# A function path that does not exist, is a directory or is not executable is refused at start (exit 2).
touch "$work/not-exec"
for p in "$work/no-such-bootstrap" "$work" "$work/not-exec"; do
    rc=0
    timeout 10 "$LMR_BIN_DIR/lambdamr" serve --port 0 --function "f=$p" >/dev/null 2>"$work/bad.err" || rc=$?
    [ "$rc" = 2 ] || fail "serve with function path $p exited $rc, not 2"
    grep -q "executable $p of function f" "$work/bad.err" || fail "unclear error for $p: $(cat "$work/bad.err")"
done

bash_rt="$LMR_SOURCE_DIR/tests/integration/fixtures/bash_bootstrap"
"$LMR_BIN_DIR/lambdamr" serve --port 0 --log-dir "$work/logs" \
    --function "upper=$bash_rt,memory=256,timeout=10,concurrency=2,handler=upper" \
    --function "bashfail=$bash_rt,handler=fail" \
    --function "echo=$LMR_BIN_DIR/bootstrap,handler=echo,timeout=10" \
    --function "slow=$LMR_BIN_DIR/fn_test,handler=sleep,timeout=1" \
    >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
port=$(serve_port "$work/serve.out")
[ -n "$port" ] || fail "serve did not print its port"
grep -q "logs in $work/logs" "$work/serve.out" || fail "serve did not print the log directory"

export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
# AWS CLI v2 needs --cli-binary-format to take a raw JSON payload; v1 takes it raw already.
binfmt=()
aws --version 2>&1 | grep -q '^aws-cli/1\.' || binfmt=(--cli-binary-format raw-in-base64-out)
aws_invoke() { # NAME PAYLOAD OUTFILE [extra args]
    local name=$1 payload=$2 out=$3
    shift 3
    timeout 60 aws lambda invoke --endpoint-url "http://127.0.0.1:$port" --function-name "$name" \
        "${binfmt[@]}" --payload "$payload" "$@" "$out"
}

# The bash runtime, through the CLI.
aws_invoke upper '{"msg":"hello lambda"}' "$work/out1.json" >"$work/meta1.json" || fail "invoke upper"
[ "$(cat "$work/out1.json")" = '{"MSG":"HELLO LAMBDA"}' ] || fail "upper answered $(cat "$work/out1.json")"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["StatusCode"]==200 and "FunctionError" not in m, m' \
    "$work/meta1.json" || fail "metadata of upper: $(cat "$work/meta1.json")"
grep -q "bash bootstrap: got request" "$work/logs/upper.log" || fail "the function's output is not in its log"
grep -q "^REPORT RequestId: .*Init Duration" "$work/logs/upper.log" || fail "no REPORT line with Init Duration"

# FunctionError from a failing function, with the error body; and the log tail.
aws_invoke bashfail '{}' "$work/out2.json" --log-type Tail >"$work/meta2.json" || fail "invoke bashfail"
python3 - "$work/meta2.json" "$work/out2.json" <<'PY' || fail "FunctionError: $(cat "$work/meta2.json" "$work/out2.json")"
import base64, json, sys
meta = json.load(open(sys.argv[1])); body = json.load(open(sys.argv[2]))
assert meta["StatusCode"] == 200 and meta["FunctionError"] == "Unhandled", meta
assert body["errorType"] == "Custom.BashFailure", body
log = base64.b64decode(meta["LogResult"]).decode()
assert "REPORT RequestId:" in log and "bash bootstrap: got request" in log, log
PY

# The C bootstrap, sync and Event; a timeout; an unknown function.
aws_invoke echo '{"n":1}' "$work/out3.json" >/dev/null || fail "invoke echo"
[ "$(cat "$work/out3.json")" = '{"n":1}' ] || fail "echo answered $(cat "$work/out3.json")"
aws_invoke echo '{"n":2}' "$work/out4.json" --invocation-type Event >"$work/meta4.json" || fail "event echo"
grep -q '"StatusCode": 202' "$work/meta4.json" || fail "event status: $(cat "$work/meta4.json")"
aws_invoke slow '5000' "$work/out5.json" >"$work/meta5.json" || fail "invoke slow"
grep -q "Task timed out after 1.00 seconds" "$work/out5.json" || fail "timeout: $(cat "$work/out5.json")"
if aws_invoke nope '{}' "$work/out6.json" 2>"$work/err6.txt"; then fail "unknown function succeeded"; fi
grep -q "ResourceNotFoundException" "$work/err6.txt" || fail "unknown function: $(cat "$work/err6.txt")"

# boto3 as well (signs with SigV4; no retries so a 429 would show).
python3 - "$port" <<'PY' || fail "boto3"
import boto3, sys, json
from botocore.config import Config
c = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                 config=Config(retries={"max_attempts": 1}))
r = c.invoke(FunctionName="echo", Payload=b'{"boto":3}')
assert r["StatusCode"] == 200 and r["Payload"].read() == b'{"boto":3}', r
assert r["ExecutedVersion"] == "$LATEST", r
try:
    c.invoke(FunctionName="missing-fn", Payload=b"{}")
    raise SystemExit("no error for a missing function")
except c.exceptions.ResourceNotFoundException:
    pass
PY

# Clean stop on SIGTERM: environments (process groups, with the bash runtime's curl) go too.
groups=$(pgrep -P "$serve_pid" || true)
[ -n "$groups" ] || fail "no execution environments before the stop"
stop_serve TERM ""
# SIGKILL went to each environment's process group; orphans (the bash runtime's curl) may take
# a moment to be reaped by init.
for g in $groups; do
    for _ in $(seq 50); do pgrep -g "$g" >/dev/null || break; sleep 0.1; done
    if pgrep -g "$g" >/dev/null; then ps -o pid,ppid,stat,cmd -g "$g" >&2; fail "processes of environment $g survived the service"; fi
done

# SIGINT stops it too, also while an environment is running an invocation.
"$LMR_BIN_DIR/lambdamr" serve --function "slow=$LMR_BIN_DIR/fn_test,handler=sleep,timeout=30" \
    >"$work/serve2.out" 2>&1 &
serve_pid=$!
port=$(serve_port "$work/serve2.out")
curl -s -o "$work/slow.out" -d 20000 "http://127.0.0.1:$port/2015-03-31/functions/slow/invocations" &
curl_pid=$!
sleep 0.5
children=$(pgrep -P "$serve_pid" || true)
[ -n "$children" ] || fail "no execution environment was running"
stop_serve INT " after SIGINT"
wait "$curl_pid" || true
for c in $children; do
    if kill -0 "$c" 2>/dev/null; then fail "environment process $c survived the service"; fi
done
echo "lambda_cli: ok"
