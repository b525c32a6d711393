#!/usr/bin/env bash
# sort and bdb-q3 with s3:// input and output against moto_server (SigV4 checking on): the
# sort's sample is ranged GETs on S3 and its parts in name order equal LC_ALL=C sort of the input;
# bdb-q3's broadcast mappers load rankings from S3, the reduce-side plan runs its two stages on
# S3 and deletes the intermediate stage; both equal the file back-end's output.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
lmr_on_exit cleanup_tmp
moto_start
D=$TEST_TMP
sort_size=3M bdb_size=6M
[ "${LMR_SANITIZE:-OFF}" = "ON" ] && sort_size=1M bdb_size=3M
aws s3 mb s3://lmr-in > /dev/null
aws s3 mb s3://lmr-out > /dev/null

"$LAMBDAMR" gen sort --size "$sort_size" --out "$D/sort" --files 2 --skew --quiet
aws s3 cp --recursive --quiet "$D/sort" s3://lmr-in/sort/
"$LAMBDAMR" run sort --input s3://lmr-in/sort/ --output s3://lmr-out/sorted/ --reducers 3 --split-size 256K \
    > "$D/sort.log" 2>&1 || { cat "$D/sort.log"; fail "sort on S3 failed"; }
mkdir -p "$D/sorted"
aws s3 cp --recursive --quiet s3://lmr-out/sorted/ "$D/sorted/"
cmp <(cat "$D"/sorted/part-r-*) <(LC_ALL=C sort "$D"/sort/part-*) && pass "sort on S3: parts in order = LC_ALL=C sort" ||
    fail "sort on S3 differs"
for p in "$D"/sorted/part-r-*; do [ -s "$p" ] || fail "empty partition $p on skewed keys"; done
pass "every partition has rows"

"$LAMBDAMR" gen bdb --size "$bdb_size" --out "$D/bdb" --seed 2 --files 2 --quiet
aws s3 cp --recursive --quiet "$D/bdb" s3://lmr-in/bdb/
"$LAMBDAMR" run bdb-q3 --input "$D/bdb" --output "$D/q3-file" --date-from 1975-01-01 --date-to 1979-12-31 \
    > /dev/null 2>&1 || fail "bdb-q3 on files failed"
for strategy in broadcast reduce; do
    "$LAMBDAMR" run bdb-q3 --input s3://lmr-in/bdb --output "s3://lmr-out/q3-$strategy/" --join $strategy \
        --date-from 1975-01-01 --date-to 1979-12-31 > "$D/q3.log" 2>&1 || { cat "$D/q3.log"; fail "bdb-q3 $strategy on S3"; }
    mkdir -p "$D/q3-$strategy"
    aws s3 cp --recursive --quiet "s3://lmr-out/q3-$strategy/" "$D/q3-$strategy/"
    python3 - "$D/q3-$strategy" "$D/q3-file" <<'PY' && pass "bdb-q3 --join $strategy on S3 = the file back-end's" || fail "bdb-q3 $strategy on S3 differs"
import glob, math, sys
def load(d):
    out = {}
    for p in glob.glob(d + '/part-*'):
        for l in open(p):
            ip, a, b = l.rstrip('\n').split('\t')
            out[ip] = (float(a), float(b))
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys() and len(a) > 50, (len(a), len(b))
for k in a:
    assert all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(a[k], b[k])), (k, a[k], b[k])
PY
done
left=$( (aws s3 ls --recursive s3://lmr-out/q3-reduce/_lambdamr/stage-1/ || true) | wc -l)
[ "$left" -eq 0 ] && pass "the intermediate stage's objects deleted on S3" || fail "$left stage-1 objects left"
finish
