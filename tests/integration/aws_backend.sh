#!/usr/bin/env bash
# lambdamr run --backend aws: the driver invokes the deployed NAME-coordinator, which invokes
# NAME-mapper and NAME-reducer, through the Lambda Invoke API, signed with SigV4. Here the "deployment" is `lambdamr serve`
# behind a proxy that checks every signature with botocore, as AWS_ENDPOINT_URL_LAMBDA. The
# output must equal the embedded default's, and the report must carry the REPORT figures.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh" # for lmr_on_exit
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
serve_pid= proxy_pid=
lmr_on_exit '[ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null; [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; cleanup_tmp'

export AWS_ACCESS_KEY_ID=AKIDBACKENDTEST AWS_SECRET_ACCESS_KEY=backend-test-secret AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
# The proxy first (on the port serve will take), so that the coordinator function, which invokes
# the tasks through AWS_ENDPOINT_URL_LAMBDA as it would on AWS, is signature-checked too.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
sigv4_proxy_start "http://127.0.0.1:$port" "$AWS_SECRET_ACCESS_KEY" "$D/checks" "$D/proxy"
[ -n "$proxy_port" ] || { cat "$D/proxy.err"; fail "the signature-checking proxy did not start"; finish; }
export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$proxy_port"
"$LAMBDAMR" serve --port "$port" --log-dir "$D/logs" \
    --function "wc-mapper=$LMR_BIN_DIR/bootstrap,handler=mapper,memory=512,timeout=60,concurrency=4" \
    --function "wc-reducer=$LMR_BIN_DIR/bootstrap,handler=reducer,memory=512,timeout=60,concurrency=4" \
    --function "wc-coordinator=$LMR_BIN_DIR/bootstrap,handler=coordinator,memory=512,timeout=60,concurrency=2" \
    > "$D/serve.out" 2> "$D/serve.err" &
serve_pid=$!
[ "$(serve_port "$D/serve.out")" = "$port" ] || { cat "$D/serve.err"; fail "lambdamr serve did not start"; finish; }

python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(11)
words = ['alpha', 'beta', 'gamma', 'delta'] + ['w%d' % i for i in range(900)]
for i in range(5):
    with open(os.path.join(sys.argv[1], 'p%d.txt' % i), 'w') as f:
        for _ in range(3000):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 8))) + '\n')
PY
"$LAMBDAMR" run wordcount --input "$D/in" --output "$D/aws-out" --backend aws --function-prefix wc --reducers 2 \
    --split-size 32K --json > "$D/report.json" 2> "$D/run.log" || { cat "$D/run.log"; fail "--backend aws run failed"; }
"$LAMBDAMR" run wordcount --input "$D/in" --output "$D/local-out" --reducers 2 --split-size 32K > /dev/null 2>&1 \
    || fail "local run failed"
if [ -f "$D/aws-out/_SUCCESS" ] && diff -q <(cat "$D/aws-out"/part-r-*) <(cat "$D/local-out"/part-r-*) > /dev/null; then
    pass "--backend aws output equals the embedded default's"
else
    fail "--backend aws output differs"
fi
check_wordcount "--backend aws vs the oracle" "$D/aws-out" "$D/in"
python3 - "$D/report.json" <<'PY' && pass "report carries the REPORT figures from the log tails" || fail "report figures"
import json, sys
r = json.load(open(sys.argv[1]))
invs = r['invocations']
assert len(invs) == r['mappers'] + r['reducers'], len(invs)
for i in invs:
    assert i['memory_size_mb'] == 512 and i['billed_duration_ms'] >= 1 and i['max_memory_used_mb'] > 0, i
assert r['cost']['gb_seconds'] > 0
PY
signed=$(cat "$D/checks" 2>/dev/null | grep -c . || true)
[ "$signed" -ge 9 ] && pass "$signed Invoke requests passed botocore's signature check" || fail "only $signed checked requests"

# A function prefix that is not deployed: the Lambda error is named, nothing is written.
if "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/missing" --backend aws --function-prefix nope \
    > /dev/null 2> "$D/err"; then
    fail "an undeployed function succeeded"
else
    grep -q "ResourceNotFoundException\|nope-mapper" "$D/err" && pass "undeployed function: $(head -c 150 "$D/err")" \
        || { fail "undeployed function error"; cat "$D/err"; }
    ls "$D/missing"/part-* > /dev/null 2>&1 && fail "parts written" || pass "undeployed function: no part files"
fi
finish
