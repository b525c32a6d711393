#!/usr/bin/env bash
# Build the libFuzzer targets (fuzz/fuzz_*.c; clang, ASan+UBSan, -DLMR_FUZZ=ON in build-fuzz/)
# and run each for a bounded time, starting from its committed seed corpus fuzz/corpus/<target>/
# (new inputs go to build-fuzz/corpus/<target>/, never into the source tree). A crash, leak,
# timeout or out-of-memory fails the run: the reproducer is kept as build-fuzz/crashes/<target>-*
# and printed with the fuzzer's report. A single allocation over 256 MB counts as a failure too (an
# allocation sized by what an input claims). The executions per target are printed at the end.
#
# Usage: scripts/fuzz.sh [TARGET...]        (default: every target)
#   LMR_FUZZ_SECONDS  seconds per target (default 20)
#   LMR_FUZZ_JOBS     targets fuzzed at the same time (default: the number of cores)
# Reproduce a crash: build-fuzz/bin/<target> build-fuzz/crashes/<target>-crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${LMR_FUZZ_SECONDS:-20}
jobs=${LMR_FUZZ_JOBS:-$(nproc)}
out=build-fuzz
cc=${LMR_FUZZ_CC:-clang-14}
command -v "$cc" >/dev/null || cc=clang
mkdir -p "$out"
if ! { CC=$cc cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=Debug -DLMR_FUZZ=ON &&
       cmake --build "$out" -j"$(nproc)" --target fuzz; } >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log"
    echo "fuzz: the build failed (whole log: $out/build.log)" >&2
    exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
mkdir -p "$out/crashes" "$out/logs"

run_one() {
    local t=$1 dict=()
    mkdir -p "$out/corpus/$t"
    [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
    rm -f "$out/crashes/$t"-*
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=32:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$out/bin/$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=256 \
        -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" "${dict[@]}" \
        "$out/corpus/$t" "fuzz/corpus/$t" >"$out/logs/$t.log" 2>&1
}

start=$(date +%s)
declare -A status
running=0
for t in "${targets[@]}"; do
    [ -x "$out/bin/$t" ] || { echo "fuzz: no such target $t" >&2; exit 2; }
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait || true

failed=0
printf '%-20s %12s %10s %8s  %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
    log="$out/logs/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$out/corpus/$t" -type f | wc -l)
    found=$(find "$out/crashes" -name "$t-*" -type f | head -1)
    if [ -n "$found" ] || ! grep -q '^Done [0-9]* runs' "$log"; then
        result="FAILED"
        failed=1
    else
        result=ok
    fi
    printf '%-20s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$result"
done
for t in "${targets[@]}"; do
    found=$(find "$out/crashes" -name "$t-*" -type f | head -1)
    if [ -n "$found" ] || ! grep -q '^Done [0-9]* runs' "$out/logs/$t.log"; then
        echo
        echo "== $t failed; the fuzzer's report (from $out/logs/$t.log):"
        grep -v '^#[0-9]' "$out/logs/$t.log" | tail -60
        if [ -n "$found" ]; then
            echo "== reproducer: $found ($(wc -c <"$found") bytes); run: $out/bin/$t $found"
            od -A d -c "$found" | head -40
        fi
    fi
done
echo "fuzz: ${#targets[@]} targets, ${secs} s each, $(($(date +%s) - start)) s in all"
exit $failed
