#!/usr/bin/env bash
# lambdamr stream with the local sources, through the embedded Lambda service (bootstrap, role
# "stream"): window outputs must add up exactly to what was fed, per word, also when the
# consumer is killed with SIGKILL at random moments while lines keep arriving (file source,
# with a log rotation in the middle), and restarted.
set -euo pipefail
source "$(dirname "$0")/lib/kill_restart.sh"
source "$(dirname "$0")/lib/stream.sh"
BIN=${LMR_BIN_DIR:?set LMR_BIN_DIR to the bin directory of a build}
LMR=$BIN/lambdamr
T=$(mktemp -d /tmp/lmr-stream-local.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Oracle: word counts of the input files (Hadoop WordCount tokenisation: ASCII whitespace).
oracle() { python3 -c '
import sys, collections
c = collections.Counter()
for f in sys.argv[1:]:
    with open(f, "rb") as fh:
        for line in fh:
            c.update(line.split())
for k in sorted(c): sys.stdout.buffer.write(k + b"\t" + str(c[k]).encode() + b"\n")
' "$@"; }

# Deterministic lines: a few words from a small vocabulary and one rarer word.
gen_lines() { python3 -c '
import sys, random
r = random.Random(int(sys.argv[2]))
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(" ".join("w%d" % r.randrange(60) for _ in range(r.randrange(1, 6))) + " r%d\n" % (i % 997))
' "$1" "$2"; }

echo "== stdin: lines fed over several windows"
gen_lines 30000 1 > "$T/in1.txt"
# Feed in slices so that the input spans several 1 s windows.
python3 -c '
import sys, time
data = open(sys.argv[1], "rb").read().splitlines(keepends=True)
for i in range(0, len(data), 3000):
    sys.stdout.buffer.write(b"".join(data[i:i + 3000])); sys.stdout.flush(); time.sleep(0.25)
' "$T/in1.txt" | LMR_LOG=info timeout 120 "$LMR" stream wordcount --source - --window 1 --output "$T/out1" \
    --batch-size 500 --parallelization 2 --quiet 2> "$T/stream1.log"
# Each lane's invocations go to the warm environment that holds its state (the service prefers it):
# no state is rebuilt, none travels whole.
! grep -E "rebuilding it|travel whole" "$T/stream1.log" || fail "stdin: a lane lost the state its environment held"
oracle "$T/in1.txt" > "$T/want1"
stream_window_sums "$T/out1" > "$T/got1"
cmp -s "$T/want1" "$T/got1" || { diff "$T/want1" "$T/got1" | head || true; fail "stdin: window outputs differ from the input's word counts"; }
nwin=$(ls -d "$T"/out1/window=* | wc -l)
[ "$nwin" -ge 2 ] || fail "stdin: expected the input to span several windows, got $nwin"
echo "ok: $(wc -l < "$T/in1.txt") lines in $nwin windows, totals exact"

echo "== stdin: two lanes at --batch-size 100 (each lane's invocations chained on its environment's thread, both at once)"
LMR_LOG=info timeout 120 "$LMR" stream wordcount --source - --window 1 --output "$T/out1c" --batch-size 100 \
    --parallelization 2 --quiet < "$T/in1.txt" 2> "$T/stream1c.log"
! grep -E "rebuilding it|travel whole" "$T/stream1c.log" || fail "stdin, two lanes: a lane lost the state its environment held"
stream_window_sums "$T/out1c" > "$T/got1c"
cmp -s "$T/want1" "$T/got1c" || { diff "$T/want1" "$T/got1c" | head || true; fail "stdin, two lanes at batch 100: window outputs differ from the input's word counts"; }
python3 - "$T/out1c/_lambdamr/report.json" <<'PY' || fail "stdin, two lanes at batch 100: the report's figures are not those of two lanes in two environments"
import json, sys
r = json.load(open(sys.argv[1]))
t = r["totals"]
inv = [i for w in r["windows"] for i in w.get("invocations", []) if not i["final"]]
assert {i["lane"] for i in inv} == {0, 1}, "lanes %s" % {i["lane"] for i in inv}
assert t["records_processed"] == 30000, t["records_processed"]
assert t["invocations"] - t["final_invokes"] >= 300, (t["invocations"], t["final_invokes"])
assert t["cold_starts"] == 2, "cold starts %d" % t["cold_starts"]
PY
echo "ok: two lanes at batch 100, totals exact, no state lost"

echo "== stdin again into the same output: new standard input is new data (issue 11 item 7)"
gen_lines 5000 7 > "$T/in1b.txt"
mkdir "$T/tmp"
TMPDIR=$T/tmp timeout 120 "$LMR" stream wordcount --source - --window 1 --output "$T/out1" --batch-size 500 --quiet < "$T/in1b.txt"
oracle "$T/in1.txt" "$T/in1b.txt" > "$T/want1b"
stream_window_sums "$T/out1" > "$T/got1b"
cmp -s "$T/want1b" "$T/got1b" || { diff "$T/want1b" "$T/got1b" | head || true; fail "stdin re-run: the second run's input is not counted exactly once"; }
# The function logs live under the run's checkpoint folder and are removed after a good run (11.8).
[ -z "$(ls -A "$T/tmp")" ] || fail "stream left something in its TMPDIR: $(ls "$T/tmp")"
[ ! -e "$T/out1/_checkpoint/logs" ] || fail "stream left its function logs in $T/out1/_checkpoint/logs"
[ -z "$(find "$T/out1/_lambdamr" -name '*.kv' 2>/dev/null)" ] || fail "window parts were left behind after their merge"
echo "ok: the second run's $(wc -l < "$T/in1b.txt") lines counted once; no log folder left behind"

echo "== stdin: --batch-size 10000 with a state over 1 MB (batches cut to 6 MB, windows ended early)"
python3 -c '
import random, sys
r = random.Random(11)
out = sys.stdout
for i in range(12000):
    out.write(" ".join("k%d" % r.randrange(200000) for _ in range(60)) + "\n")
' > "$T/in6.txt"
timeout 300 "$LMR" stream wordcount --source - --window 2 --output "$T/out6" --batch-size 10000 \
    < "$T/in6.txt" 2> "$T/out6.log" || { tail -5 "$T/out6.log"; fail "batch-size 10000 with a large state did not finish"; }
oracle "$T/in6.txt" > "$T/want6"
stream_window_sums "$T/out6" > "$T/got6"
cmp -s "$T/want6" "$T/got6" || { diff "$T/want6" "$T/got6" | head || true; fail "large state: window totals differ"; }
grep -qE " [1-9][0-9]* window parts ended early" "$T/out6.log" || { tail -3 "$T/out6.log"; fail "large state: expected windows ended early by the 1 MB state limit"; }
echo "ok: $(wc -l < "$T/want6") keys exact; $(grep -o '[0-9]* window parts ended early' "$T/out6.log")"

echo "== stream merge: a window whose shards wrote their parts but nobody merged them (as an idle shard on AWS leaves it)"
python3 - "$T/out8" <<'PY'
import json, os, struct, sys
def part(path, counts):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    body = b""
    for k, v in counts.items():
        kb = k.encode()
        body += bytes([len(kb)]) + kb + struct.pack("<Q", v)
    hdr = json.dumps({"job": "wordcount", "args": {}, "records": sum(counts.values())}).encode()
    open(path, "wb").write(b"LMRW1\n" + hdr + b"\n" + body)
d = sys.argv[1] + "/_lambdamr/windows/window=2023-11-14T22:13:20Z/"
part(d + "shardId-000000000000/early-L0-1.kv", {"a": 2, "b": 1})
part(d + "shardId-000000000000/final-L0.kv", {"a": 1})
part(d + "shardId-000000000001/final-L0.kv", {"b": 5, "c": 1})
PY
"$LMR" stream merge "$T/out8" > "$T/merge.out" 2> "$T/merge.err" || { cat "$T/merge.err"; fail "stream merge failed"; }
printf 'a\t3\nb\t6\nc\t1\n' | cmp -s - "$T/out8/window=2023-11-14T22:13:20Z/part-00000" || fail "stream merge: wrong window output: $(cat "$T/out8/window=2023-11-14T22:13:20Z/part-00000")"
grep -q "^1 window(s) merged" "$T/merge.out" || fail "stream merge: $(cat "$T/merge.out")"
[ -z "$(find "$T/out8/_lambdamr" -name '*.kv')" ] || fail "stream merge left parts behind"
"$LMR" stream merge "$T/out8" > "$T/merge2.out" 2>&1 || fail "a second stream merge failed"
grep -q "^0 window(s) merged" "$T/merge2.out" || fail "a second stream merge must write nothing: $(cat "$T/merge2.out")"
printf 'a\t3\nb\t6\nc\t1\n' | cmp -s - "$T/out8/window=2023-11-14T22:13:20Z/part-00000" || fail "stream merge changed a merged window"
if "$LMR" stream merge 2> "$T/merge3.err"; then fail "stream merge without OUTPUT must fail"; fi
echo "ok: stream merge merged 3 parts of 2 shards once"

echo "== stdin: a poison record with bisect, retries and the on-failure destination"
gen_lines 3000 2 > "$T/in2.txt"
sed -i '1234s/$/ POISON/' "$T/in2.txt"
LMR_STREAM_FAIL_MATCH=POISON timeout 120 "$LMR" stream wordcount --source - --window 2 --output "$T/out2" \
    --batch-size 400 --bisect-on-error --max-retries 1 --on-failure --quiet < "$T/in2.txt"
grep -v POISON "$T/in2.txt" > "$T/in2.clean"
oracle "$T/in2.clean" > "$T/want2"
stream_window_sums "$T/out2" > "$T/got2"
cmp -s "$T/want2" "$T/got2" || { diff "$T/want2" "$T/got2" | head || true; fail "poison: outputs must hold every record but the poison one"; }
desc=$(ls "$T"/out2/_checkpoint/failures/shardId-000000000000/*.json)
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
b = d["KinesisBatchInfo"]
assert b["batchSize"] == 1 and b["startSequenceNumber"] == "%020d" % 1234, b
assert d["requestContext"]["condition"] == "RetryAttemptsExhausted", d
' "$desc" || fail "poison: the failed batch descriptor is not the one poison record"
echo "ok: the poison record alone went to the on-failure destination"

echo "== stdin: lines travel as KPL aggregated records; a poison line fails its whole aggregated record"
# 10,000 lines of ~250 bytes: a default batch is packed into aggregated records of at most 1 MiB
# (about 4,000 lines each). Without bisect, the poison line (6,000) fails its aggregated record: the
# retry starts at that record's first line, and when the retry fails too the rest of the batch is
# given up from there (as AWS does). Lines before that aggregated record are counted.
python3 -c '
import random
r = random.Random(11)
for i in range(1, 10001):
    print(" ".join("v%d" % r.randrange(5000) for _ in range(40)) + (" POISON" if i == 6000 else ""))
' > "$T/in9.txt"
LMR_STREAM_FAIL_MATCH=POISON timeout 120 "$LMR" stream wordcount --source - --window 30 --output "$T/out9" \
    --max-retries 1 --on-failure --quiet < "$T/in9.txt"
python3 - "$T/out9" "$T/in9.txt" > "$T/want9" <<'PY' || fail "aggregated: the given-up range is not an aggregated record's lines"
import collections, glob, json, sys
ranges = []
for f in glob.glob(sys.argv[1] + "/_checkpoint/failures/*/*.json"):
    b = json.load(open(f))["KinesisBatchInfo"]
    ranges.append((int(b["startSequenceNumber"]), int(b["endSequenceNumber"])))
assert len(ranges) == 1, ranges
start, end = ranges[0]
# The aggregated record holding line 6,000 starts well before it, after line 1; all after it in the batch went too.
assert 1 < start < 6000 - 100 and end >= 6000, ranges
c = collections.Counter()
for i, line in enumerate(open(sys.argv[2], "rb"), 1):
    if not start <= i <= end:
        c.update(line.split())
for k in sorted(c): sys.stdout.buffer.write(k + b"\t" + str(c[k]).encode() + b"\n")
PY
stream_window_sums "$T/out9" > "$T/got9"
cmp -s "$T/want9" "$T/got9" || { diff "$T/want9" "$T/got9" | head || true; fail "aggregated: totals must hold every line outside the given-up range exactly once"; }
echo "ok: the poison line's whole aggregated record was retried and given up; the rest counted exactly"

echo "== stdin: aggregate (sum by field) and a map-only job refused"
python3 -c '
import random
r = random.Random(5)
for i in range(5000):
    print("%d,%s,g%d,%d" % (i, "x" * r.randrange(3), r.randrange(17), r.randrange(1000)))
' > "$T/in4.csv"
timeout 60 "$LMR" stream aggregate --source - --delimiter , --key 3 --value 4 --op sum --window 2 \
    --output "$T/out4" --batch-size 700 --quiet < "$T/in4.csv"
python3 -c '
import sys, collections
c = collections.Counter()
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split(","); c[f[2]] += int(f[3])
for k in sorted(c): print("%s\t%d" % (k, c[k]))
' "$T/in4.csv" > "$T/want4"
stream_window_sums "$T/out4" > "$T/got4"
cmp -s "$T/want4" "$T/got4" || { diff "$T/want4" "$T/got4" | head || true; fail "aggregate: sums differ"; }
if "$LMR" stream scan --source - --window 1 --output "$T/out5" --fields 1 < /dev/null 2> "$T/scan.err"; then
    fail "a map-only job must be refused"
fi
grep -q "combiner" "$T/scan.err" || fail "the refusal should say why: $(cat "$T/scan.err")"
echo "ok: aggregate sums exact; scan refused with a reason"

echo "== file source: SIGKILL and restart while lines keep arriving (with a rotation)"
LOG=$T/app.log
: > "$LOG"
python3 - "$LOG" 24000 <<'PY' &
import sys, time, os, random
path, total = sys.argv[1], int(sys.argv[2])
r = random.Random(3)
f = open(path, "a")
for i in range(total):
    f.write(" ".join("w%d" % r.randrange(60) for _ in range(r.randrange(1, 6))) + " r%d\n" % (i % 997))
    if i % 400 == 399:
        f.flush(); time.sleep(0.1)
    if i == total // 2:        # rotate like logrotate: rename, then a new file
        f.close(); os.rename(path, path + ".1"); f = open(path, "a")
f.close()
open(path + ".done", "w").close()
PY
WRITER=$!
PIDS+=("$WRITER")
consumer() {
    "$LMR" stream wordcount --source "file://$LOG" --window 1 --output "$T/out3" --batch-size 300 \
        --parallelization 3 --quiet 2>>"$T/consumer.log" &
    CPID=$!
    PIDS+=("$CPID")
}
kill_restart 5 0.3 1.6 consumer
consumer
# Wait for the writer, then for the outputs to catch up with everything written.
wait "$WRITER"
oracle "$LOG.1" "$LOG" > "$T/want3"
deadline=$((SECONDS + 60))
while :; do
    stream_window_sums "$T/out3" > "$T/got3"
    cmp -s "$T/want3" "$T/got3" && break
    [ $SECONDS -lt $deadline ] || { diff "$T/want3" "$T/got3" | head || true; cat "$T/consumer.log" | tail -5; fail "file: outputs did not reach the exact totals (lost or double-counted records)"; }
    kill -0 "$CPID" 2>/dev/null || { tail -5 "$T/consumer.log" || true; fail "file: the consumer died"; }
    sleep 0.5
done
kill -TERM "$CPID"
wait "$CPID" || fail "file: the consumer did not stop cleanly on SIGTERM"
stream_window_sums "$T/out3" > "$T/got3"
cmp -s "$T/want3" "$T/got3" || fail "file: outputs changed after the final stop"
echo "ok: $(cat "$LOG.1" "$LOG" | wc -l) lines, $(ls -d "$T"/out3/window=* | wc -l) windows, 5 SIGKILLs, totals exact"

echo "== file source: many keys, windows ended early by the state limit, SIGKILL and restart"
LOG7=$T/keys.log
: > "$LOG7"
keys_writer() { python3 - "$LOG7" "$@" <<'PY'
import sys, time, random
path, seed, total, pace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "paced"
r = random.Random(seed)
f = open(path, "a")
for i in range(total):
    f.write(" ".join("k%d" % r.randrange(50000) for _ in range(20)) + "\n")
    if pace and i % 300 == 299:
        f.flush(); time.sleep(0.1)
f.close()
PY
}
# The first 3,000 lines are there before the consumer starts, so its first batches are full
# (2,000 lines of 20 words, far more keys than a 64 KiB state holds) however fast it reads.
keys_writer 8 3000 all
keys_writer 9 3000 paced &
WRITER=$!
PIDS+=("$WRITER")
consumer7() {
    LMR_LOG=info LMR_STREAM_STATE_MAX=65536 "$LMR" stream wordcount --source "file://$LOG7" --window 1 --output "$T/out7" \
        --batch-size 2000 --parallelization 2 --quiet 2>>"$T/consumer7.log" &
    CPID=$!
    PIDS+=("$CPID")
}
kill_restart 3 0.5 1.5 consumer7
consumer7
wait "$WRITER"
oracle "$LOG7" > "$T/want7"
deadline=$((SECONDS + 90))
while :; do
    stream_window_sums "$T/out7" > "$T/got7"
    cmp -s "$T/want7" "$T/got7" && break
    [ $SECONDS -lt $deadline ] || { diff "$T/want7" "$T/got7" | head || true; tail -5 "$T/consumer7.log"; fail "many keys: outputs did not reach the exact totals"; }
    kill -0 "$CPID" 2>/dev/null || { tail -5 "$T/consumer7.log" || true; fail "many keys: the consumer died"; }
    sleep 0.5
done
kill -TERM "$CPID"
wait "$CPID" || fail "many keys: the consumer did not stop cleanly on SIGTERM"
grep -q "ended early" "$T/consumer7.log" || fail "many keys: expected windows ended early by the state limit"
# 2,000 lines of 20 words are far more keys than a 64 KiB state holds: the poller packed fewer lines
# into each aggregated record.
grep -q "overflow a fresh window state" "$T/consumer7.log" || fail "many keys: expected aggregated records of fewer lines"
echo "ok: $(wc -l < "$T/want7") keys, 3 SIGKILLs, windows ended early, totals exact"
