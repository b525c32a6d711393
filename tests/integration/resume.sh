#!/usr/bin/env bash
# Resume: the driver SIGKILLed at 10 seeded points (five of them after the first commit) across
# the map and reduce phases, then the same command again: the output is byte-identical to a clean
# run, and where tasks had committed the rerun invokes fewer tasks (the report counts them as
# reused). A different command on the unfinished output is refused unless --overwrite. And the
# coordinator function itself SIGKILLed mid-phase: a new coordinator (the Lambda service retries
# the Event) takes the lease over once it has expired (the shortcut for dead holders on this host
# turned off) and finishes the job.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(12)
words = ["w%d" % i for i in range(3000)]
for i in range(4):
    with open(os.path.join(sys.argv[1], "p%d.txt" % i), "w") as f:
        for _ in range(3000):
            f.write(" ".join(r.choice(words) for _ in range(r.randint(1, 8))) + "\n")
PY
export LMR_FAULT='map-slow:*:1,reduce-slow:*:1' LMR_FAULT_SLOW_MS=250
ARGS=(wordcount --input "$D/in" --split-size 64K --reducers 4 --concurrency 2)
cmd() { "$LAMBDAMR" run "${ARGS[@]}" "$@"; }
# bg LOG ARGS...: the driver in the background, its own pid in $pid (not a subshell's)
bg() { local log=$1; shift; "$LAMBDAMR" run "${ARGS[@]}" "$@" > "$log" 2>&1 & pid=$!; }
attempts() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["phases"]; print(r["map"]["attempts"]+r["reduce"]["attempts"], r["map"]["reused"]+r["reduce"]["reused"])' "$1/_lambdamr/report.json"; }
cmd --output "$D/clean" > "$D/clean.log" 2>&1 || { cat "$D/clean.log"; fail "clean run"; finish; }
read -r clean_attempts _ < <(attempts "$D/clean")
check_wordcount "clean run" "$D/clean" "$D/in"

RANDOM=4242
fewer=0
for seed in $(seq 1 10); do
    out="$D/k$seed"
    delay=$(printf '0.%03d' $((RANDOM % 1000)))
    bg "$D/k$seed.log" --output "$out"
    if [ $((seed % 2)) = 0 ]; then
        # later kills, whatever the machine's load: once a task has committed, then 0-0.9 s on
        # (into the map phase's later tasks or the reduce phase)
        for _ in $(seq 400); do
            [ -n "$(find "$out/_lambdamr/work" -name commit.json 2>/dev/null | head -1)" ] && break
            sleep 0.025
        done
        delay="commit+0.$(printf '%03d' $((RANDOM % 900)))"
        sleep "${delay#commit+}"
    else
        sleep "$delay"
    fi
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # (a kill before the driver made the work location leaves nothing to find: 0 committed)
    committed=$({ find "$out/_lambdamr/work" -name commit.json 2>/dev/null || true; } | wc -l)
    phase=$(python3 -c 'import json,sys,glob; print(json.load(open(glob.glob(sys.argv[1]+"/_lambdamr/work/*/job.json")[0]))["phase"])' "$out" 2>/dev/null || echo none)
    if [ -f "$out/_SUCCESS" ]; then
        pass "kill $seed after ${delay}s: the job had finished already"
        continue
    fi
    if ! cmd --output "$out" > "$D/r$seed.log" 2>&1; then
        fail "kill $seed after ${delay}s (phase $phase, $committed committed): the rerun failed: $(tail -3 "$D/r$seed.log")"
        continue
    fi
    if ! cmp -s <(cat "$D/clean"/part-r-*) <(cat "$out"/part-r-*); then
        fail "kill $seed after ${delay}s: output differs from the clean run"
        continue
    fi
    read -r a reused < <(attempts "$out")
    if [ "$committed" -gt 0 ] && ! { [ "$a" -lt "$clean_attempts" ] && [ "$reused" -gt 0 ]; }; then
        fail "kill $seed after ${delay}s (phase $phase): $committed tasks had committed but the rerun made $a invocations (clean: $clean_attempts), reused $reused"
        continue
    fi
    [ "$committed" -gt 0 ] && fewer=$((fewer + 1))
    pass "kill $seed after ${delay}s in phase $phase ($committed committed): identical output, $a invocations (clean $clean_attempts), $reused reused"
done
[ "$fewer" -ge 5 ] && pass "$fewer of 10 reruns reused committed tasks" || fail "only $fewer reruns reused tasks: kill points too early"

# A different command on an unfinished output is refused; with --overwrite it replaces it once
# the killed job's lease has run out (its functions may still be writing until then).
LMR_LEASE_DURATION_MS=1500 bg /dev/null --output "$D/diff"
sleep 0.8
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
sleep 1.6
rc=0; "$LAMBDAMR" run wordcount --input "$D/in/p0.txt" --output "$D/diff" --reducers 1 > "$D/diff.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "holds the unfinished job .*different command.*--overwrite" "$D/diff.log" &&
    pass "a different command on an unfinished output is refused" || fail "different command (exit $rc): $(cat "$D/diff.log")"
"$LAMBDAMR" run wordcount --input "$D/in/p0.txt" --output "$D/diff" --reducers 1 --overwrite > "$D/diff2.log" 2>&1 &&
    check_wordcount "--overwrite replaces the unfinished job" "$D/diff" "$D/in/p0.txt" || fail "--overwrite: $(cat "$D/diff2.log")"

# The coordinator function killed mid-phase: its lease expires, a new coordinator takes over.
export LMR_LEASE_DURATION_MS=1500 LMR_LEASE_IGNORE_PID=1
bg "$D/ck.log" --output "$D/ck"
cpid=
for _ in $(seq 100); do
    cpid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$D/ck/_lambdamr/lease.json" 2>/dev/null || true)
    [ -n "$cpid" ] && [ "$cpid" != "$pid" ] && break
    sleep 0.05
done
sleep 0.6
t0=$(date +%s.%N)
kill -9 "$cpid"
wait "$pid" && t1=$(date +%s.%N) || { fail "the job failed after its coordinator was killed: $(cat "$D/ck.log")"; finish; }
cmp -s <(cat "$D/clean"/part-r-*) <(cat "$D/ck"/part-r-*) && pass "coordinator killed: output identical to the clean run" ||
    fail "coordinator killed: output differs"
newpid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$D/ck/_lambdamr/lease.json")
python3 - "$t0" "$t1" "$cpid" "$newpid" "$D/ck/_lambdamr/report.json" <<'PY' && pass "a new coordinator took the lease over after it expired and finished (reused tasks)" || fail "takeover"
import json, sys
t0, t1, old, new = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
assert old != new, (old, new)
assert t1 - t0 >= 1.0, t1 - t0  # not before the killed holder's lease ran out
r = json.load(open(sys.argv[5]))["phases"]
assert r["map"]["reused"] + r["reduce"]["reused"] > 0, r
PY
finish
