#!/usr/bin/env bash
# How good is `run --dry-run`'s estimate? Runs word count and BDB Query 2 locally at a few
# sizes, estimates each first with a model of this machine (local disk instead of S3, the
# embedded service's start-up and invoke costs, the CPU rates given below), and prints the
# estimate next to the measured figures with the relative error. Counts (tasks, invocations,
# data requests) must match exactly; times are compared as a ratio.
#   benchmarks/estimate_check.sh [BUILD_DIR] [--model NAME=VALUE,...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
EXTRA=${1:-}
B="$BUILD/bin/lambdamr"
DATA=${LMR_BENCH_DATA:-benchmarks/data}
mkdir -p "$DATA"
# This machine as a "cloud": no S3 latency, local disk bandwidth, ~15 ms cold start, sub-ms invokes.
# map_cpu_mib_s / reduce_cpu_mib_s are per-core rates; measure yours with one run and pass --model.
LOCAL_MODEL="function_mib_s=5000,request_latency_ms=0.2,cold_start_ms=15,invoke_ms=0.5,coordinator_ms=20"
[ -n "$EXTRA" ] && LOCAL_MODEL="$LOCAL_MODEL,${EXTRA#--model }"
printf '%-22s %8s %8s %8s %9s %9s %s\n' job tasks est_s real_s time_err req_equal model
run_case() {
    local name=$1 shift_ratio=$2
    shift 2
    local out="$DATA/est-out-$name"
    rm -rf "$out"
    "$B" run "$@" --output "$out" --dry-run --json --model "$LOCAL_MODEL,shuffle_ratio=$shift_ratio" > "$DATA/est-$name.json"
    "$B" run "$@" --output "$out" --json > "$DATA/real-$name.json"
    python3 - "$name" "$DATA/est-$name.json" "$DATA/real-$name.json" <<'PY'
import json, sys
name, e, r = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
ph = r['phases']
same = (e['plan']['map_tasks'] == r['mappers'] and e['invocations']['total'] == len(r['invocations'])
        and e['requests']['map']['get'] == ph['map']['store_requests']['get']
        and e['requests']['map']['put'] == ph['map']['store_requests']['put'])
est, real = e['time_s']['total'], r['wall_ms'] / 1000
print('%-22s %8d %8.2f %8.2f %+8.0f%% %9s' % (name, r['mappers'], est, real, 100 * (est - real) / real, same))
PY
}
[ -d "$DATA/text-256M" ] || "$B" gen text --size 256M --out "$DATA/text-256M" --quiet
[ -d "$DATA/bdb-512M" ] || "$B" gen bdb --size 512M --out "$DATA/bdb-512M" --quiet
for split in 64M 16M; do
    run_case "wordcount-256M-$split" 0.015 wordcount --input "$DATA/text-256M" --split-size "$split"
done
run_case "q2-512M" 0.02 aggregate --input "$DATA/bdb-512M/uservisits" --delimiter , --key 1:8 --value 4 --op sum
