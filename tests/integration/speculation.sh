#!/usr/bin/env bash
# Speculation for stragglers (issue 10 item 6). One mapper's first attempt sleeps (fault point
# map-slow) far longer than a normal task. With speculation the coordinator starts one backup of
# it once most map tasks are done; the backup commits first, the job finishes within 1.5x the
# wall time of a clean run with identical output, and the report counts 1 backup started and
# won. With --speculation off the job waits for the slow attempt. The loser leaves nothing in the
# work location, also when it wakes up while the job still runs (it sees the task committed).
#
# The bounds come from this machine's own clean run (its wall time W and its median map task d),
# not from fixed numbers: the sleep S is at least 10 d and at least 3 W, so a run without
# speculation cannot meet the 1.5 W bound (it lasts at least S), and a run with it can: the
# backup starts once 75 % of the tasks are done (7.5 of the 10 waves) and the straggler has run
# max(3 x median, floor = 6 d), and ends a task later, before the last waves are done.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
# 40 map tasks of about 0.5 MB (a task takes a small fraction of a second), 4 at a time: ten waves,
# so that the straggler of the first wave is seen while most of the phase is still to run.
python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(10)
words = [''.join(r.choice('abcdefgh') for _ in range(r.randint(2, 7))) for _ in range(3000)]
lines = [' '.join(r.choice(words) for _ in range(8)) + '\n' for _ in range(6000)]
for i in range(40):
    with open(os.path.join(sys.argv[1], 'p%02d.txt' % i), 'w') as f:
        for k in range(2):
            f.write(''.join(lines[(i * 7 + k) % 6000:] + lines[:(i * 7 + k) % 6000]))
PY
SLOW=3 # the straggling map task
# run NAME [options]: the job into $D/NAME; prints its wall time in ms.
run() {
    local name=$1; shift
    local t0 t1
    t0=$(date +%s%N)
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/$name" --split-size 1M --reducers 2 --concurrency 4 \
        "$@" > "$D/$name.log" 2>&1 || { cat "$D/$name.log" >&2; return 1; }
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}
report() { python3 - "$D/$1/_lambdamr/report.json" "${@:2}"; }
# leftover NAME: work data of job NAME other than the manifest, the job record and the logs.
leftover() { find "$D/$1/_lambdamr/work" -type f ! -name manifest.json ! -name job.json ! -path '*/logs/*' | head; }

W=$(run clean) || { fail "clean run"; finish; exit 1; }
check_wordcount "clean run" "$D/clean" "$D/in"
read -r tasks d < <(report clean <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = sorted(i['end_ms'] - i['start_ms'] for i in r['invocations'] if i['phase'] == 'map')
print(r['phases']['map']['tasks'], int(m[len(m) // 2]))
PY
)
[ "$tasks" -eq 40 ] || fail "expected 40 map tasks, got $tasks"
S=$((10 * d)); [ "$S" -lt $((3 * W)) ] && S=$((3 * W))
FLOOR=$((6 * d)); [ "$FLOOR" -lt 100 ] && FLOOR=100
echo "# clean run ${W} ms, median map task ${d} ms: the slow attempt sleeps ${S} ms, floor ${FLOOR} ms"
export LMR_FAULT_SLOW_MS=$S
W0=$W # the clean run the sleep was derived from

# (a) With speculation: one backup, it wins, the job is not held up by the straggler. It must end
# before the sleep S (>= 3 W: without a backup it cannot); and within 1.5 x a clean run, which on
# a loaded machine is measured again (a clean run and this one, up to three pairs) before judging.
spec() { LMR_FAULT="map-slow:$SLOW:1" run "$@" --speculation-min-ms "$FLOOR" --html; }
T=$(spec spec) || fail "run with a straggler and speculation"
for again in 1 2; do
    [ "$T" -le $((3 * W / 2)) ] && break
    echo "# with speculation ${T} ms > 1.5 x ${W} ms: measuring a clean run and this one again ($again)"
    rm -rf "$D/clean" "$D/spec"
    W=$(run clean) && T=$(spec spec) || fail "measurement $again"
done
[ "$T" -le $((3 * W / 2)) ] && [ "$T" -lt "$S" ] &&
    pass "with speculation: ${T} ms, within 1.5 x the clean run's ${W} ms and shorter than the ${S} ms sleep" ||
    fail "with speculation the job took ${T} ms (clean ${W} ms, sleep ${S} ms)"
cmp -s <(job_output "$D/clean") <(job_output "$D/spec") && pass "with speculation: output identical to the clean run" ||
    fail "with speculation: output differs"
report spec "$SLOW" "$FLOOR" <<'PY' && pass "report: 1 backup started and won, the backup marked, the straggler superseded" || fail "report's speculation figures"
import json, sys
r = json.load(open(sys.argv[1])); slow = int(sys.argv[2]); floor = int(sys.argv[3])
m = r['phases']['map']
assert m['failed_attempts'] == 0, m
assert r['phases']['reduce']['backups_started'] == 0, r['phases']['reduce']
inv = [i for i in r['invocations'] if i['phase'] == 'map' and i['task'] == slow]
backup = [i for i in inv if i['backup']]
orig = [i for i in inv if not i['backup']]
assert len(backup) == 1 and backup[0]['attempt'] == 2 and not backup[0].get('superseded'), inv
assert len(orig) == 1 and orig[0]['superseded'] and orig[0]['attempt'] == 1, inv
# One backup, of the straggler; on a loaded machine another task may really straggle (past the
# floor): then its backup must follow the rule too.
others = [i for i in r['invocations'] if i['backup'] and not (i['phase'] == 'map' and i['task'] == slow)]
for b in others:
    o = [i for i in r['invocations'] if i['phase'] == b['phase'] and i['task'] == b['task'] and not i['backup']]
    assert o and b['start_ms'] - o[0]['start_ms'] >= floor, (b, o)
assert m['backups_started'] == 1 + len(others) and m['backups_won'] >= 1, m
if others:
    print('# %d more backup(s) of real stragglers on this loaded machine' % len(others))
PY

grep -q 'class="bar map backup' "$D/spec/_lambdamr/report.html" && grep -q 'class="bar map superseded' "$D/spec/_lambdamr/report.html" &&
    grep -q "speculative backup" "$D/spec/_lambdamr/report.html" && pass "the HTML timeline marks the backup and the superseded attempt" ||
    fail "report.html does not mark the backup"

# The reduce phase too: reducer 1 of 4 straggles; its backup commits part-r-00001 first.
T_R=$(LMR_FAULT="reduce-slow:1:1" run rspec --reducers 4 --speculation-min-ms "$FLOOR") || fail "run with a straggling reducer"
cmp -s <(job_output "$D/clean") <(job_output "$D/rspec") && [ "$T_R" -lt "$S" ] &&
    pass "a straggling reducer: ${T_R} ms (sleep ${S} ms), output identical to the clean run" ||
    fail "a straggling reducer: ${T_R} ms (sleep ${S} ms) or the output differs"
report rspec <<'PY' && pass "report: the reduce phase's backup started and won" || fail "the reduce phase's speculation figures"
import json, sys
r = json.load(open(sys.argv[1]))
p = r['phases']['reduce']
assert p['backups_started'] == 1 and p['backups_won'] == 1 and p['failed_attempts'] == 0, p
inv = [i for i in r['invocations'] if i['phase'] == 'reduce' and i['task'] == 1]
assert sorted((i['attempt'], i['backup'], bool(i.get('superseded'))) for i in inv) == [(1, False, True), (2, True, False)], inv
PY
[ -z "$(find "$D/rspec" -maxdepth 1 -name '*part*' ! -name 'part-r-0000[0-3]')" ] && [ -z "$(leftover rspec)" ] &&
    pass "a straggling reducer: four parts, no uncommitted part, no claim or scratch of the loser" ||
    fail "a straggling reducer left: $(ls -a "$D/rspec") $(leftover rspec)"

# (b) Without speculation the job waits for the straggler: at least the sleep, over the 1.5 W bound.
T_OFF=$(LMR_FAULT="map-slow:$SLOW:1" run off --speculation off) || fail "run with a straggler, speculation off"
[ "$T_OFF" -ge "$S" ] && [ "$T_OFF" -gt $((3 * W0 / 2)) ] &&
    pass "with --speculation off: ${T_OFF} ms, at least the ${S} ms sleep (over 1.5 x ${W0} ms)" ||
    fail "with --speculation off the job took ${T_OFF} ms (sleep ${S} ms, clean ${W0} ms)"
cmp -s <(job_output "$D/clean") <(job_output "$D/off") && pass "with --speculation off: identical output" ||
    fail "with --speculation off: output differs"
report off <<'PY' && pass "report: no backups with --speculation off" || fail "backups with --speculation off"
import json, sys
r = json.load(open(sys.argv[1]))
assert all(p.get('backups_started') == 0 for n, p in r['phases'].items() if n in ('map', 'reduce')), r['phases']
assert not any(i['backup'] for i in r['invocations'])
PY

# (c) The loser's data is gone: after (a) the work location holds only the manifest, the job record
# and the logs; and when the loser wakes while the job still runs (slow reducers keep it going), it
# finds its task committed, writes nothing, and nothing of it is left.
[ -z "$(leftover spec)" ] && pass "with speculation: no data of the loser in the work location" ||
    fail "left in the work location: $(leftover spec)"
# (8 reducers, 4 at a time, each sleeping S: the reduce phase lasts 2 S, the loser wakes after S)
LMR_FAULT="map-slow:$SLOW:1,reduce-slow:*:*" run late --reducers 8 --speculation-min-ms "$FLOOR" > /dev/null ||
    fail "run with a loser that wakes during the reduce phase"
cmp -s <(job_output "$D/clean") <(job_output "$D/late") && pass "late loser: identical output" || fail "late loser: output differs"
[ -z "$(leftover late)" ] && pass "late loser: nothing of it in the work location" || fail "late loser left: $(leftover late)"
loser_log=$(grep -l "another attempt committed the task first" "$D/late/_lambdamr/work/"*/logs/m-0000$SLOW/*.log 2>/dev/null || true)
[ -n "$loser_log" ] && grep -q "attempt 1 " "$loser_log" &&
    pass "late loser: it saw the backup's commit and stopped before its own ($(basename "$loser_log"))" ||
    fail "late loser: no log of attempt 1 stopping: $(ls "$D/late/_lambdamr/work/"*/logs/m-0000$SLOW/ 2>&1)"
report late "$SLOW" <<'PY' && pass "late loser: reported as superseded, not as a failure" || fail "late loser's report"
import json, sys
r = json.load(open(sys.argv[1])); slow = int(sys.argv[2])
m = r['phases']['map']
# (on a loaded machine another task may really straggle past the floor and get a backup too)
assert m['backups_started'] >= 1 and m['backups_won'] >= 1 and m['failed_attempts'] == 0, m
orig = [i for i in r['invocations'] if i['phase'] == 'map' and i['task'] == slow and not i['backup']]
assert len(orig) == 1 and orig[0]['superseded'], orig
PY

# Options: bad values are refused with the option, the value and the range named (exit 2).
for bad in "--speculation maybe" "--speculation-factor 0.5" "--speculation-quantile 0" "--speculation-quantile 1.5" \
    "--speculation-factor x" "--speculation-min-ms -1"; do
    rc=0
    # shellcheck disable=SC2086
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/bad" $bad > "$D/bad.log" 2>&1 || rc=$?
    opt=${bad%% *}
    [ "$rc" = 2 ] && grep -q -- "$opt" "$D/bad.log" && [ ! -e "$D/bad" ] &&
        pass "refused: $bad ($(head -1 "$D/bad.log"))" || fail "$bad: rc $rc, $(cat "$D/bad.log")"
done
"$LAMBDAMR" run --help > "$D/help.txt"
grep -q -- "--speculation-factor" "$D/help.txt" && grep -q -- "--speculation on|off" "$D/help.txt" && pass "run --help documents the options" ||
    fail "--help lacks --speculation-factor"
finish
