# Shared helpers for integration tests (sourced). Real processes only: the lambdamr CLI, its
# embedded Lambda service and the bootstrap function processes it starts.
set -euo pipefail
LMR_BIN_DIR=${LMR_BIN_DIR:?set by ctest: the build/bin directory}
LMR_SOURCE_DIR=${LMR_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
LAMBDAMR="$LMR_BIN_DIR/lambdamr"
export LMR_LOG=${LMR_LOG:-warn}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

TEST_TMP=$(mktemp -d /tmp/lmr-it-XXXXXX)
cleanup_tmp() { rm -rf "$TEST_TMP"; }
trap cleanup_tmp EXIT

FAILURES=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok   - $*"; }
fail() { FAILURES=$((FAILURES + 1)); echo "FAIL - $*"; }
finish() {
    echo "$PASSES passed, $FAILURES failed"
    [ "$FAILURES" -eq 0 ]
}

# Word count oracle, independent of lambdamr: Python splitting on the same six ASCII
# whitespace bytes, over plain, .gz and .zst files (hidden names skipped), printing
# word<TAB>count sorted bytewise.
wordcount_oracle() {
    python3 - "$@" <<'PY'
import collections, gzip, os, re, subprocess, sys
counts = collections.Counter()
def read(path):
    if path.endswith('.gz'):
        return gzip.open(path, 'rb').read()
    if path.endswith('.zst'):
        return subprocess.run(['zstd', '-dc', path], check=True, capture_output=True).stdout
    return open(path, 'rb').read()
for root in sys.argv[1:]:
    paths = [root] if os.path.isfile(root) else [
        os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    for p in paths:
        rel = os.path.relpath(p, root) if os.path.isdir(root) else os.path.basename(p)
        if any(part.startswith(('_', '.')) for part in rel.split(os.sep)):
            continue
        counts.update(w for w in re.split(rb'[ \t\n\v\f\r]+', read(p)) if w)
out = sys.stdout.buffer
for w in sorted(counts):
    out.write(w + b'\t' + str(counts[w]).encode() + b'\n')
PY
}

# The job's output, all part files concatenated and sorted bytewise.
job_output() {
    LC_ALL=C sort "$1"/part-r-* 2>/dev/null || true
}

# Compare an output directory with the oracle over the inputs. Usage: check_wordcount NAME OUTDIR INPUT...
check_wordcount() {
    local name=$1 out=$2; shift 2
    wordcount_oracle "$@" | LC_ALL=C sort > "$TEST_TMP/expect.txt"
    job_output "$out" > "$TEST_TMP/got.txt"
    if [ ! -f "$out/_SUCCESS" ]; then
        fail "$name: no _SUCCESS in $out"
    elif cmp -s "$TEST_TMP/expect.txt" "$TEST_TMP/got.txt"; then
        pass "$name ($(wc -l < "$TEST_TMP/expect.txt") distinct words)"
    else
        fail "$name: output differs from the oracle"
        diff <(head -c 2000 "$TEST_TMP/expect.txt") <(head -c 2000 "$TEST_TMP/got.txt") | head -20 || true
    fi
}
