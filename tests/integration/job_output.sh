#!/usr/bin/env bash
# Job-scoped output: two jobs into one output never mix (the issue's reproducers), _SUCCESS
# names its job and parts, --overwrite removes only what an earlier job listed (never stray
# part- keys, never through a symlink), and a killed job's output is held by its lease until it
# expires.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
python3 - "$D" <<'PY'
import os, random, sys
r = random.Random(10)
for name, files, lines in (("big", 8, 4000), ("small", 2, 300)):
    os.makedirs(os.path.join(sys.argv[1], name))
    words = ["%s%d" % (name, i) for i in range(400)]
    for i in range(files):
        with open(os.path.join(sys.argv[1], name, "p%d.txt" % i), "w") as f:
            for _ in range(lines):
                f.write(" ".join(r.choice(words) for _ in range(r.randint(1, 8))) + "\n")
PY
run() { "$LAMBDAMR" run wordcount --split-size 64K "$@"; }
success_ok() { # OUT: _SUCCESS is JSON naming the report's job and exactly the part files present
    python3 - "$1" <<'PY'
import json, os, sys
out = sys.argv[1]
s = json.load(open(os.path.join(out, "_SUCCESS")))
rep = json.load(open(os.path.join(out, "_lambdamr", "report.json")))
assert s["job_id"] == rep["job_id"], (s["job_id"], rep["job_id"])
assert rep["status"] == "succeeded"
parts = sorted(f for f in os.listdir(out) if f.startswith("part-"))
assert s["parts"] == parts, (s["parts"], parts)
PY
}
job_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["job_id"])' "$1/_SUCCESS"; }

# Reproducer 1: a second job on an output that a running job holds is refused.
LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=1500 "$LAMBDAMR" run wordcount --split-size 64K --input "$D/big" --output "$D/O" --reducers 4 > "$D/a.log" 2>&1 &
a=$!
for _ in $(seq 100); do [ -f "$D/O/_lambdamr/lease.json" ] && break; sleep 0.05; done
rc=0
run --input "$D/small" --output "$D/O" --reducers 4 > "$D/b.log" 2>&1 || rc=$?
wait "$a" && pass "the first job succeeded" || { fail "the first job failed"; cat "$D/a.log"; }
if [ "$rc" -ne 0 ] && grep -qE "output '.*/O' is held by job [0-9A-Za-z-]+ .*process [0-9]+" "$D/b.log"; then
    pass "the second job is refused, naming the running job: $(head -c 200 "$D/b.log")"
else
    fail "the second job was not refused (exit $rc): $(cat "$D/b.log")"
fi
check_wordcount "the output is the first job's alone" "$D/O" "$D/big"
success_ok "$D/O" && pass "_SUCCESS names the job and its parts" || fail "_SUCCESS contents"
first=$(job_of "$D/O")

# --overwrite once the first job has finished replaces it cleanly (4 parts -> 2, no leftovers).
echo "my notes" > "$D/O/notes.txt"
mkdir -p "$D/O/sub" && echo keep > "$D/O/sub/part-r-00009"
run --input "$D/small" --output "$D/O" --reducers 2 --overwrite > "$D/c.log" 2>&1 || { fail "overwrite"; cat "$D/c.log"; }
check_wordcount "--overwrite: the output is the second job's alone" "$D/O" "$D/small"
[ "$(ls "$D/O" | grep -c '^part-')" = 2 ] && pass "--overwrite removed the first job's extra parts" ||
    fail "parts after --overwrite: $(ls "$D/O")"
[ -f "$D/O/notes.txt" ] && [ -f "$D/O/sub/part-r-00009" ] && pass "--overwrite kept keys no job listed" ||
    fail "--overwrite removed a user's file"
[ "$(job_of "$D/O")" != "$first" ] && success_ok "$D/O" && pass "_SUCCESS names the new job" || fail "_SUCCESS after --overwrite"
[ "$(ls "$D/O/_lambdamr/work")" = "$(job_of "$D/O")" ] && pass "the earlier job's work data is gone" ||
    fail "work folders: $(ls "$D/O/_lambdamr/work")"

# A part- key that no lambdamr job lists is never removed or adopted.
mkdir -p "$D/S" && echo "stray" > "$D/S/part-r-00001"
rc=0; run --input "$D/small" --output "$D/S" --reducers 2 > "$D/s1.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "already holds part files" "$D/s1.log" && pass "stray part: refused without --overwrite" ||
    fail "stray part without --overwrite (exit $rc): $(cat "$D/s1.log")"
rc=0; run --input "$D/small" --output "$D/S" --reducers 2 --overwrite > "$D/s2.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "part-r-00001', which no earlier lambdamr job lists" "$D/s2.log" &&
    [ "$(cat "$D/S/part-r-00001")" = stray ] && [ ! -e "$D/S/_SUCCESS" ] &&
    pass "stray part: --overwrite refuses and leaves it" || fail "stray part with --overwrite (exit $rc): $(cat "$D/s2.log")"

# --overwrite never deletes through a symbolic link.
run --input "$D/small" --output "$D/L" --reducers 1 > /dev/null 2>&1 || fail "symlink setup run"
mkdir -p "$D/elsewhere" && echo precious > "$D/elsewhere/report.json"
mv "$D/L/_lambdamr" "$D/L/_lambdamr.real" && ln -s "$D/elsewhere" "$D/L/_lambdamr"
cp "$D/L/_lambdamr.real/lease.json" "$D/elsewhere/lease.json"
rc=0; run --input "$D/small" --output "$D/L" --reducers 1 --overwrite > "$D/l.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "symbolic link" "$D/l.log" && [ "$(cat "$D/elsewhere/report.json")" = precious ] &&
    pass "symlinked _lambdamr: --overwrite refuses, the link's target is intact" ||
    fail "symlink (exit $rc): $(cat "$D/l.log"); $(ls "$D/elsewhere")"

# Reproducer 2: a driver SIGKILLed mid-job holds the output until its lease expires; then
# --overwrite with another input gives that input's output alone, with _SUCCESS over it.
export LMR_LEASE_DURATION_MS=3000
LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=800 "$LAMBDAMR" run wordcount --split-size 64K --input "$D/big" --output "$D/K" --reducers 4 > "$D/k1.log" 2>&1 &
k=$!
for _ in $(seq 100); do [ -f "$D/K/_lambdamr/lease.json" ] && break; sleep 0.05; done
sleep 0.3
kill -9 "$k"; wait "$k" 2>/dev/null || true
rc=0; run --input "$D/small" --output "$D/K" --reducers 2 --overwrite > "$D/k2.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && grep -q "is held by job" "$D/k2.log" && pass "killed job: an immediate --overwrite is refused" ||
    fail "killed job: immediate --overwrite (exit $rc): $(cat "$D/k2.log")"
sleep 3.2
run --input "$D/small" --output "$D/K" --reducers 2 --overwrite > "$D/k3.log" 2>&1 || { fail "after expiry"; cat "$D/k3.log"; ls -R "$D/K"; cat "$D/K/_lambdamr/lease.json"; }
sleep 1 # any orphaned function of the killed job has had time to finish
check_wordcount "killed job, --overwrite after the lease expired: the new input's output alone" "$D/K" "$D/small"
success_ok "$D/K" && pass "killed job: _SUCCESS over exactly the new job's parts" || fail "_SUCCESS after the killed job"
finish
