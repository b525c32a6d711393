#!/usr/bin/env bash
# `lambdamr serve`'s control plane with code on S3 (moto_server, SigV4 checking on): CreateFunction
# with Code.S3Bucket/S3Key (read through AWS_ENDPOINT_URL), a missing key refused, and a whole
# `lambdamr run wordcount --backend aws --function-prefix cp` over cp-coordinator, cp-mapper and cp-reducer made
# with `aws lambda create-function`, whose output equals the embedded default's byte for byte.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
serve_pid=
lmr_on_exit '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; cleanup_tmp'
moto_start
aws s3 mb s3://lmr-code > /dev/null
aws s3 mb s3://lmr-data > /dev/null

# serve reads code from S3 with the credentials and endpoint of its environment (moto's), and its
# functions inherit them for their own S3 reads and writes, and AWS_ENDPOINT_URL_LAMBDA (serve
# itself, so its port is chosen first) for cp-coordinator's invocations of cp-mapper and cp-reducer.
port=$(free_port)
export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$port"
"$LAMBDAMR" serve --port "$port" --log-dir "$D/logs" --state-dir "$D/state" > "$D/serve.out" 2> "$D/serve.err" &
serve_pid=$!
[ "$(serve_port "$D/serve.out")" = "$port" ] || { cat "$D/serve.err"; fail "lambdamr serve did not start"; finish; exit 1; }
L=(timeout 120 aws --endpoint-url "http://127.0.0.1:$port" lambda)
ROLE=arn:aws:iam::123456789012:role/lambdamr-test

# The real function: the packaged zip once `lambdamr package` exists, else a sh bootstrap that execs
# the function binary of this build.
if "$LAMBDAMR" package --help > /dev/null 2>&1; then
    "$LAMBDAMR" package --out "$D/fn.zip" > "$D/package.log" 2>&1 || { cat "$D/package.log"; fail "lambdamr package"; }
else
    python3 "$LMR_SOURCE_DIR/tests/integration/lib/lambda_zip.py" exec "$D/fn.zip" "$LMR_BIN_DIR/bootstrap"
fi
aws s3 cp --quiet "$D/fn.zip" s3://lmr-code/pkg/fn.zip
for role in mapper reducer coordinator; do
    timeout=60; [ "$role" = coordinator ] && timeout=900 # as lambdamr deploy gives it
    "${L[@]}" create-function --function-name "cp-$role" --runtime provided.al2023 --handler "$role" --role "$ROLE" \
        --code S3Bucket=lmr-code,S3Key=pkg/fn.zip --memory-size 512 --timeout $timeout > "$D/create-$role.json" \
        2> "$D/err.txt" || fail "create-function cp-$role from S3: $(cat "$D/err.txt")"
done
python3 - "$D/create-mapper.json" "$D/fn.zip" <<'PY' && pass "create-function from S3: CodeSha256 and CodeSize of the object" || fail "S3 code fields"
import base64, hashlib, json, sys
j = json.load(open(sys.argv[1])); z = open(sys.argv[2], "rb").read()
assert j["CodeSha256"] == base64.b64encode(hashlib.sha256(z).digest()).decode() and j["CodeSize"] == len(z), j
assert j["Handler"] == "mapper" and j["MemorySize"] == 512 and j["Timeout"] == 60, j
PY
if "${L[@]}" create-function --function-name cp-missing --runtime provided.al2023 --handler h --role "$ROLE" \
    --code S3Bucket=lmr-code,S3Key=pkg/nope.zip > /dev/null 2> "$D/err.txt"; then
    fail "a missing S3 key was accepted"
else
    grep -q "(InvalidParameterValueException)" "$D/err.txt" && grep -q "NoSuchKey" "$D/err.txt" \
        && pass "a missing S3 key: InvalidParameterValueException (NoSuchKey)" || fail "missing key: $(cat "$D/err.txt")"
fi
"${L[@]}" wait function-active-v2 --function-name cp-mapper
"${L[@]}" wait function-active-v2 --function-name cp-reducer
"${L[@]}" wait function-active-v2 --function-name cp-coordinator

python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(23)
words = ['alpha', 'beta', 'gamma', 'Delta', 'é'] + ['w%d' % i for i in range(700)]
for i in range(4):
    with open(os.path.join(sys.argv[1], 'p%d.txt' % i), 'w') as f:
        for _ in range(2500):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 8))) + '\n')
PY
aws s3 cp --quiet --recursive "$D/in" s3://lmr-data/in/
"$LAMBDAMR" run wordcount --backend aws --function-prefix cp \
    --input s3://lmr-data/in/ --output s3://lmr-data/out-aws/ --reducers 2 --split-size 32K --json \
    > "$D/report.json" 2> "$D/run.log" || { cat "$D/run.log"; fail "run --backend aws over created functions failed"; }
"$LAMBDAMR" run wordcount --input s3://lmr-data/in/ --output s3://lmr-data/out-local/ --reducers 2 --split-size 32K \
    > /dev/null 2> "$D/run2.log" || { cat "$D/run2.log"; fail "the embedded default run failed"; }
aws s3 cp --quiet --recursive s3://lmr-data/out-aws/ "$D/out-aws/"
aws s3 cp --quiet --recursive s3://lmr-data/out-local/ "$D/out-local/"
if [ -f "$D/out-aws/_SUCCESS" ] && cmp -s "$D/out-aws/part-r-00000" "$D/out-local/part-r-00000" &&
    cmp -s "$D/out-aws/part-r-00001" "$D/out-local/part-r-00001"; then
    pass "run --backend aws over create-function'd functions equals the embedded default byte for byte"
else
    fail "the outputs differ"
fi
check_wordcount "--backend aws over created functions vs the oracle" "$D/out-aws" "$D/in"
python3 - "$D/report.json" <<'PY' && pass "every task ran in the created functions (memory 512 MB)" || fail "report"
import json, sys
r = json.load(open(sys.argv[1]))
invs = r["invocations"]
assert len(invs) >= r["mappers"] + r["reducers"] and all(i["memory_size_mb"] == 512 for i in invs), invs[:2]
PY
grep -q "START RequestId" "$D/logs/cp-mapper.log" && grep -q "START RequestId" "$D/logs/cp-reducer.log" \
    && grep -q "START RequestId" "$D/logs/cp-coordinator.log" \
    && pass "the invocations are in the created functions' logs (coordinator, mapper, reducer)" || fail "no invocations in the logs"
kill "$serve_pid"
wait "$serve_pid" && pass "serve stops cleanly (exit status 0; leak-checked in sanitizer builds)" \
    || { fail "serve exit status"; cat "$D/serve.err"; }
serve_pid=
finish
