#!/usr/bin/env bash
# run's end on the embedded service: no function process (coordinator, mapper, reducer) outlives
# the driver, after a job that succeeded and after one that failed, although the service stops its
# environments all at once and the driver prints its summary before that stop. The function
# processes inherit LMR_* variables: a marker in the driver's environment finds them in /proc.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
"$LAMBDAMR" gen text --size 2M --out "$D/in" --quiet

# The processes whose environment holds this marker (the driver is gone when this runs).
marked() {
    local n=0 f
    for f in /proc/[0-9]*/environ; do
        tr '\0' '\n' 2>/dev/null < "$f" | grep -qx "LMR_ORPHAN_MARK=$1" && n=$((n + 1))
    done
    echo "$n"
}

M1="ok-$$-$RANDOM"
if LMR_ORPHAN_MARK=$M1 "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/out" --split-size 512K \
    --reducers 2 > "$D/ok.out" 2> "$D/ok.err"; then
    pass "the job ran"
else
    cat "$D/ok.err"
    fail "the job failed"
fi
n=$(marked "$M1")
[ "$n" = 0 ] && pass "no function process outlived the driver" || fail "$n function processes outlived the driver"
grep -q 'lambdamr wordcount (job' "$D/ok.out" && pass "the summary was printed" || fail "no summary in $(cat "$D/ok.out")"

# A job that fails while its tasks run (map task 0 kills itself, one attempt allowed): the driver's
# error path stops the service with environments still busy.
M2="fail-$$-$RANDOM"
if LMR_ORPHAN_MARK=$M2 LMR_FAULT=map-kill:0:'*' "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/out2" \
    --split-size 512K --max-attempts 1 > "$D/bad.out" 2> "$D/bad.err"; then
    fail "a job whose map task died succeeded"
else
    pass "a job whose map task died failed"
fi
n=$(marked "$M2")
[ "$n" = 0 ] && pass "no function process outlived the failed driver" || fail "$n processes outlived the failed driver"
finish
