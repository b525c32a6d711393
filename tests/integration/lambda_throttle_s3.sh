#!/usr/bin/env bash
# Throttling (429 TooManyRequestsException) on lambdamr serve's Lambda API with run --backend
# aws over s3:// data on moto (SigV4 checking on): with the mapper's reserved concurrency at 0
# (PutFunctionConcurrency through the AWS CLI) every invocation is throttled past its retries,
# and the job fails with an error that says how to get more concurrency and names the flag and
# the settings (--concurrency, put-function-concurrency, the 'Concurrent executions' quota);
# with a reserved concurrency of 1 under --concurrency 4 the invocations are throttled and
# retried, and the job's output is exactly the word-count oracle's.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
serve_pid=
moto_start
lmr_on_exit 'if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null; fi; cleanup_tmp'

# serve's functions invoke each other (the coordinator invokes the tasks) at this endpoint, with
# AWS_MAX_ATTEMPTS (the SDKs' setting, which lambdamr's invoker honours): 3 attempts per invoke.
export AWS_MAX_ATTEMPTS=3
serve_functions_start "$D" th memory=512 concurrency=8 coordinator_timeout=300 ||
    { fail "lambdamr serve did not start"; finish; }

# The input, written locally (for the oracle) and to S3 on moto (one boto3 process: quicker than the CLI).
python3 - "$D/in" <<'PY'
import boto3, os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(11)
words = ['w%d' % i for i in range(300)]
s3 = boto3.client('s3')
s3.create_bucket(Bucket='lmr-th')
for i in range(6):
    path = os.path.join(sys.argv[1], 'p%d.txt' % i)
    with open(path, 'w') as f:
        for _ in range(400):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 6))) + '\n')
    s3.upload_file(path, 'lmr-th', 'in/p%d.txt' % i)
PY

# 1. Reserved concurrency 0: every invocation of th-mapper is throttled, past its retries.
aws lambda put-function-concurrency --function-name th-mapper --reserved-concurrent-executions 0 > /dev/null
if "$LAMBDAMR" run wordcount --input s3://lmr-th/in/ --output s3://lmr-th/out0/ --backend aws \
    --function-prefix th --reducers 2 --max-attempts 2 > "$D/run0.out" 2> "$D/run0.err"; then
    fail "a job whose mapper has reserved concurrency 0 succeeded"
else
    err=$(cat "$D/run0.err")
    missing=
    for want in "TooManyRequestsException" "--concurrency" "put-function-concurrency" \
        "delete-function-concurrency --function-name th-mapper" "Concurrent executions" "--quota-code L-B99A9384"; do
        case "$err" in *"$want"*) ;; *) missing="$missing [$want]" ;; esac
    done
    if [ -z "$missing" ]; then
        pass "throttled past its retries: the error names --concurrency, put-function-concurrency and the quota"
    else
        echo "$err"
        fail "the throttling error lacks:$missing"
    fi
fi
if python3 -c 'import boto3,sys; sys.exit(0 if boto3.client("s3").list_objects_v2(Bucket="lmr-th", Prefix="out0/_SUCCESS").get("KeyCount") else 1)'; then
    fail "the throttled job left _SUCCESS"
else
    pass "the throttled job committed nothing (no _SUCCESS)"
fi

# 2. Reserved concurrency 1 under --concurrency 4: throttled, retried (attempts that stay throttled
#    are tried again, up to --max-attempts), and exact.
aws lambda put-function-concurrency --function-name th-mapper --reserved-concurrent-executions 1 > /dev/null
if "$LAMBDAMR" run wordcount --input s3://lmr-th/in/ --output s3://lmr-th/out1/ --backend aws --max-attempts 50 \
    --function-prefix th --reducers 2 --split-size 4K --concurrency 4 --json > "$D/report1.json" 2> "$D/run1.err"; then
    pass "job under reserved concurrency 1 succeeded"
else
    cat "$D/run1.err"
    fail "job under reserved concurrency 1 failed"
fi
python3 - "$D/out1" <<'PY'
import boto3, os, sys
s3 = boto3.client('s3')
os.makedirs(sys.argv[1], exist_ok=True)
for o in s3.list_objects_v2(Bucket='lmr-th', Prefix='out1/').get('Contents', []):
    name = o['Key'][len('out1/'):]
    if '/' not in name:
        s3.download_file('lmr-th', o['Key'], os.path.join(sys.argv[1], name))
PY
wordcount_oracle "$D/in" > "$D/oracle.txt"
if [ -f "$D/out1/_SUCCESS" ] && cmp -s <(cat "$D/out1"/part-r-* | LC_ALL=C sort) "$D/oracle.txt"; then
    pass "throttled-then-succeeding job: output equals the oracle"
else
    fail "throttled-then-succeeding job: output differs from the oracle"
fi
if python3 - "$D/report1.json" <<'PY'; then
import json, sys
r = json.load(open(sys.argv[1]))
maps = [i for i in r['invocations'] if i['phase'] == 'map']
t = sum(i.get('throttle_retries', 0) for i in maps)
assert len(maps) >= 4 and t > 0, (len(maps), t)
print('%d map invocations, %d throttled retries' % (len(maps), t))
PY
    pass "the report counts the throttled retries of the map invocations"
else
    fail "no throttled retries in the report (the test did not throttle)"
fi
finish
