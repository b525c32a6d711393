#!/usr/bin/env bash
# run --detach on the embedded default: the driver hands the job to this user's background
# `lambdamr serve` (started when none runs; state file with pid, port and start time in
# $XDG_RUNTIME_DIR/lambdamr, 0600 in a 0700 folder; a stale one is replaced) and returns with the job id; the job
# finishes with the driver gone, with output byte-identical to a run without --detach. status
# (text and --json: bytes and cost so far), wait (exit status = the job's), logs --task, cancel
# of a second, slow job (it leaves no parts; exit 3), cleanup; the report lists the
# coordinator's own invocation and its cost is in the total. Two drivers at once over a stale
# state file start one serve, not two. The serve exits after its (lowered) --idle-exit.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
export XDG_RUNTIME_DIR="$D/xdg"
mkdir -m 700 "$XDG_RUNTIME_DIR"
SD="$XDG_RUNTIME_DIR/lambdamr"
export LMR_SERVE_IDLE_EXIT_S=3
stop_serve() { "$LAMBDAMR" serve --stop > /dev/null 2>&1 || true; }
trap 'stop_serve; cleanup_tmp' EXIT
python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(21)
for i in range(3):
    with open(os.path.join(sys.argv[1], "p%d.txt" % i), "w") as f:
        for _ in range(1500):
            f.write(" ".join("w%d" % r.randint(0, 400) for _ in range(6)) + "\n")
PY
args=(wordcount --input "$D/in" --split-size 32K --reducers 2 --concurrency 2)
serve_pid() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$SD/serve.json" 2>/dev/null || true; }
# alive PID: the process runs (a zombie has ended: the serve is reparented, and nobody may reap it here).
alive() { [ -n "$1" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# Without --detach nothing changes: the job runs in-process, no background serve is started.
"$LAMBDAMR" run "${args[@]}" --output "$D/ref" > /dev/null 2> "$D/ref.err" || fail "the reference run: $(cat "$D/ref.err")"
[ ! -e "$SD/serve.json" ] && pass "a run without --detach starts no background serve" || fail "a plain run left $SD/serve.json"

# A job of several stages (each reads the one before) is not detached: a clear refusal, nothing written.
mkdir -p "$D/bdb/rankings" "$D/bdb/uservisits"
echo "url1,10,1" > "$D/bdb/rankings/r.csv"; echo "1.2.3.4,url1,1980-01-02,0.5,a,b,c,d,1" > "$D/bdb/uservisits/u.csv"
rc=0; "$LAMBDAMR" run bdb-q3 --input "$D/bdb" --output "$D/q3" --join reduce --date-from 1980-01-01 --date-to 1980-04-01 --detach > /dev/null 2> "$D/q3.err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--detach runs one-stage jobs, and this bdb-q3 job has 2 stages" "$D/q3.err" && [ ! -e "$D/q3" ] &&
    [ ! -e "$SD/serve.json" ] && pass "a two-stage job with --detach: refused ($(head -c 80 "$D/q3.err")...)" ||
    fail "a two-stage job with --detach (rc $rc): $(cat "$D/q3.err")"

# A state folder that others may write to is refused before anything is written.
mkdir -p "$D/bad/lambdamr"; chmod 777 "$D/bad/lambdamr"
rc=0; XDG_RUNTIME_DIR="$D/bad" "$LAMBDAMR" run "${args[@]}" --output "$D/bad-out" --detach > /dev/null 2> "$D/bad.err" || rc=$?
[ "$rc" = 1 ] && grep -q "is not a private folder of this user" "$D/bad.err" && [ ! -e "$D/bad-out" ] &&
    [ ! -e "$D/bad/lambdamr/serve.json" ] && pass "a state folder others may write to: refused, nothing written" ||
    fail "unsafe state folder (rc $rc): $(cat "$D/bad.err"; ls -R "$D/bad-out" 2>&1 | head)"

# A stale state file (its pid is gone) is replaced. A detached job: run returns with the job id
# while the job still runs (its maps are slowed).
mkdir -m 700 "$SD"
echo '{"pid": 4000000, "port": 1, "start_ticks": 1, "started_ms": 1}' > "$SD/serve.json"; chmod 600 "$SD/serve.json"
t0=$(date +%s%N)
LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=1500 "$LAMBDAMR" run "${args[@]}" --output "$D/det" --detach > "$D/det.txt" 2>&1 ||
    fail "run --detach: $(cat "$D/det.txt")"
ms=$((($(date +%s%N) - t0) / 1000000))
job=$(sed -n 's/^job \([0-9A-Za-z-]*\) started on .*/\1/p' "$D/det.txt")
[ -n "$job" ] && grep -q "lambdamr wait $D/det" "$D/det.txt" && grep -q "lambdamr status $D/det" "$D/det.txt" &&
    pass "run --detach returned after $ms ms with job $job and the commands to follow it" || fail "run --detach printed: $(cat "$D/det.txt")"
"$LAMBDAMR" status "$D/det" > "$D/st.txt" 2>&1
grep -q "^job $job: running" "$D/st.txt" && pass "the job runs with its driver gone: $(head -1 "$D/st.txt")" ||
    fail "status after --detach: $(cat "$D/st.txt")"
pid=$(serve_pid)
mode_dir=$(stat -c %a "$SD"); mode_file=$(stat -c %a "$SD/serve.json")
alive "$pid" && [ "$mode_dir" = 700 ] && [ "$mode_file" = 600 ] &&
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["port"] > 0 and s["start_ticks"] > 0 and s["started_ms"] > 0, s' "$SD/serve.json" &&
    grep -q "background service of uid" "$SD/serve.log" &&
    pass "background serve pid $pid: state file 0600 (pid, port, start time) in a 0700 folder, log beside it" ||
    fail "state: pid '$pid' dir $mode_dir file $mode_file: $(cat "$SD/serve.json" "$SD/serve.log" 2>&1)"
rc=0; "$LAMBDAMR" wait "$D/det" > "$D/wait.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "job $job succeeded" "$D/wait.txt" && pass "wait exits 0 for the succeeded job" || fail "wait rc=$rc: $(cat "$D/wait.txt")"
same=1
for f in "$D"/ref/part-r-*; do cmp -s "$f" "$D/det/$(basename "$f")" || same=0; done
[ "$same" = 1 ] && [ -f "$D/det/_SUCCESS" ] && [ "$(ls "$D"/det/part-r-* | wc -l)" = "$(ls "$D"/ref/part-r-* | wc -l)" ] &&
    pass "the detached job's parts are byte-identical to the run without --detach" || fail "detached output differs from the reference"

# status: bytes and cost (text and --json); the report: the coordinator's invocation, in the cost.
"$LAMBDAMR" status "$D/det" > "$D/st.txt" 2>&1
grep -qE "^  data     [0-9.]+ [KMG]?i?B read, [0-9.]+ [KMG]?i?B written" "$D/st.txt" && grep -qE '^  cost     \$[0-9.]+ \([0-9]+ invocations' "$D/st.txt" &&
    pass "status shows bytes and cost: $(grep -E '^  (data|cost)' "$D/st.txt" | tr -s ' ' | tr '\n' ';')" || fail "status text: $(cat "$D/st.txt")"
"$LAMBDAMR" status "$D/det" --json > "$D/st.json" && python3 - "$D/st.json" "$D/det/_lambdamr/report.json" "$D/in" <<'PY' &&
import json, os, sys
s, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
inbytes = sum(os.path.getsize(os.path.join(sys.argv[3], f)) for f in os.listdir(sys.argv[3]))
sf = s['so_far']
assert s['status'] == 'succeeded', s['status']
assert sf['bytes_read'] >= inbytes and sf['bytes_written'] > 0 and sf['cost_usd'] > 0, sf
ci = r['coordinator_invocations']
assert len(ci) >= 1 and ci[0]['phase'] == 'coordinator' and ci[0]['request_id'], ci
assert ci[0]['billed_duration_ms'] >= ci[0]['duration_ms'] > 0 and ci[0]['memory_size_mb'] == r['memory_mb'], ci
assert ci[0]['start_ms'] <= r['invocations'][0]['start_ms'] and ci[0]['end_ms'] >= max(i['end_ms'] for i in r['invocations']), ci
assert r['cost']['invocations'] == len(r['invocations']) + len(ci), r['cost']
assert r['cost']['coordinator']['invocations'] == len(ci) and r['cost']['coordinator']['lambda_usd'] > 0, r['cost']
assert sf['invocations'] == r['cost']['invocations'], (sf['invocations'], r['cost']['invocations'])
print('read %d B, wrote %d B, $%.7f; coordinator %.0f ms billed' % (sf['bytes_read'], sf['bytes_written'], sf['cost_usd'], ci[0]['billed_duration_ms']))
PY
    pass "status --json has bytes and cost; the report has the coordinator's invocation, in the cost total" ||
    fail "status --json / report: $(head -c 600 "$D/st.json")"
"$LAMBDAMR" logs "$D/det" --task m-00001 > "$D/logs.txt" 2>&1 && grep -q "^== m-00001/m00001-a1-" "$D/logs.txt" &&
    "$LAMBDAMR" logs "$D/det" --task coordinator | grep -q "^== coordinator/round-1" &&
    pass "logs --task m-00001 and --task coordinator" || fail "logs: $(cat "$D/logs.txt")"

# The serve keeps the AWS credentials and region of the driver that started it (Lambda reserves those
# variables): a job on S3 from an environment with others is refused before anything is done.
rc=0; AWS_ACCESS_KEY_ID=AKIDOTHER AWS_SECRET_ACCESS_KEY=other "$LAMBDAMR" run wordcount --input s3://lmr-none/in/ \
    --output s3://lmr-none/out/ --detach > /dev/null 2> "$D/creds.err" || rc=$?
[ "$rc" = 1 ] && grep -q "has other AWS credentials or another region than this command" "$D/creds.err" &&
    pass "a job on S3 with other AWS credentials than the serve's: refused, saying to stop the serve" ||
    fail "other credentials (rc $rc): $(cat "$D/creds.err")"

# A job that ships its scripts (--file): they go into the functions' zip (files/), as on AWS.
printf '#!/bin/sh\ntr -s " " "\\n" | awk '"'"'NF { print $0 "\\t1" }'"'"'\n' > "$D/wc_map.sh"
printf '#!/bin/sh\nawk -F "\\t" '"'"'{ c[$1] += $2 } END { for (k in c) print k "\\t" c[k] }'"'"'\n' > "$D/wc_reduce.sh"
(cd "$D" && "$LAMBDAMR" run exec --mapper 'sh wc_map.sh' --reducer 'sh wc_reduce.sh' --file wc_map.sh --file wc_reduce.sh \
    --input "$D/in" --split-size 32K --reducers 2 --output "$D/exec" --detach > "$D/exec.txt" 2>&1) &&
    "$LAMBDAMR" wait "$D/exec" > /dev/null 2>&1 && cmp -s <(LC_ALL=C sort "$D"/ref/part-r-*) <(LC_ALL=C sort "$D"/exec/part-r-*) &&
    pass "a detached exec job with --file scripts equals the built-in word count" ||
    fail "detached exec job: $(cat "$D/exec.txt"; "$LAMBDAMR" status "$D/exec" 2>&1)"

# A coordinator that re-invokes itself near its deadline (the margin leaves it ~1.5 s a round): the
# report lists every round's coordinator invocation, and bills them.
LMR_COORDINATOR_MARGIN_MS=898500 LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=1000 "$LAMBDAMR" run "${args[@]}" --output "$D/rounds" \
    --detach > "$D/rounds.txt" 2>&1 || fail "run --detach (rounds): $(cat "$D/rounds.txt")"
"$LAMBDAMR" wait "$D/rounds" > /dev/null 2>&1 && "$LAMBDAMR" status "$D/rounds" --json > "$D/rounds.json" &&
    cmp -s "$D/ref/part-r-00000" "$D/rounds/part-r-00000" && cmp -s "$D/ref/part-r-00001" "$D/rounds/part-r-00001" &&
    python3 - "$D/rounds/_lambdamr/report.json" "$D/rounds.json" <<'PY' &&
import json, sys
r, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ci = r['coordinator_invocations']
assert len(ci) >= 2 and [c['round'] for c in ci] == list(range(1, len(ci) + 1)), ci
assert len({c['request_id'] for c in ci}) == len(ci), ci
assert all(c['billed_duration_ms'] > 0 for c in ci) and ci[-1]['start_ms'] >= ci[0]['end_ms'] - 1000, ci
assert r['cost']['coordinator']['invocations'] == len(ci), r['cost']['coordinator']
assert r['cost']['invocations'] == len(r['invocations']) + len(ci), r['cost']
assert s['round'] == len(ci) and s['so_far']['invocations'] >= r['cost']['invocations'], (s['round'], s['so_far'])
print(len(ci))
PY
    pass "a job in $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["coordinator_invocations"]))' "$D/rounds/_lambdamr/report.json") coordinator rounds: identical output, every round's invocation in the report and its cost" ||
    fail "coordinator rounds: $(cat "$D/rounds.txt"; head -c 1500 "$D/rounds.json" 2>/dev/null)"

# cancel a second, slow detached job: it runs in the same serve, stops, leaves no parts; wait exits 3.
LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=2000 "$LAMBDAMR" run "${args[@]}" --output "$D/can" --detach > "$D/can.txt" 2>&1 ||
    fail "second run --detach: $(cat "$D/can.txt")"
[ "$(serve_pid)" = "$pid" ] && pass "the second detached job went to the same background serve" || fail "a second serve: $(serve_pid) != $pid"
rc=0; "$LAMBDAMR" cleanup "$D/can" > "$D/cl.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "is running; cleanup never touches a running job" "$D/cl.txt" && pass "cleanup refuses the running job" ||
    fail "cleanup of a running job (rc $rc): $(cat "$D/cl.txt")"
"$LAMBDAMR" cancel "$D/can" > /dev/null || fail "cancel"
t0=$SECONDS
rc=0; "$LAMBDAMR" wait "$D/can" 2> "$D/wait.txt" || rc=$?
[ "$rc" = 3 ] && grep -q cancelled "$D/wait.txt" && pass "cancel: wait exits 3 after $((SECONDS - t0)) s" || fail "cancel: wait rc $rc: $(cat "$D/wait.txt")"
ls "$D"/can/part-* > /dev/null 2>&1 && fail "parts left after cancel" || pass "the cancelled job left no parts"
"$LAMBDAMR" cleanup "$D/can" > /dev/null && [ -z "$(find "$D/can/_lambdamr/work" -type f 2>/dev/null)" ] &&
    pass "cleanup removes the cancelled job's work data" || fail "cleanup after cancel: $(find "$D/can" -type f)"

# serve --stop while a detached job runs: the job is abandoned; the same command resumes it in a new
# serve (committed map tasks are not run again) with the reference output, in a second round.
res=(wordcount --input "$D/in" --split-size 32K --reducers 2 --concurrency 2 --output "$D/res" --detach)
LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=1000 "$LAMBDAMR" run "${res[@]}" > "$D/res.txt" 2>&1 || fail "run --detach (res): $(cat "$D/res.txt")"
for _ in $(seq 100); do [ -n "$(find "$D/res/_lambdamr/work" -path '*/map/*/commit.json' 2>/dev/null)" ] && break; sleep 0.1; done
"$LAMBDAMR" serve --stop > "$D/stop.txt" && ! alive "$pid" && [ ! -e "$SD/serve.json" ] &&
    pass "serve --stop with a job running: $(cat "$D/stop.txt")" || fail "serve --stop: $(cat "$D/stop.txt")"
LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=1000 "$LAMBDAMR" run "${res[@]}" > "$D/res2.txt" 2>&1 &&
    grep -q "resuming job" "$D/res2.txt" && "$LAMBDAMR" wait "$D/res" > /dev/null 2>&1 &&
    cmp -s "$D/ref/part-r-00000" "$D/res/part-r-00000" && cmp -s "$D/ref/part-r-00001" "$D/res/part-r-00001" &&
    python3 - "$D/res/_lambdamr/report.json" <<'PY' &&
import json, sys
r = json.load(open(sys.argv[1]))
ci = r['coordinator_invocations']
assert r['phases']['map']['reused'] >= 1 and [c['round'] for c in ci] == [1, 2], (r['phases']['map']['reused'], ci)
PY
    pass "the same command resumed the abandoned job in a new serve: reference output, map tasks reused, coordinator rounds 1 and 2" ||
    fail "resume after serve --stop: $(cat "$D/res2.txt"; "$LAMBDAMR" status "$D/res" 2>&1)"
pid=$(serve_pid)

# serve --stop; then a stale state file whose pid lives (this shell, its true start time) but whose
# port does not answer, and two drivers at once: one new serve for both.
"$LAMBDAMR" serve --stop > "$D/stop.txt" && ! alive "$pid" && [ ! -e "$SD/serve.json" ] &&
    pass "serve --stop: $(cat "$D/stop.txt")" || fail "serve --stop: $(cat "$D/stop.txt")"
ticks=$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f20)
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
echo "{\"pid\": $$, \"port\": $closed, \"start_ticks\": $ticks, \"started_ms\": 1}" > "$SD/serve.json"; chmod 600 "$SD/serve.json"
started=$(grep -c "background service of uid" "$SD/serve.log" || true)
"$LAMBDAMR" run "${args[@]}" --output "$D/c1" --detach > "$D/c1.txt" 2>&1 & p1=$!
"$LAMBDAMR" run "${args[@]}" --output "$D/c2" --detach > "$D/c2.txt" 2>&1 & p2=$!
rc1=0; wait "$p1" || rc1=$?; rc2=0; wait "$p2" || rc2=$?
s1=$(sed -n 's/.*background lambdamr serve (pid \([0-9]*\),.*/\1/p' "$D/c1.txt"); s2=$(sed -n 's/.*background lambdamr serve (pid \([0-9]*\),.*/\1/p' "$D/c2.txt")
pid=$(serve_pid)
[ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$s1" = "$pid" ] && alive "$pid" &&
    [ "$(grep -c "background service of uid" "$SD/serve.log")" = $((started + 1)) ] &&
    pass "two drivers at once over a stale state file (live pid, dead port): one new serve (pid $pid) for both" ||
    fail "concurrent drivers (rc $rc1/$rc2, serves '$s1' '$s2', state '$pid'): $(cat "$D/c1.txt" "$D/c2.txt")"
"$LAMBDAMR" wait "$D/c1" > /dev/null && "$LAMBDAMR" wait "$D/c2" > /dev/null && cmp -s "$D/ref/part-r-00000" "$D/c1/part-r-00000" &&
    cmp -s "$D/ref/part-r-00001" "$D/c2/part-r-00001" && pass "both jobs succeeded with the reference output" || fail "the concurrent jobs"

# Idle: the auto-started serve exits after its --idle-exit (3 s here) and removes its state file.
for _ in $(seq 100); do alive "$pid" || break; sleep 0.2; done
! alive "$pid" && [ ! -e "$SD/serve.json" ] && grep -q "stopping (no invocation for 3 s)" "$SD/serve.log" &&
    pass "the background serve exited when idle and removed its state file" || fail "idle exit: pid $pid alive; $(tail -3 "$SD/serve.log")"
grep -q "Sanitizer" "$SD/serve.log" "$SD"/function-logs/*.log &&
    fail "a sanitizer report in the serve's or the functions' logs: $(grep -h -A5 Sanitizer "$SD/serve.log" "$SD"/function-logs/*.log | head -20)" ||
    pass "no sanitizer report in the serve's and the functions' logs"
finish
