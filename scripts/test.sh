#!/usr/bin/env bash
# The whole test suite: a Release build and an ASan+UBSan build, each running every ctest test
# (unit, integration, emulated-aws), then every fuzz target for a bounded time (scripts/fuzz.sh,
# LMR_FUZZ_SECONDS each), then the unit tests once more in the fuzz build (clang's sanitizers). Usage: scripts/test.sh [--fast] (--fast: Release build only, no fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)
run_suite() {
    local dir=$1; shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" >/dev/null
    (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 900)
}
echo "== Release build =="
run_suite build -DCMAKE_BUILD_TYPE=Release
if [ "${1:-}" != "--fast" ]; then
    echo "== ASan+UBSan build =="
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=32 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_suite build-sanitize -DCMAKE_BUILD_TYPE=Debug -DLMR_SANITIZE=ON
    echo "== Fuzzing (libFuzzer, ${LMR_FUZZ_SECONDS:-20} s per target) =="
    scripts/fuzz.sh
    # The fuzz build is clang's ASan+UBSan, which checks what gcc's does not (arithmetic on a null
    # pointer, for one): the unit tests run there too.
    echo "== Unit tests in the fuzz build (clang ASan+UBSan) =="
    units=$(cd build-fuzz && ctest -N -L unit | sed -n 's/.*unit\.\(test_[a-z0-9_]*\)$/\1/p')
    cmake --build build-fuzz -j"$jobs" --target $units >/dev/null
    (cd build-fuzz &&
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=32 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            ctest --output-on-failure -j"$jobs" -L unit --timeout 900)
fi
