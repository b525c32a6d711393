#!/usr/bin/env bash
# At-least-once delivery and crashes: a mapper killed mid-task, a duplicate map attempt and a
# reducer killed before its commit all give output identical to a clean run; and a job with
# many distinct keys and a small memory budget spills, stays within the budget and is right.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(9)
words = [''.join(r.choice('klmnopqrst') for _ in range(r.randint(2, 8))) for _ in range(5000)]
for i in range(6):
    with open(os.path.join(sys.argv[1], 'p%d.txt' % i), 'w') as f:
        for _ in range(5000):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 10))) + '\n')
PY
run() { "$LAMBDAMR" run wordcount --input "$D/in" --reducers 2 --split-size 64K "$@" > "$D/run.log" 2>&1 || { cat "$D/run.log"; return 1; }; }
run --output "$D/clean" || fail "clean run"
check_wordcount "clean run" "$D/clean" "$D/in"

same_as_clean() {
    local name=$1 out=$2
    if [ -f "$out/_SUCCESS" ] && diff -q <(cat "$D/clean"/part-r-*) <(cat "$out"/part-r-*) > /dev/null; then
        pass "$name: output identical to the clean run"
    else
        fail "$name: output differs from the clean run"
    fi
}
attempts() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['phases'][sys.argv[2]]['attempts'])" "$1/_lambdamr/report.json" "$2"; }

LMR_FAULT="map-kill:1:1" run --output "$D/killed" || fail "run with a killed mapper"
same_as_clean "mapper 1 killed mid-task" "$D/killed"
tasks=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['phases']['map']['tasks'])" "$D/killed/_lambdamr/report.json")
[ "$(attempts "$D/killed" map)" -eq $((tasks + 1)) ] && pass "the killed task was retried once" || fail "expected one retry"
grep -q "Runtime.ExitError\|exit" "$D/killed/_lambdamr/report.json" && pass "the crash is in the report" || fail "crash not reported"

LMR_FAULT="map-duplicate:0:1,map-duplicate:2:1" run --output "$D/dup" || fail "run with duplicate attempts"
same_as_clean "duplicate map attempts" "$D/dup"
[ "$(attempts "$D/dup" map)" -eq $((tasks + 2)) ] && pass "two duplicate attempts were delivered" || fail "duplicates not delivered"
leftover=$(find "$D/dup/_lambdamr/work" -name '*.lmr' | wc -l)
[ "$leftover" -eq 0 ] && pass "no intermediate objects left behind" || fail "$leftover intermediate objects left"

LMR_FAULT="reduce-kill:1:1" run --output "$D/rkill" || fail "run with a killed reducer"
same_as_clean "reducer 1 killed before commit" "$D/rkill"

# A task that fails every attempt fails the job: non-zero exit, no _SUCCESS, no part files.
if LMR_FAULT="map-kill:0:*" "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/doomed" --split-size 64K \
    --max-attempts 2 > "$D/run.log" 2>&1; then
    fail "a job whose task always dies succeeded"
else
    grep -q "map task 0 failed after 2 attempts" "$D/run.log" && pass "the failing task is named" || { fail "error text"; cat "$D/run.log"; }
    ls "$D/doomed"/part-* > /dev/null 2>&1 && fail "part files left by the failed job" || pass "no part files after failure"
    [ -e "$D/doomed/_SUCCESS" ] && fail "_SUCCESS after failure" || pass "no _SUCCESS after failure"
fi

# Many distinct keys with a small memory size: spills, bounded memory, right answer. The
# collector gets 55% of the function's memory at about 64 bytes a key, so the key count is
# chosen to overflow it (sanitizer builds need more memory for the same work).
mem=128 keys=1500000
[ "${LMR_SANITIZE:-OFF}" = "ON" ] && mem=256 keys=2800000
python3 -c "
import sys
n = int(sys.argv[2])
with open(sys.argv[1], 'w') as f:
    for i in range(n):
        f.write('key%09d k%d\\n' % (i * 7919 % n, i % 1000))" "$D/distinct.txt" "$keys"
"$LAMBDAMR" run wordcount --input "$D/distinct.txt" --output "$D/spill" --memory $mem --mappers 1 --reducers 2 \
    > "$D/run.log" 2>&1 || { cat "$D/run.log"; fail "spill run"; }
check_wordcount "$keys distinct keys with --memory $mem" "$D/spill" "$D/distinct.txt"
python3 - "$D/spill/_lambdamr/report.json" "$mem" <<'PY' && pass "spilled, and no task above its memory" || fail "spill/memory figures"
import json, sys
r = json.load(open(sys.argv[1])); mem = int(sys.argv[2])
assert r['phases']['map']['spills'] >= 1, r['phases']['map']
for inv in r['invocations']:
    assert inv['memory_size_mb'] == mem and 0 < inv['max_memory_used_mb'] <= mem, inv
PY
finish
