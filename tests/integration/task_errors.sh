#!/usr/bin/env bash
# A task that runs out of memory or time fails the job with an error that says which flag to
# change and to what; the failed job leaves no part files and no _SUCCESS.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
"$LAMBDAMR" gen text --size 2M --out "$D/in" --quiet
expect_failure() {
    local name=$1 want=$2 out=$3
    shift 3
    local rc=0
    "$@" > "$D/$name.log" 2>&1 || rc=$?
    if [ "$rc" -eq 1 ] && grep -q -- "$want" "$D/$name.log"; then
        pass "$name: exit 1, the error says: $want"
    else
        cat "$D/$name.log"
        fail "$name: exit $rc, expected 1 and '$want'"
    fi
    if [ -e "$out/_SUCCESS" ] || ls "$out"/part-* > /dev/null 2>&1; then
        fail "$name: the failed job left output behind"
    else
        pass "$name: no part files, no _SUCCESS"
    fi
}
LMR_FAULT=map-oom:0:'*' expect_failure oom "raise --memory, e.g. --memory 256" "$D/o1" \
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/o1" --memory 128 --max-attempts 1 --split-size 1M
grep -q "Runtime.OutOfMemory" "$D/oom.log" && pass "oom: names Runtime.OutOfMemory" || fail "oom: no error type"
LMR_FAULT=map-hang:1:'*' expect_failure timeout "raise --timeout" "$D/o2" \
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/o2" --timeout 1 --max-attempts 1 --split-size 1M
grep -q "of 2 map tasks had finished" "$D/timeout.log" && pass "timeout: says how far the phase got" ||
    fail "timeout: no progress in the message"
finish
