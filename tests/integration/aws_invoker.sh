#!/usr/bin/env bash
# The "aws" invoker (Lambda Invoke API over HTTP, SigV4) against lambdamr's own embedded
# service as AWS_ENDPOINT_URL_LAMBDA. lambdamr serve does not check signatures, so the
# requests pass through sigv4_check_proxy.py, which recomputes every signature with botocore
# and refuses mismatches: sync, Event, DryRun, function errors, log tails with REPORT figures,
# qualified names and ARNs (percent-encoded, double-encoded in the signature), not-found
# errors, 429 throttling retried with backoff, and a wrong secret refused.
set -euo pipefail
: "${LMR_BIN_DIR:?}" "${LMR_SOURCE_DIR:?}"
source "$LMR_SOURCE_DIR/tests/integration/lib/moto.sh" # for lmr_on_exit
source "$LMR_SOURCE_DIR/tests/integration/lib/serve.sh"
work=$(mktemp -d)
serve_pid= proxy_pid=
lmr_on_exit '[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null; [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"'
die() { echo "FAIL: $*" >&2; cat "$work/serve.err" >&2 2>/dev/null || true; exit 1; }
step() { echo "== $*"; }
I="$LMR_BIN_DIR/lmr_invoketool"
jget() { python3 -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print(v)' "$1" "$2"; }

"$LMR_BIN_DIR/lambdamr" serve --port 0 --log-dir "$work/logs" \
    --function "echo=$LMR_BIN_DIR/bootstrap,handler=echo,memory=512,timeout=10" \
    --function "bashfail=$LMR_SOURCE_DIR/tests/integration/fixtures/bash_bootstrap,handler=fail" \
    --function "single=$LMR_BIN_DIR/fn_test,handler=sleep,timeout=10,concurrency=1" \
    >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
port=$(serve_port "$work/serve.out")
[ -n "$port" ] || die "lambdamr serve did not start"

export AWS_ACCESS_KEY_ID=AKIDLAMBDATEST AWS_SECRET_ACCESS_KEY=lambda-test-secret AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
sigv4_proxy_start "http://127.0.0.1:$port" "$AWS_SECRET_ACCESS_KEY" "$work/checks" "$work/proxy"
[ -n "$proxy_port" ] || die "the signature-checking proxy did not start: $(cat "$work/proxy.err")"
export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$proxy_port"

step "sync invocation with a log tail"
out=$("$I" --tail echo '{"hello":"lambda"}') || die "sync invoke failed"
[ "$(jget "$out" payload)" = '{"hello":"lambda"}' ] || die "payload: $out"
[ "$(jget "$out" status)" = 200 ] && [ -z "$(jget "$out" function_error)" ] || die "status: $out"
[ -n "$(jget "$out" request_id)" ] || die "no request id: $out"
grep -q "^REPORT RequestId:" <<<"$(jget "$out" log_tail)" || die "no REPORT line in the log tail: $out"
[ "$(jget "$out" memory_size_mb)" = 512 ] || die "REPORT figures not parsed: $out"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["duration_ms"] > 0 and r["billed_duration_ms"] >= 1, r' "$out" ||
    die "durations: $out"

step "Event and DryRun"
out=$("$I" --type event echo '{"n":2}') || die "event invoke failed"
[ "$(jget "$out" status)" = 202 ] || die "event status: $out"
out=$("$I" --type dry-run echo '{}') || die "dry-run failed"
[ "$(jget "$out" status)" = 204 ] || die "dry-run status: $out"

step "a function error is a result, not a failure"
out=$("$I" --tail bashfail '{}') || die "invoke of a failing function failed"
[ "$(jget "$out" function_error)" = Unhandled ] || die "function error: $out"
grep -q Custom.BashFailure <<<"$(jget "$out" payload)" || die "error payload: $out"

step "qualified names and ARNs, percent-encoded and signed as AWS expects"
for fn in 'echo:$LATEST' 'arn:aws:lambda:us-east-1:000000000000:function:echo' \
    'arn:aws:lambda:us-east-1:000000000000:function:echo:$LATEST' '000000000000:function:echo'; do
    out=$("$I" "$fn" '"x"') || die "invoke $fn failed"
    [ "$(jget "$out" payload)" = '"x"' ] || die "$fn answered $out"
done
rc=0; "$I" 'echo:prod' '{}' 2>"$work/e.txt" || rc=$?
[ "$rc" = 3 ] && grep -q "ResourceNotFoundException" "$work/e.txt" && grep -q "Lambda function 'echo:prod'" "$work/e.txt" ||
    die "unknown alias: rc=$rc $(cat "$work/e.txt")"
rc=0; "$I" nosuchfn '{}' 2>"$work/e.txt" || rc=$?
[ "$rc" = 3 ] && grep -q "nosuchfn" "$work/e.txt" || die "unknown function: rc=$rc $(cat "$work/e.txt")"

step "429 throttling is retried with backoff"
"$I" single 1500 >"$work/t1.json" &
t1=$!
sleep 0.3
"$I" single 10 >"$work/t2.json" || die "the throttled invocation failed: $(cat "$work/t2.json")"
wait "$t1" || die "the first invocation failed"
[ "$(jget "$(cat "$work/t2.json")" throttle_retries)" -gt 0 ] || die "no throttle retries: $(cat "$work/t2.json")"
[ "$(jget "$(cat "$work/t2.json")" payload)" = slept ] || die "throttled invocation answered $(cat "$work/t2.json")"

step "every request so far passed botocore's signature check; a wrong secret does not"
[ "$(grep -c bad "$work/checks" || true)" = 0 ] || die "$(grep -c bad "$work/checks") requests failed the signature check"
[ "$(grep -c ok "$work/checks")" -ge 12 ] || die "too few checked requests: $(cat "$work/checks")"
rc=0; AWS_SECRET_ACCESS_KEY=wrong "$I" echo '{}' 2>"$work/e.txt" || rc=$?
[ "$rc" = 1 ] && grep -q "InvalidSignatureException" "$work/e.txt" && grep -q "AKIDLAMBDATEST" "$work/e.txt" ||
    die "wrong secret: rc=$rc $(cat "$work/e.txt")"
grep -q "wrong" "$work/e.txt" && die "the secret appears in the message"
[ "$(grep -c bad "$work/checks")" = 1 ] || die "the wrong secret was not refused by the check"

step "unreachable endpoint"
rc=0; AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:1 "$I" echo '{}' 2>"$work/e.txt" || rc=$?
[ "$rc" = 1 ] && grep -q "cannot reach Lambda at http://127.0.0.1:1" "$work/e.txt" || die "unreachable: $(cat "$work/e.txt")"
echo PASS
