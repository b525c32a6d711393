#!/usr/bin/env bash
# lambdamr run --backend aws: the driver reads the deployed functions' memory from
# GetFunctionConfiguration and invokes the deployed NAME-coordinator, which invokes NAME-mapper
# and NAME-reducer, through the Lambda Invoke API, signed with SigV4, over s3:// data on moto.
# The "deployment" is `lambdamr serve` with three functions of 512 MB (its control plane answers
# GetFunctionConfiguration) behind a proxy that checks every signature with botocore; the
# coordinator function's own invocations go through the same proxy. The output must equal the
# embedded default's byte for byte; the job uses the deployed memory; a --memory that disagrees
# and local paths are refused before anything is written. (deploy_serve_aws.sh deploys with
# `lambdamr deploy` instead.)
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
moto_start
# The proxy first (on the port serve will take), so that the coordinator function, which invokes
# the tasks through AWS_ENDPOINT_URL_LAMBDA as it would on AWS, is signature-checked too.
serve_behind_proxy_init "$D" || { fail "the signature-checking proxy did not start"; finish; }

aws s3 mb s3://lmr-data > /dev/null
# The functions' Runtime API client as on AWS: one request at a time, no GET /next pipelined
# behind the POST of a result (the embedded service turns that on for its own environments).
export LMR_RUNTIME_API_PIPELINING=0
serve_functions_start "$D" wc memory=512 concurrency=4 || { fail "lambdamr serve did not start"; finish; }

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
aws s3 cp --recursive --quiet "$D/in" s3://lmr-data/in/
"$LAMBDAMR" run wordcount --input s3://lmr-data/in/ --output s3://lmr-data/aws-out/ --backend aws --function-prefix wc \
    --reducers 2 --split-size 32K --json > "$D/report.json" 2> "$D/run.log" || { cat "$D/run.log"; fail "--backend aws run failed"; }
"$LAMBDAMR" run wordcount --input "$D/in" --output "$D/local-out" --reducers 2 --split-size 32K > /dev/null 2>&1 \
    || fail "local run failed"
mkdir -p "$D/aws-out"
aws s3 cp --recursive --quiet s3://lmr-data/aws-out/ "$D/aws-out/"
if [ -f "$D/aws-out/_SUCCESS" ] && diff -q <(cat "$D/aws-out"/part-r-*) <(cat "$D/local-out"/part-r-*) > /dev/null; then
    pass "--backend aws output over s3:// equals the embedded default's"
else
    fail "--backend aws output differs"
fi
check_wordcount "--backend aws vs the oracle" "$D/aws-out" "$D/in"
python3 - "$D/report.json" <<'PY' && pass "the job ran with the deployed 512 MB (not the 1024 MB default); REPORT figures present" || fail "report figures"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['memory_mb'] == 512, r['memory_mb']
invs = r['invocations']
assert len(invs) == r['mappers'] + r['reducers'], len(invs)
for i in invs:
    assert i['memory_size_mb'] == 512 and i['billed_duration_ms'] >= 1 and i['max_memory_used_mb'] > 0, i
assert r['cost']['gb_seconds'] > 0
PY
signed=$(grep -c ok "$D/checks" 2>/dev/null || true)
bad=$(grep -c bad "$D/checks" 2>/dev/null || true)
[ "$signed" -ge 10 ] && [ "$bad" = 0 ] && pass "$signed Lambda requests passed botocore's signature check" \
    || fail "$signed checked requests, $bad bad"

# A --memory that disagrees with the deployment: refused, says which to change, writes nothing.
rc=0
"$LAMBDAMR" run wordcount --input s3://lmr-data/in/ --output s3://lmr-data/mem-out/ --backend aws --function-prefix wc \
    --memory 1024 > /dev/null 2> "$D/err" || rc=$?
if [ "$rc" = 2 ] && grep -q -- "--memory 1024 disagrees with the deployed wc-mapper, which has 512 MB" "$D/err" &&
    grep -q "drop --memory" "$D/err" && grep -q "lambdamr deploy --function-prefix wc --memory 1024" "$D/err"; then
    pass "disagreeing --memory: $(head -c 160 "$D/err")"
else
    fail "disagreeing --memory (rc=$rc): $(cat "$D/err")"
fi
[ -z "$(aws s3 ls s3://lmr-data/mem-out/ 2>/dev/null)" ] && pass "disagreeing --memory: nothing written" \
    || fail "disagreeing --memory wrote output"
"$LAMBDAMR" run wordcount --input s3://lmr-data/in/ --output s3://lmr-data/mem-ok/ --backend aws --function-prefix wc \
    --memory 512 --split-size 64K > /dev/null 2> "$D/err" && pass "--memory equal to the deployed memory is accepted" \
    || fail "--memory 512 refused: $(cat "$D/err")"

# Local paths with --backend aws: refused with a pointer to s3://, nothing written.
for args in "--input $D/in --output s3://lmr-data/x1/" "--input s3://lmr-data/in/ --output $D/x2" \
    "--input s3://lmr-data/in/ --output s3://lmr-data/x3/ --work $D/work"; do
    rc=0
    # shellcheck disable=SC2086
    "$LAMBDAMR" run wordcount $args --backend aws --function-prefix wc > /dev/null 2> "$D/err" || rc=$?
    if [ "$rc" = 2 ] && grep -q "is not in S3" "$D/err" && grep -q "s3://BUCKET/PREFIX" "$D/err"; then
        pass "local path refused: $(head -c 120 "$D/err")"
    else
        fail "local path (rc=$rc) for '$args': $(cat "$D/err")"
    fi
done
[ ! -e "$D/x2" ] && [ ! -e "$D/work" ] && [ -z "$(aws s3 ls s3://lmr-data/x1/ 2>/dev/null)$(aws s3 ls s3://lmr-data/x3/ 2>/dev/null)" ] \
    && pass "local paths: nothing written" || fail "a refused run wrote something"

# A function prefix that is not deployed: the Lambda error is named, nothing is written.
if "$LAMBDAMR" run wordcount --input s3://lmr-data/in/ --output s3://lmr-data/missing/ --backend aws --function-prefix nope \
    > /dev/null 2> "$D/err"; then
    fail "an undeployed function succeeded"
else
    grep -q "nope-mapper" "$D/err" && grep -q "lambdamr deploy" "$D/err" && pass "undeployed function: $(head -c 150 "$D/err")" \
        || { fail "undeployed function error"; cat "$D/err"; }
    [ -z "$(aws s3 ls s3://lmr-data/missing/ 2>/dev/null)" ] && pass "undeployed function: nothing written" || fail "parts written"
fi
finish
