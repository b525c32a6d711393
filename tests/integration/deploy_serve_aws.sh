#!/usr/bin/env bash
# lambdamr deploy against lambdamr serve's Lambda control plane (AWS_ENDPOINT_URL_LAMBDA; IAM,
# CloudWatch Logs and S3 on moto with SigV4 checking on), then a whole job with run --backend
# aws on the deployed functions over s3:// data: the output is byte-identical to the embedded
# default's, the job runs with the deployed memory, an update waits between code and
# configuration, and undeploy removes the functions.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
moto_start
# The proxy first (on the port serve will take), then serve with AWS_ENDPOINT_URL_LAMBDA at the
# proxy: the deployed coordinator function invokes the tasks there, as it would invoke Lambda.
serve_behind_proxy_init "$D" || { fail "the signature-checking proxy did not start"; finish; }
"$LAMBDAMR" serve --port "$port" --log-dir "$D/logs" > "$D/serve.out" 2> "$D/serve.err" &
serve_pid=$!
[ "$(serve_port "$D/serve.out")" = "$port" ] || { cat "$D/serve.err"; fail "lambdamr serve did not start"; finish; }

"$LAMBDAMR" package --out "$D/fn.zip" > /dev/null || { fail "lambdamr package failed"; finish; }
aws s3 mb s3://lmr-data > /dev/null
"$LAMBDAMR" deploy --function-prefix sv --zip "$D/fn.zip" --memory 512 --timeout 60 --bucket lmr-data \
    > "$D/deploy.out" 2>&1 && pass "deploy to lambdamr serve: $(tail -1 "$D/deploy.out")" \
    || { cat "$D/deploy.out"; fail "deploy to lambdamr serve failed"; finish; }
aws lambda get-function-configuration --function-name sv-mapper > "$D/cfg.json" \
    && python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); assert (c["Runtime"], c["Handler"], c["MemorySize"]) == ("provided.al2023", "mapper", 512), c' "$D/cfg.json" \
    && pass "the AWS CLI sees sv-mapper on serve: provided.al2023, handler mapper, 512 MB" || fail "sv-mapper on serve: $(cat "$D/cfg.json")"
"$LAMBDAMR" deploy --function-prefix sv --zip "$D/fn.zip" --memory 512 --timeout 60 --bucket lmr-data > "$D/deploy2.out" 2>&1 \
    && grep -q "nothing changed" "$D/deploy2.out" && pass "second deploy to serve: nothing changed" \
    || fail "second deploy to serve: $(cat "$D/deploy2.out")"

python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(7)
words = ['alpha', 'beta', 'gamma'] + ['w%d' % i for i in range(700)]
for i in range(4):
    with open(os.path.join(sys.argv[1], 'p%d.txt' % i), 'w') as f:
        for _ in range(2500):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 8))) + '\n')
PY
aws s3 cp --recursive --quiet "$D/in" s3://lmr-data/in/
"$LAMBDAMR" run wordcount --input s3://lmr-data/in/ --output s3://lmr-data/out/ --backend aws --function-prefix sv \
    --reducers 2 --split-size 32K --json > "$D/report.json" 2> "$D/run.log" || { cat "$D/run.log"; fail "run --backend aws on the deployed functions failed"; }
"$LAMBDAMR" run wordcount --input "$D/in" --output "$D/local-out" --reducers 2 --split-size 32K > /dev/null 2>&1 || fail "local run failed"
mkdir -p "$D/aws-out"
aws s3 cp --recursive --quiet s3://lmr-data/out/ "$D/aws-out/"
if [ -f "$D/aws-out/_SUCCESS" ] && cmp -s <(cat "$D/aws-out"/part-r-*) <(cat "$D/local-out"/part-r-*); then
    pass "deployed functions on serve: output byte-identical to the embedded default's"
else
    fail "output of the deployed functions differs"
fi
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["memory_mb"] == 512 and all(i["memory_size_mb"] == 512 for i in r["invocations"]), r["memory_mb"]' "$D/report.json" \
    && pass "the job used the deployed 512 MB" || fail "memory of the job"
[ "$(grep -c bad "$D/checks" || true)" = 0 ] && pass "$(grep -c ok "$D/checks") Lambda requests passed botocore's signature check" \
    || fail "requests failed the signature check"
# An update: a changed package and timeout. serve answers LastUpdateStatus InProgress for a moment
# after UpdateFunctionCode and refuses UpdateFunctionConfiguration meanwhile, so this passes only if
# deploy waits between the two.
echo 'echo hi' > "$D/hi.sh"
"$LAMBDAMR" package --out "$D/fn2.zip" --file "$D/hi.sh" > /dev/null || fail "package --file failed"
"$LAMBDAMR" deploy --function-prefix sv --zip "$D/fn2.zip" --memory 512 --timeout 61 --bucket lmr-data > "$D/deploy3.out" 2>&1 \
    && [ "$(grep -c 'code updated' "$D/deploy3.out")" = 4 ] && [ "$(grep -c 'configuration updated' "$D/deploy3.out")" = 4 ] \
    && [ "$(aws lambda get-function-configuration --function-name sv-reducer --query '[Timeout,LastUpdateStatus]' --output text)" = "61	Successful" ] \
    && pass "update on serve: code, then (after waiting) configuration" || fail "update on serve: $(cat "$D/deploy3.out")"
"$LAMBDAMR" undeploy --function-prefix sv > "$D/undeploy.out" 2>&1 || fail "undeploy failed: $(cat "$D/undeploy.out")"
[ "$(aws lambda list-functions --query 'length(Functions)')" = 0 ] && ! aws iam get-role --role-name sv-role > /dev/null 2>&1 \
    && pass "undeploy: no function on serve, no role on moto" || fail "undeploy left: $(aws lambda list-functions --query 'Functions[].FunctionName')"
finish
