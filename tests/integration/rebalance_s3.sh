#!/usr/bin/env bash
# Rebalancing on S3 (moto_server, SigV4 checking on): the same code path as on the file store, with
# its requests (split-request, cut.json and task.json are create-only PUTs with If-None-Match, the
# mapper's look a HEAD). One map task made slow is split; the output read back with the AWS CLI is
# exact against python's count, and a task killed right after its cut is retried with the cut.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
lmr_on_exit cleanup_tmp
moto_start
D=$TEST_TMP
aws s3 mb s3://lmr-rb > /dev/null
python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(61)
words = [''.join(r.choice('qrstuvwxyz') for _ in range(r.randint(2, 8))) for _ in range(3000)]
for i in range(3):
    with open(os.path.join(sys.argv[1], 'p%d.txt' % i), 'w') as f:
        for _ in range(25000):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 12))) + '\n')
PY
aws s3 cp --recursive --quiet "$D/in" s3://lmr-rb/in/
export LMR_SPLIT_MIN_BYTES=65536 LMR_SPLIT_TAIL_START_MS=0
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['phases']['map'][sys.argv[2]])" "$1" "$2"; }
for case in slow kill; do
    fault='map-slow:0:1'
    [ $case = kill ] && fault='map-slow:0:1,map-cut-kill:0:1'
    LMR_FAULT=$fault LMR_FAULT_SLOW_MS=1500 "$LAMBDAMR" run wordcount --input s3://lmr-rb/in/ --output "s3://lmr-rb/out-$case/" \
        --reducers 2 --concurrency 2 > "$D/$case.log" 2>&1 || { cat "$D/$case.log"; fail "$case: the S3 job failed"; continue; }
    mkdir -p "$D/out-$case"
    aws s3 cp --recursive --quiet "s3://lmr-rb/out-$case/" "$D/out-$case/"
    check_wordcount "S3, $case: exact counts" "$D/out-$case" "$D/in"
    rep="$D/out-$case/_lambdamr/report.json"
    [ "$(field "$rep" splits)" -ge 1 ] && pass "S3, $case: the report counts $(field "$rep" splits) split(s)" ||
        fail "S3, $case: no split"
    want=$(cat "$D"/in/*.txt | wc -l)
    [ "$(field "$rep" records_in)" -eq "$want" ] && pass "S3, $case: every line mapped once" ||
        fail "S3, $case: records_in $(field "$rep" records_in) != $want"
done
[ "$(field "$D/out-kill/_lambdamr/report.json" failed_attempts)" -ge 1 ] && pass "S3, kill: the killed attempt was retried" ||
    fail "S3, kill: no failed attempt"
finish
