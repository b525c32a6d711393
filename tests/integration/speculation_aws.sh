#!/usr/bin/env bash
# Speculation when the loser outlives the job (issue 10 item 6): with --backend aws against
# `lambdamr serve` (the deployed P-coordinator, P-mapper, P-reducer) over s3:// on moto (SigV4
# checking on), the coordinator is a function of the service and outlives the driver, as on AWS.
# One mapper's first attempt sleeps longer than the whole job; its backup wins and the job ends
# without waiting for it. While the loser still sleeps, the work location keeps only its task's
# commit record (so the loser finds the task committed); once it has returned, it wrote nothing
# and the coordinator has removed the rest: only the manifest, the job record and the logs stay.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
serve_pid=
moto_start
lmr_on_exit '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; cleanup_tmp'
moto_words_bucket "$D/in" lmr-spec 12 1500 12 400 p%02d.txt
SLEEP_MS=8000
export LMR_FAULT='map-slow:3:1' LMR_FAULT_SLOW_MS=$SLEEP_MS
serve_functions_start "$D" sp memory=256 concurrency=4 || { fail "lambdamr serve did not start"; finish; }

out=s3://lmr-spec/out/
t0=$(date +%s%N)
"$LAMBDAMR" run wordcount --input s3://lmr-spec/in/ --output "$out" --backend aws --function-prefix sp \
    --split-size 40K --reducers 2 --concurrency 4 --speculation-min-ms 300 > "$D/run.log" 2>&1 ||
    { cat "$D/run.log"; fail "the job failed"; }
T=$((($(date +%s%N) - t0) / 1000000))
# work_keys: the job's work keys other than the manifest, the job record and the logs.
# (lmr_storetool: the CLI takes seconds to start on a loaded machine; size<TAB>key, keys without the bucket)
work_keys() { "$LMR_BIN_DIR/lmr_storetool" ls "${out}_lambdamr/work/" > "$D/ls.txt" || true; cut -f2 "$D/ls.txt" | grep -v -e '/manifest.json$' -e '/job.json$' -e '/logs/' || true; }
left=$(work_keys) # at once: the loser is still asleep
T_LS=$((($(date +%s%N) - t0) / 1000000))
mkdir -p "$D/out"
aws s3 cp --recursive --quiet "$out" "$D/out/" --exclude '_lambdamr/*'
check_wordcount "output with a backup attempt" "$D/out" "$D/in"
[ "$T" -lt "$SLEEP_MS" ] && pass "the job ended in ${T} ms, before the straggler's ${SLEEP_MS} ms sleep" ||
    fail "the job took ${T} ms (the straggler sleeps ${SLEEP_MS} ms)"
aws s3 cp --quiet "${out}_lambdamr/report.json" "$D/report.json"
python3 - "$D/report.json" <<'PY' && pass "report: 1 backup started and won; the straggler unfinished and superseded" || fail "report"
import json, sys
r = json.load(open(sys.argv[1]))
m = r['phases']['map']
assert m['backups_started'] == 1 and m['backups_won'] == 1 and m['failed_attempts'] == 0, m
inv = [i for i in r['invocations'] if i['phase'] == 'map' and i['task'] == 3]
assert [i['attempt'] for i in inv if i['backup']] == [2], inv
orig = [i for i in inv if not i['backup']]
assert len(orig) == 1 and orig[0].get('unfinished') and orig[0].get('superseded'), orig
# billed until the phase ended, at the functions' memory: a lower bound of what it costs
assert orig[0]['memory_size_mb'] == 256 and orig[0]['billed_duration_ms'] > 0, orig
PY

if [ "$T_LS" -lt $((SLEEP_MS - 500)) ]; then # the loser was still asleep: its task's commit record is kept for it
    [ "$(echo "$left" | grep -c .)" = 1 ] && echo "$left" | grep -q '/map/m-00003/commit.json$' &&
        pass "while the loser runs, only its task's commit record is kept: m-00003/commit.json" ||
        fail "while the loser runs the work location holds: $left"
else
    echo "# the listing came too late (${T_LS} ms) to see the loser still running"
fi
# The coordinator's own log is stored when it returns: after the loser, which it waited for.
for _ in $(seq $(((SLEEP_MS + 10000) / 250))); do grep -q '/logs/coordinator/' "$D/ls.txt" && break; sleep 0.25; work_keys > /dev/null; done
[ -z "$(work_keys)" ] && pass "after the loser returned: nothing of it (nor the kept record) in the work location" ||
    fail "left in the work location: $(work_keys)"
log=$(cut -f2 "$D/ls.txt" | grep '/logs/m-00003/m00003-a1-' | head -1 || true)
[ -n "$log" ] && aws s3 cp --quiet "s3://lmr-spec/$log" "$D/loser.log" && grep -q "another attempt committed the task first" "$D/loser.log" &&
    pass "the loser found the task committed and wrote nothing ($(basename "$log"))" || fail "the loser's log: ${log:-none}"
clog=$(cut -f2 "$D/ls.txt" | grep '/logs/coordinator/' | head -1 || true)
[ -n "$clog" ] && aws s3 cp --quiet "s3://lmr-spec/$clog" "$D/coord.log" && grep -q "waiting for 1 superseded attempt" "$D/coord.log" &&
    pass "the coordinator waited for the loser after the job had ended, then cleaned up" ||
    fail "the coordinator's log: $(cat "$D/coord.log" 2>/dev/null)"
finish
