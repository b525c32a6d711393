#!/usr/bin/env bash
# run --dry-run: the plan's tasks, invocations and the tasks' data requests equal those of the
# real run of the same command (1 GiB of input; 128 MiB under the sanitizers); a dry run writes
# and deletes nothing; --assume-input plans an input that is not at hand; bad flags are refused.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
SIZE=1G
[ "${LMR_SANITIZE:-}" = "ON" ] && SIZE=128M
"$LAMBDAMR" gen text --size "$SIZE" --out "$D/in" --quiet
ARGS=(wordcount --input "$D/in" --output "$D/out" --split-size 10M --reducers 3)

if "$LAMBDAMR" run "${ARGS[@]}" --dry-run --json > "$D/est.json" 2> "$D/est.err"; then
    pass "dry run"
else
    cat "$D/est.err"
    fail "dry run"
fi
[ ! -e "$D/out" ] && pass "the dry run wrote nothing" || fail "the dry run created $D/out"
"$LAMBDAMR" run "${ARGS[@]}" --json > "$D/real.json" 2> "$D/real.err" || { cat "$D/real.err"; fail "real run"; }
if python3 - "$D/est.json" "$D/real.json" <<'PY'; then
import json, sys
e, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ph = r['phases']
pairs = [
    ('map tasks', e['plan']['map_tasks'], r['mappers']),
    ('reduce tasks', e['plan']['reduce_tasks'], r['reducers']),
    ('input bytes', e['plan']['input_bytes'], r['input']['bytes']),
    ('invocations', e['invocations']['total'], len(r['invocations'])),
    ('map GETs', e['requests']['map']['get'], ph['map']['store_requests']['get']),
    ('map PUTs', e['requests']['map']['put'], ph['map']['store_requests']['put']),
    ('reduce GETs', e['requests']['reduce']['get'], ph['reduce']['store_requests']['get']),
    ('reduce PUTs', e['requests']['reduce']['put'], ph['reduce']['store_requests']['put']),
]
bad = [(n, a, b) for n, a, b in pairs if a != b]
for n, a, b in pairs:
    print('  %-13s estimate %-8s real %s' % (n, a, b))
if bad:
    sys.exit(1)
assert e['time_s']['total'] > 0 and e['cost']['total_usd'] > 0, e
PY
    pass "estimate: tasks, invocations and data requests equal the real run's"
else
    fail "estimate differs from the real run"
fi

# With --overwrite on a finished output, a dry run still deletes nothing.
before=$(cd "$D/out" && find . -type f | sort | md5sum)
"$LAMBDAMR" run "${ARGS[@]}" --overwrite --dry-run > /dev/null 2>&1 || fail "dry run with --overwrite"
after=$(cd "$D/out" && find . -type f | sort | md5sum)
[ "$before" = "$after" ] && pass "a dry run with --overwrite leaves the output as it was" || fail "dry run changed the output"

# An input described, not listed: BDB Query 2's 126.8 GB of uservisits, on S3 with --backend aws.
if "$LAMBDAMR" run aggregate --input s3://bdb/uservisits/ --output s3://out/q2 --delimiter , --key 1:8 --value 4 \
    --op sum --backend aws --dry-run --assume-input 126800000000,2000 --memory 1769 --concurrency 1000 > "$D/q2.txt" 2>&1 &&
    grep -q "118.1 GiB in 2000 objects" "$D/q2.txt" && grep -q "time " "$D/q2.txt" && grep -q "model " "$D/q2.txt"; then
    pass "--assume-input plans 126.8 GB (118.1 GiB) in 2000 objects"
else
    cat "$D/q2.txt"
    fail "--assume-input"
fi
# A size with a fraction (binary units, as every size flag: 1.5G is 1.5 GiB).
if "$LAMBDAMR" run aggregate --input s3://bdb/uservisits/ --output s3://out/q2 --delimiter , --key 1:8 --value 4 \
    --op sum --backend aws --dry-run --assume-input 1.5G,3 > "$D/frac.txt" 2>&1 && grep -q "1.5 GiB in 3 objects" "$D/frac.txt"; then
    pass "--assume-input 1.5G,3 plans 1.5 GiB in 3 objects"
else
    cat "$D/frac.txt"
    fail "--assume-input with a fraction"
fi
expect_usage() {
    local name=$1 want=$2
    shift 2
    local rc=0
    "$LAMBDAMR" run "$@" > "$D/bad.out" 2>&1 || rc=$?
    if [ "$rc" -eq 2 ] && grep -q -- "$want" "$D/bad.out"; then pass "$name refused"; else
        cat "$D/bad.out"
        fail "$name (exit $rc)"
    fi
}
expect_usage "--model with an unknown name" "known NAME" "${ARGS[@]}" --dry-run --model nope=1
expect_usage "--model with a bad value" "positive number" "${ARGS[@]}" --dry-run --model cold_start_ms=-3
expect_usage "--assume-input without --dry-run" "go with --dry-run" "${ARGS[@]}" --assume-input 1G
expect_usage "--assume-input with a bad size" "SIZE" "${ARGS[@]}" --dry-run --assume-input 12Q
expect_usage "--assume-input with a fraction of a byte" "SIZE" "${ARGS[@]}" --dry-run --assume-input 1.5
finish
