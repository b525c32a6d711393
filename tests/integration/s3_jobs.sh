#!/usr/bin/env bash
# Whole jobs with s3:// input and output against moto_server with SigV4 signature checking on:
# more than 1,000 input objects written by the AWS CLI, output read back by the AWS CLI and
# byte-identical to the same job on the file back-end, a multipart output part, a wrong
# secret key and missing buckets (clear errors, nothing written); the same job through a merge
# exchange gives the same part files.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
lmr_on_exit cleanup_tmp
moto_start
D=$TEST_TMP
aws s3 mb s3://lmr-in > /dev/null
aws s3 mb s3://lmr-out > /dev/null

# 1,100 small objects (ListObjectsV2 needs continuation tokens past 1,000), uploaded by the CLI.
python3 - "$D/many" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(5)
words = ['w%d' % i for i in range(700)] + ['Zeta', 'zeta', 'é', 'naïve']
for i in range(1100):
    with open(os.path.join(sys.argv[1], 'obj-%04d.txt' % i), 'w') as f:
        for _ in range(r.randint(0, 6)):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 9))) + '\n')
PY
aws s3 cp --recursive --quiet "$D/many" s3://lmr-in/many/
n=$(aws s3 ls --recursive s3://lmr-in/many/ | wc -l)
[ "$n" -eq 1100 ] && pass "the AWS CLI wrote 1,100 input objects" || fail "expected 1100 objects, found $n"

"$LAMBDAMR" run wordcount --input s3://lmr-in/many/ --output s3://lmr-out/wc/ --reducers 2 --mappers 5 --json \
    > "$D/s3-report.json" 2> "$D/run.log" || { cat "$D/run.log"; fail "s3 job failed"; }
"$LAMBDAMR" run wordcount --input "$D/many" --output "$D/file-wc" --reducers 2 --mappers 5 > /dev/null 2>&1 \
    || fail "file job failed"
mkdir -p "$D/s3-wc"
aws s3 cp --recursive --quiet s3://lmr-out/wc/ "$D/s3-wc/"
[ -f "$D/s3-wc/_SUCCESS" ] && pass "_SUCCESS on S3" || fail "no _SUCCESS on S3"
if cmp -s "$D/s3-wc/part-r-00000" "$D/file-wc/part-r-00000" && cmp -s "$D/s3-wc/part-r-00001" "$D/file-wc/part-r-00001"; then
    pass "S3 part files are byte-identical to the file back-end's"
else
    fail "S3 and file back-end outputs differ"
fi
# The same job through a merge exchange on S3 (merge tasks read each map output with one ranged
# read over its frames, reducers the merged objects; frame lists through the store too).
LMR_FRAMES_INLINE_MAX_BYTES=0 "$LAMBDAMR" run wordcount --input s3://lmr-in/many/ --output s3://lmr-out/wc-merge/ \
    --reducers 2 --mappers 5 --split-size 2K --exchange merge --merge-fan-in 2 --json > "$D/s3-merge.json" 2> "$D/run.log" ||
    { cat "$D/run.log"; fail "s3 merge-exchange job failed"; }
mkdir -p "$D/s3-merge"
aws s3 cp --recursive --quiet s3://lmr-out/wc-merge/ "$D/s3-merge/"
if cmp -s "$D/s3-merge/part-r-00000" "$D/file-wc/part-r-00000" && cmp -s "$D/s3-merge/part-r-00001" "$D/file-wc/part-r-00001" &&
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); m=r['phases']['merge']; sys.exit(0 if m['tasks'] == 3 and m['sources'] == 5 and r['exchange']['frame_lists_stored'] == 2 else 1)" "$D/s3-merge.json"; then
    pass "a merge exchange on S3 (3 merge tasks) gives the file back-end's part files"
else
    fail "merge exchange on S3"
fi
check_wordcount "S3 job read back with the AWS CLI vs the oracle" "$D/s3-wc" "$D/many"
nonempty=$(find "$D/many" -type f -size +0 | wc -l)
python3 - "$D/s3-report.json" "$nonempty" <<'PY' && pass "report: 1,100 objects, LISTs paged, requests counted per phase" || fail "s3 report"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['input']['objects'] == 1100, r['input']
assert r['store_requests']['list'] >= 2, r['store_requests']      # two pages at least
# one ranged GET per non-empty object at least (empty objects give no shard, so no GET)
assert r['phases']['map']['store_requests']['get'] >= int(sys.argv[2]), (r['phases']['map']['store_requests'], sys.argv[2])
assert r['phases']['reduce']['store_requests']['put'] >= 2
PY
# Kept after the job by design: the manifest, the job record and the functions' logs (WORK/logs/<task>/<attempt>.log).
leftover=$(aws s3 ls --recursive s3://lmr-out/wc/_lambdamr/work/ | grep -vcE '/(manifest|job)\.json$|/logs/[^/]+/[^/]+\.log$' || true)
[ "$leftover" -eq 0 ] && pass "no intermediate objects left on S3" || fail "$leftover work objects left on S3"

# An output part larger than one multipart part (5 MiB parts): multipart upload, read back intact.
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(900_000):
        f.write('key%07d\n' % (i * 7 % 900_000))" "$D/distinct.txt"
aws s3 cp --quiet "$D/distinct.txt" s3://lmr-in/distinct/distinct.txt
LMR_S3_PART_BYTES=5M "$LAMBDAMR" run wordcount --input s3://lmr-in/distinct/ --output s3://lmr-out/big/ \
    --reducers 1 > "$D/run.log" 2>&1 || { cat "$D/run.log"; fail "multipart job failed"; }
etag=$(aws s3api head-object --bucket lmr-out --key big/part-r-00000 --query ETag --output text)
size=$(aws s3api head-object --bucket lmr-out --key big/part-r-00000 --query ContentLength --output text)
case "$etag" in
*-*) pass "part-r-00000 ($size bytes) was a multipart upload (ETag $etag)" ;;
*) fail "part-r-00000 ($size bytes) was not multipart (ETag $etag)" ;;
esac
aws s3 cp --quiet s3://lmr-out/big/part-r-00000 "$D/big-part"
"$LAMBDAMR" run wordcount --input "$D/distinct.txt" --output "$D/file-big" --reducers 1 > /dev/null 2>&1
cmp -s "$D/big-part" "$D/file-big/part-r-00000" && pass "multipart output identical to the file back-end's" \
    || fail "multipart output differs"
uploads=$(aws s3api list-multipart-uploads --bucket lmr-out --query 'length(Uploads || `[]`)' --output text)
[ "$uploads" = 0 ] && pass "no multipart uploads left open" || fail "$uploads multipart uploads left open"

# A wrong secret key: a clear error, non-zero exit, nothing written.
if AWS_SECRET_ACCESS_KEY=not-the-secret "$LAMBDAMR" run wordcount --input s3://lmr-in/many/ \
    --output s3://lmr-out/wrong/ > /dev/null 2> "$D/err"; then
    fail "a wrong secret key succeeded"
else
    grep -q "SignatureDoesNotMatch" "$D/err" && grep -q "AWS_SECRET_ACCESS_KEY" "$D/err" \
        && pass "wrong secret: $(head -c 150 "$D/err")" || { fail "wrong secret error text"; cat "$D/err"; }
fi
[ -z "$(aws s3 ls --recursive s3://lmr-out/wrong/)" ] && pass "wrong secret: nothing written" || fail "wrong secret wrote objects"

# Missing buckets, for output and for input.
if "$LAMBDAMR" run wordcount --input s3://lmr-in/many/ --output s3://lmr-no-such-bucket/x/ > /dev/null 2> "$D/err"; then
    fail "a missing output bucket succeeded"
else
    grep -q "lmr-no-such-bucket.*NoSuchBucket" "$D/err" && pass "missing output bucket named" || { fail "missing bucket text"; cat "$D/err"; }
fi
if "$LAMBDAMR" run wordcount --input s3://lmr-no-such-bucket/in/ --output s3://lmr-out/nb/ > /dev/null 2> "$D/err"; then
    fail "a missing input bucket succeeded"
else
    grep -q "NoSuchBucket" "$D/err" && pass "missing input bucket named" || { fail "missing input bucket text"; cat "$D/err"; }
fi
[ -z "$(aws s3 ls --recursive s3://lmr-out/nb/)" ] && pass "missing input: nothing written" || fail "missing input wrote objects"

# Local input, S3 output, and lambdamr reading a file the AWS CLI wrote (read back above too).
"$LAMBDAMR" run wordcount --input "$D/many" --output s3://lmr-out/mixed/ --reducers 2 --mappers 5 > /dev/null 2>&1 \
    || fail "local input to s3 output failed"
aws s3 cp --quiet s3://lmr-out/mixed/part-r-00001 "$D/mixed-1"
cmp -s "$D/mixed-1" "$D/file-wc/part-r-00001" && pass "local input, S3 output" || fail "local input, S3 output differs"
finish
