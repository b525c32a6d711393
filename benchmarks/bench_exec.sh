#!/usr/bin/env bash
# Exec-job throughput: word count as an exec job (Hadoop Streaming style) with a small C mapper
# and reducer (benchmarks/exec/wc_map.c, wc_reduce.c), and with awk, next to the built-in
# wordcount, on the same generated Zipf text. Checks that all outputs agree, then prints one JSON
# object per run and the ratios to the built-in (wall clock, median of --repeats).
#
#   benchmarks/bench_exec.sh [--bin DIR] [--size SIZE] [--repeats N] [--keep DIR]
#
# Run it on a quiet machine: on a loaded one the times say nothing. The awk mapper is the one a
# user would type first; the C mapper shows what the exec path itself costs (pipes, parsing of
# key<TAB>value lines, the shuffle of every (word, 1) pair, which the built-in combines away).
# A third exec variant adds the C reducer as --combiner, as Hadoop Streaming users do.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${LMR_BIN_DIR:-$HERE/../build/bin}
SIZE=64M
REPEATS=3
KEEP=
while [ $# -gt 0 ]; do
    case $1 in
    --bin) BIN=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench_exec.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
LMR=$BIN/lambdamr
[ -x "$LMR" ] || { echo "bench_exec.sh: $LMR is missing; build first (cmake --build build)" >&2; exit 1; }
W=${KEEP:-$(mktemp -d /tmp/lmr-bench-exec-XXXXXX)}
mkdir -p "$W"
[ -n "$KEEP" ] || trap 'rm -rf "$W"' EXIT

[ -d "$W/text" ] || "$LMR" gen text --size "$SIZE" --out "$W/text" --seed 1 > /dev/null
cc -O2 -o "$W/wc_map" "$HERE/exec/wc_map.c"
cc -O2 -o "$W/wc_reduce" "$HERE/exec/wc_reduce.c"
# The generated text has \v \f \r between words too (the built-in splits on all six ASCII spaces).
AWK_MAP='LC_ALL=C awk -F "[ \t\v\f\r]+" '"'"'{ for (i = 1; i <= NF; i++) if ($i != "") print $i "\t1" }'"'"
AWK_RED='awk -F "\t" '"'"'$1 != k { if (NR > 1) print k "\t" n; k = $1; n = 0 } { n += $2 } END { if (NR) print k "\t" n }'"'"

declare -A CMD=(
    [builtin]="wordcount"
    [exec-c]="exec --mapper ./wc_map --reducer ./wc_reduce --file $W/wc_map --file $W/wc_reduce"
    [exec-c-combiner]="exec --mapper ./wc_map --combiner ./wc_reduce --reducer ./wc_reduce --file $W/wc_map --file $W/wc_reduce"
    [exec-awk]="exec"
)
ORDER="builtin exec-c exec-c-combiner exec-awk"

run_one() { # run_one NAME REPEAT -> wall seconds on stdout
    local name=$1 out="$W/out-$1" t0 t1
    t0=$(date +%s.%N)
    if [ "$name" = exec-awk ]; then
        "$LMR" run exec --mapper "$AWK_MAP" --reducer "$AWK_RED" --input "$W/text" --output "$out" --overwrite --json > "$W/$name.json"
    else
        # shellcheck disable=SC2086
        "$LMR" run ${CMD[$name]} --input "$W/text" --output "$out" --overwrite --json > "$W/$name.json"
    fi
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

declare -A MEDIAN
for name in $ORDER; do
    times=()
    for r in $(seq 1 "$REPEATS"); do times+=("$(run_one "$name" "$r")"); done
    MEDIAN[$name]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    LC_ALL=C sort "$W/out-$name"/part-r-* | md5sum | cut -d' ' -f1 > "$W/$name.md5"
    printf '{"run": "%s", "input": "%s", "repeats": %d, "median_wall_s": %s, "times_s": [%s]}\n' "$name" "$SIZE" \
        "$REPEATS" "${MEDIAN[$name]}" "$(IFS=,; echo "${times[*]}")"
done
for name in $ORDER; do
    cmp -s "$W/builtin.md5" "$W/$name.md5" || { echo "bench_exec.sh: $name output differs from the built-in" >&2; exit 1; }
done
for name in $ORDER; do
    [ "$name" = builtin ] && continue
    printf '{"ratio": "%s / builtin", "wall": %s}\n' "$name" "$(awk -v a="${MEDIAN[$name]}" -v b="${MEDIAN[builtin]}" 'BEGIN { printf "%.2f", a / b }')"
done
