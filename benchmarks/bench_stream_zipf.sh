#!/usr/bin/env bash
# Stream throughput with many keys (issue 15): `lambdamr stream wordcount --source -` over Zipf
# text, through the stream function (embedded Lambda service, bootstrap processes) and
# in-process, reporting records/s (wall) and records per CPU-second of the whole process tree
# (CPU-seconds mean something on a loaded machine; wall time does not). One JSON object per run.
#
#   benchmarks/bench_stream_zipf.sh [--bin DIR] [--mib N] [--vocab V] [--per-window D]
#                                   [--batch-sizes "100 default"] [--invokers "local inproc"]
#                                   [--parallelizations "1"] [--text FILE] [--instructions]
#
# Text: lines of 6 words; the input is cut into blocks, and block b draws its words with Zipf
# weights (s = 1) from a slice of D words (default 10,000) of the V-word vocabulary (default
# 50,000), the slice moving on every block, so a window sees about D distinct words whatever its
# length. Defaults: 64 MiB; batch sizes 100 and the default (no --batch-size: 10,000 for standard
# input). --parallelizations runs each point with these --parallelization values (lanes of the
# one standard-input shard). --text FILE reuses text this script wrote before (same flags) instead of
# writing it again. --instructions adds `perf stat -e instructions` counts (meaningful
# on a loaded machine too) when perf is available.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LMR_BIN_DIR:-$HERE/../build/bin}
MIB=64
VOCAB=50000
PER_WINDOW=10000
BATCHES="100 default"
INVOKERS="local inproc"
INSTR=0
PARS=1
TEXT=
while [ $# -gt 0 ]; do
    case $1 in
    --bin) BIN=$2; shift 2 ;;
    --mib) MIB=$2; shift 2 ;;
    --vocab) VOCAB=$2; shift 2 ;;
    --per-window) PER_WINDOW=$2; shift 2 ;;
    --batch-sizes) BATCHES=$2; shift 2 ;;
    --invokers) INVOKERS=$2; shift 2 ;;
    --parallelizations) PARS=$2; shift 2 ;;
    --text) TEXT=$2; shift 2 ;;
    --instructions) INSTR=1; shift ;;
    *) echo "usage: $0 [--bin DIR] [--mib N] [--vocab V] [--per-window D] [--batch-sizes LIST] [--invokers LIST] [--parallelizations LIST] [--text FILE] [--instructions]" >&2; exit 2 ;;
    esac
done
[ "$PER_WINDOW" -le "$VOCAB" ] || PER_WINDOW=$VOCAB
LMR=$BIN/lambdamr
T=$(mktemp -d /tmp/lmr-bench-zipf.XXXXXX)
trap 'rm -rf "$T"' EXIT

if [ -n "$TEXT" ]; then
    ln -s "$(realpath "$TEXT")" "$T/in.txt"
else
python3 - "$MIB" "$VOCAB" "$PER_WINDOW" > "$T/in.txt" <<'PY'
import bisect, itertools, random, sys
mib, vocab, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
r = random.Random(15)
words = ["w%d" % i for i in range(vocab)]
cum = list(itertools.accumulate(1.0 / (k + 1) for k in range(d)))
total, out, written, block, lines_per_block = cum[-1], sys.stdout, 0, 0, 20000
limit = mib << 20
while written < limit:
    base = (block * d // 2) % vocab
    buf = []
    for _ in range(lines_per_block):
        idx = [bisect.bisect_left(cum, r.random() * total) for _ in range(6)]
        buf.append(" ".join(words[(base + i) % vocab] for i in idx))
    text = "\n".join(buf) + "\n"
    out.write(text)
    written += len(text)
    block += 1
PY
fi
RECORDS=$(wc -l < "$T/in.txt")
WORDS=$((RECORDS * 6))

run() { # invoker batch parallelization
    local out=$T/out-$1-$2-$3 pre=()
    rm -rf "$out"
    if [ "$INSTR" = 1 ] && command -v perf >/dev/null; then
        pre=(perf stat -x, -e instructions -o "$T/perf")
    fi
    local t0 t1
    t0=$(date +%s.%N)
    local bs=()
    [ "$2" = default ] || bs=(--batch-size "$2")
    /usr/bin/time -f "%U %S" -o "$T/time" "${pre[@]}" "$LMR" stream wordcount --source - --window 2 --output "$out" \
        "${bs[@]}" --parallelization "$3" --invoker "$1" < "$T/in.txt" 2> "$T/log"
    t1=$(date +%s.%N)
    local words
    words=$(cat "$out"/window=*/part-00000 | awk -F'\t' '{s += $2} END {print s}')
    [ "$words" -eq "$WORDS" ] || { echo "bench_stream_zipf: wrong total $words, want $WORDS" >&2; tail -3 "$T/log" >&2; exit 1; }
    local instr=0
    # "<not supported>" (no hardware counters, as in many VMs) counts as 0, not a failure.
    [ -s "$T/perf" ] && instr=$(awk -F, '/instructions/ && $1 ~ /^[0-9]+$/ {print $1}' "$T/perf")
    python3 - "$RECORDS" "$(echo "$t1 - $t0" | bc)" "$(cat "$T/time")" "$1" "$2" "$VOCAB" "$PER_WINDOW" "$MIB" \
        "$instr" "$(grep -o '[0-9]* window parts ended early' "$T/log" | cut -d' ' -f1)" "$3" <<'PY'
import json, sys
n, wall = int(sys.argv[1]), float(sys.argv[2])
user, sys_ = (float(x) for x in sys.argv[3].split())
cpu = user + sys_
print(json.dumps({"bench": "stream_zipf", "invoker": sys.argv[4],
                  "batch_size": 10000 if sys.argv[5] == "default" else int(sys.argv[5]), "default_batch_size": sys.argv[5] == "default",
                  "vocab": int(sys.argv[6]), "distinct_per_window": int(sys.argv[7]), "input_mib": int(sys.argv[8]),
                  "records": n, "wall_s": round(wall, 3), "records_per_s": round(n / wall),
                  "cpu_s": round(cpu, 3), "records_per_cpu_s": round(n / max(cpu, 1e-9)),
                  "instructions": int(sys.argv[9] or 0), "parts_ended_early": int(sys.argv[10] or 0),
                  "parallelization": int(sys.argv[11])}))
PY
}

for inv in $INVOKERS; do
    for b in $BATCHES; do
        for par in $PARS; do
            run "$inv" "$b" "$par"
        done
    done
done
