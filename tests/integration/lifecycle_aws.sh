#!/usr/bin/env bash
# Lifecycle commands on a job, read from the store: status (text and --json), wait (exit status =
# the job's), cancel (the job stops, removes its own parts, ends "cancelled"), cleanup (work data
# of ended or abandoned jobs, never a running one's). On the embedded default, and with
# --backend aws against `lambdamr serve` (the deployed P-coordinator, P-mapper, P-reducer) over
# s3:// data on moto (SigV4 checking on), as --backend aws takes S3 locations only.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
serve_pid=
moto_start
export XDG_RUNTIME_DIR="$D/xdg" LMR_SERVE_IDLE_EXIT_S=5 # this test's own background serve (run --detach locally)
mkdir -m 700 "$XDG_RUNTIME_DIR"
lmr_on_exit '"$LAMBDAMR" serve --stop > /dev/null 2>&1; [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; cleanup_tmp'
moto_words_bucket "$D/in" lmr-life 4 2000 13 500 p%d.txt
export LMR_FAULT='map-slow:*:*' LMR_FAULT_SLOW_MS=700
# serve's functions inherit moto's endpoint and credentials (for S3) and AWS_ENDPOINT_URL_LAMBDA
# (serve itself, for the coordinator's invocations): the port is chosen before serve starts.
serve_functions_start "$D" lc memory=256 concurrency=2 || { fail "lambdamr serve did not start"; finish; }

# Output locations: a local folder on the embedded default, s3://lmr-life/NAME/ with --backend aws.
# local_copy OUT: OUT as a local folder (an S3 output is copied to $D/copy-NAME first).
local_copy() {
    case $1 in
    s3://*) local c="$D/copy-$(basename "$1")"; rm -rf "$c"; mkdir -p "$c"; aws s3 cp --recursive --quiet "$1" "$c/"; echo "$c" ;;
    *) echo "$1" ;;
    esac
}
# has_parts OUT: OUT holds part files. work_files OUT: the files under OUT's _lambdamr/work.
has_parts() {
    case $1 in
    s3://*) aws s3 ls "$1" 2>/dev/null | grep -q " part-" ;;
    *) ls "$1"/part-* > /dev/null 2>&1 ;;
    esac
}
work_files() {
    case $1 in
    s3://*) aws s3 ls --recursive "${1}_lambdamr/work/" 2>/dev/null || true ;;
    *) find "$1/_lambdamr/work" -type f 2>/dev/null || true ;;
    esac
}
for backend in local aws; do
    extra=(--input "$D/in"); [ "$backend" = aws ] && extra=(--input s3://lmr-life/in/ --backend aws --function-prefix lc)
    start() { "$LAMBDAMR" run wordcount --split-size 32K --reducers 2 --concurrency 2 "${extra[@]}" "$@" > "$D/run.log" 2>&1 & pid=$!; }
    # waitlease OUT: until a job has taken OUT (its lease is readable: status answers).
    waitlease() { for _ in $(seq 100); do "$LAMBDAMR" status "$1" > /dev/null 2>&1 && break; sleep 0.05; done; sleep 0.5; }
    outloc() { [ "$backend" = aws ] && echo "s3://lmr-life/$1/" || echo "$D/$1"; }

    # status while running, wait for success
    out=$(outloc "$backend-ok")
    start --output "$out"; waitlease "$out"
    "$LAMBDAMR" status "$out" > "$D/st.txt" 2>&1 || true
    grep -qE "^job [0-9A-Za-z-]+: running, (map|reduce) phase" "$D/st.txt" && grep -q "tasks .* map, 2 reduce" "$D/st.txt" &&
        pass "$backend: status of a running job: $(head -1 "$D/st.txt")" || fail "$backend: status: $(cat "$D/st.txt")"
    "$LAMBDAMR" status "$out" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["status"]=="running" and s["progress"]["total"]>0 and s["so_far"]["invocations"]>=1 and s["so_far"]["cost_usd"]>0, s' &&
        pass "$backend: status --json (with bytes and cost so far)" || fail "$backend: status --json"
    rc=0; "$LAMBDAMR" wait "$out" > "$D/wait.txt" 2>&1 || rc=$?
    wait "$pid" || fail "$backend: the job failed: $(cat "$D/run.log")"
    [ "$rc" = 0 ] && grep -q "succeeded" "$D/wait.txt" && pass "$backend: wait exits 0 for a succeeded job" || fail "$backend: wait rc=$rc"
    check_wordcount "$backend: the waited-for job's output" "$(local_copy "$out")" "$D/in"
    "$LAMBDAMR" status "$out" | grep -q ": succeeded" && pass "$backend: status after the end" || fail "$backend: status after the end"
    "$LAMBDAMR" logs "$out" --task m-00001 > "$D/logs.txt" 2>&1 && grep -q "^== m-00001/m00001-a1-" "$D/logs.txt" &&
        grep -q "map task 1 attempt 1" "$D/logs.txt" && grep -q "end: task m-00001 attempt .* ended" "$D/logs.txt" &&
        pass "$backend: logs --task m-00001 (stored by the function in the work location)" || fail "$backend: logs: $(cat "$D/logs.txt")"
    "$LAMBDAMR" logs "$out" | grep -c "^== " | python3 -c 'import sys; n=int(sys.stdin.read()); assert n >= 8 + 2 + 1, n' &&
        pass "$backend: logs of every task and the coordinator" || fail "$backend: logs of the whole job"
    rc=0; "$LAMBDAMR" logs "$out" --task r-00042 2> "$D/nolog.txt" || rc=$?
    [ "$rc" = 1 ] && grep -q "has no logs for task r-00042" "$D/nolog.txt" && pass "$backend: logs of a task that never ran: a clear error" ||
        fail "$backend: logs of a missing task (rc $rc)"
    rc=0; "$LAMBDAMR" cleanup "$out" > "$D/cl.txt" 2>&1 || rc=$?
    copy=$(local_copy "$out")
    [ "$rc" = 0 ] && [ -f "$copy/_SUCCESS" ] && check_wordcount "$backend: cleanup keeps a succeeded job's output" "$copy" "$D/in" ||
        fail "$backend: cleanup of a succeeded output (rc $rc): $(cat "$D/cl.txt")"

    # cancel: the job stops, removes its own parts, wait says so (exit 3); cleanup is refused while it runs
    out=$(outloc "$backend-cancel")
    start --output "$out"; waitlease "$out"
    rc=0; "$LAMBDAMR" cleanup "$out" > "$D/cl.txt" 2>&1 || rc=$?
    [ "$rc" != 0 ] && grep -q "is running; cleanup never touches a running job" "$D/cl.txt" &&
        pass "$backend: cleanup refuses a running job" || fail "$backend: cleanup of a running job (rc $rc): $(cat "$D/cl.txt")"
    "$LAMBDAMR" cancel "$out" > /dev/null || fail "$backend: cancel"
    rc=0; "$LAMBDAMR" wait "$out" 2> "$D/wait.txt" || rc=$?
    rrc=0; wait "$pid" || rrc=$?
    [ "$rc" = 3 ] && [ "$rrc" != 0 ] && grep -q "cancelled" "$D/run.log" && pass "$backend: cancel: wait exits 3, run fails naming it" ||
        fail "$backend: cancel (wait rc $rc, run rc $rrc): $(cat "$D/wait.txt" "$D/run.log")"
    has_parts "$out" && fail "$backend: parts left after cancel" || pass "$backend: a cancelled job leaves no parts"
    "$LAMBDAMR" status "$out" | grep -q ": cancelled" && pass "$backend: status says cancelled" || fail "$backend: status after cancel"
    rc=0; "$LAMBDAMR" cleanup "$out" > "$D/cl.txt" 2>&1 || rc=$?
    [ "$rc" = 0 ] && [ -z "$(work_files "$out")" ] &&
        pass "$backend: cleanup removes a cancelled job's work data" ||
        fail "$backend: cleanup after cancel (rc $rc): $(cat "$D/cl.txt"); left: $(work_files "$out")"
done

# --detach (with --backend aws): returns once the coordinator has the job; wait follows it.
out=s3://lmr-life/detached/
t0=$SECONDS
"$LAMBDAMR" run wordcount --input s3://lmr-life/in/ --split-size 32K --reducers 2 --backend aws --function-prefix lc \
    --output "$out" --detach > "$D/detach.txt" 2>&1 || fail "--detach: $(cat "$D/detach.txt")"
grep -q "lambdamr wait $out" "$D/detach.txt" && "$LAMBDAMR" status "$out" | grep -q ": running" &&
    pass "--detach returned with the job running: $(head -1 "$D/detach.txt")" || fail "--detach: $(cat "$D/detach.txt")"
"$LAMBDAMR" wait "$out" > /dev/null && check_wordcount "--detach: the detached job's output" "$(local_copy "$out")" "$D/in" ||
    fail "--detach: wait"
# --detach on the embedded default with S3 data: the job runs in a background lambdamr serve whose
# functions reach moto with this environment's credentials (the rest of that path: detach_local.sh).
out=s3://lmr-life/detached-local/
"$LAMBDAMR" run wordcount --input s3://lmr-life/in/ --split-size 32K --reducers 2 --output "$out" --detach \
    > "$D/detach-local.txt" 2>&1 || fail "--detach locally on S3: $(cat "$D/detach-local.txt")"
grep -q "it runs in the background lambdamr serve" "$D/detach-local.txt" && "$LAMBDAMR" wait "$out" > /dev/null &&
    check_wordcount "--detach on the embedded default, S3 data: the output" "$(local_copy "$out")" "$D/in" &&
    "$LAMBDAMR" status "$out" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["status"]=="succeeded" and s["so_far"]["bytes_read"]>0 and s["so_far"]["cost_usd"]>0, s' &&
    pass "--detach on the embedded default over S3: status with bytes and cost" || fail "--detach locally on S3: $(cat "$D/detach-local.txt")"
"$LAMBDAMR" serve --stop > /dev/null

# An abandoned job (driver killed, lease expired): status says so, cleanup removes its parts and data.
export LMR_LEASE_DURATION_MS=1000
out="$D/abandoned"
export LMR_FAULT='reduce-slow:1:*' LMR_FAULT_SLOW_MS=4000
"$LAMBDAMR" run wordcount --input "$D/in" --split-size 256K --reducers 2 --output "$out" > /dev/null 2>&1 & pid=$!
for _ in $(seq 200); do [ -f "$out/part-r-00000" ] && break; sleep 0.05; done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
sleep 1.3
"$LAMBDAMR" status "$out" > "$D/ab.txt" 2>&1; grep -q ": abandoned" "$D/ab.txt" && pass "status of an abandoned job" || fail "abandoned status: $(cat "$D/ab.txt"); $(ls -R "$out" | head -30)"
"$LAMBDAMR" cleanup "$out" > "$D/cl.txt" && [ -z "$(ls "$out" | grep part-)" ] && [ -z "$(find "$out/_lambdamr/work" -type f 2>/dev/null)" ] &&
    pass "cleanup of an abandoned job: $(cat "$D/cl.txt")" || fail "cleanup of an abandoned job: $(cat "$D/cl.txt"); $(ls -R "$out")"
finish
