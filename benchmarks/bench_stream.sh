#!/usr/bin/env bash
# Stream benchmark: sustained records/s and put-to-committed latency (p50/p99) of
# `lambdamr stream wordcount`, with the local source (standard input) and, with --moto, Kinesis
# emulated by moto_server. Prints one JSON object per measurement.
#
#   benchmarks/bench_stream.sh [--bin DIR] [--records N] [--rate R] [--window S] [--moto | --moto-only]
#                              [--moto-rate R]
# (moto accepts about 1,500 records/s here: a faster feed measures the producer's backlog.)
# MOTO_GRACE_MS sets --close-grace-ms of the Kinesis consumer (default 2000, the CLI default).
#
# Throughput: N pre-generated lines (6 words each) through standard input as fast as possible,
#   with the in-process invoker (the handler's own cost) and with the embedded Lambda service
#   (bootstrap processes); records/s by wall clock and per CPU-second of the whole process tree.
# Latency: lines carrying their write time as a word ("t<epoch ms>") are fed at R lines/s for a
#   few windows; a window's output file is committed at its mtime, so each record's latency is
#   mtime(window output) - its write time. p99 should be within about 1 s of the window length.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LMR_BIN_DIR:-$HERE/../build/bin}
N=1000000
RATE=20000
WINDOW=2
MOTO=0
LOCAL=1
MOTO_RATE=1000
while [ $# -gt 0 ]; do
    case $1 in
    --bin) BIN=$2; shift 2 ;;
    --records) N=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --moto) MOTO=1; shift ;;
    --moto-only) MOTO=1; LOCAL=0; shift ;;
    --moto-rate) MOTO_RATE=$2; shift 2 ;;
    *) echo "usage: $0 [--bin DIR] [--records N] [--rate R] [--window S] [--moto|--moto-only] [--moto-rate R]" >&2; exit 2 ;;
    esac
done
LMR=$BIN/lambdamr
T=$(mktemp -d /tmp/lmr-bench-stream.XXXXXX)
trap 'rm -rf "$T"' EXIT

python3 -c '
import random, sys
r = random.Random(1)
words = ["w%d" % i for i in range(5000)]
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(" ".join(r.choice(words) for _ in range(6)) + "\n")
' "$N" > "$T/in.txt"

throughput() { # invoker
    local out=$T/tp-$1 t0 t1 cpu
    rm -rf "$out"
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$T/time" "$LMR" stream wordcount --source - --window 5 --output "$out" \
        --batch-size 10000 --invoker "$1" --quiet < "$T/in.txt"
    t1=$(date +%s.%N)
    read -r user sys < "$T/time"
    local words
    words=$(cat "$out"/window=*/part-00000 | awk -F'\t' '{s += $2} END {print s}')
    [ "$words" -eq $((N * 6)) ] || { echo "bench_stream: wrong total $words" >&2; exit 1; }
    python3 -c '
import json, sys
n, wall, user, sys_, inv = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(json.dumps({"bench": "stream_throughput", "source": "stdin", "job": "wordcount", "invoker": inv,
                  "records": n, "wall_s": round(wall, 3), "records_per_s": round(n / wall),
                  "cpu_s": round(user + sys_, 3), "records_per_cpu_s": round(n / max(user + sys_, 1e-9))}))
' "$N" "$(echo "$t1 - $t0" | bc)" "$user" "$sys" "$1"
}

# Latency: lines with their write time, at RATE lines/s for 4 windows.
latency() { # source-label, then the command that consumes stdin or the stream
    python3 - "$T/lat-out" <<'PY'
import glob, json, os, sys
lat = []
for f in glob.glob(sys.argv[1] + "/window=*/part-00000"):
    committed_ms = os.stat(f).st_mtime_ns / 1e6
    for line in open(f):
        k, v = line.rstrip("\n").rsplit("\t", 1)
        if k.startswith("t"):
            lat += [committed_ms - int(k[1:])] * int(v)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(json.dumps({"records": len(lat), "p50_ms": round(q(0.50)), "p99_ms": round(q(0.99)), "max_ms": round(lat[-1])}))
PY
}

feeder() { # lines/s, seconds
    python3 -c '
import sys, time
rate, secs = int(sys.argv[1]), float(sys.argv[2])
start = time.time(); n = 0; out = sys.stdout
while time.time() - start < secs:
    now = time.time()
    due = int((now - start) * rate)
    if due > n:
        ms = int(now * 1000)
        out.write("".join("a b c t%d\n" % ms for _ in range(due - n))); out.flush(); n = due
    time.sleep(0.005)
' "$1" "$2"
}

if [ "$LOCAL" = 1 ]; then
    throughput inproc
    throughput local
    rm -rf "$T/lat-out"
    feeder "$RATE" $((WINDOW * 4)) | "$LMR" stream wordcount --source - --window "$WINDOW" --output "$T/lat-out" \
        --batch-size 1000 --quiet
    echo "{\"bench\": \"stream_latency\", \"source\": \"stdin\", \"window_s\": $WINDOW, \"rate\": $RATE, \"result\": $(latency)}"
fi

if [ "$MOTO" = 1 ]; then
    source "$HERE/../tests/integration/lib/moto.sh"
    moto_start
    export AWS_ENDPOINT_URL_KINESIS=$MOTO_URL
    aws kinesis create-stream --stream-name bench --shard-count 2
    sleep 0.5
    rm -rf "$T/lat-out"
    "$LMR" stream wordcount --source kinesis://bench --window "$WINDOW" --output "$T/lat-out" --batch-size 1000 \
        --close-grace-ms "${MOTO_GRACE_MS:-2000}" \
        --starting-position trim-horizon --quiet &
    C=$!
    sleep 2
    t0=$(date +%s.%N)
    feeder "$MOTO_RATE" $((WINDOW * 4)) | tee "$T/fed.txt" | "$LMR" put --stream bench --quiet
    t1=$(date +%s.%N)
    # Wait until every record put is in a committed window (the machine may be loaded).
    fed=$(wc -l < "$T/fed.txt")
    for _ in $(seq 1 120); do
        got=$(cat "$T"/lat-out/window=*/part-00000 2>/dev/null | awk -F'\t' '$1 == "a" {s += $2} END {print s + 0}')
        [ "$got" -ge "$fed" ] && break
        sleep 0.5
    done
    kill -TERM $C; wait $C || true
    [ "$got" -eq "$fed" ] || { echo "bench_stream: $got of $fed records committed" >&2; exit 1; }
    echo "{\"bench\": \"stream_latency\", \"source\": \"kinesis (moto)\", \"window_s\": $WINDOW, \"rate\": $MOTO_RATE, \"put_s\": $(echo "$t1 - $t0" | bc), \"result\": $(latency)}"
fi
