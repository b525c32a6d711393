#!/usr/bin/env bash
# The plugin SDK as a user meets it: `cmake --install` into a temporary prefix, the examples/
# plugins built out of tree against it with pkg-config (and one with the CMake package), run
# through the installed lambdamr on the embedded default, outputs checked against independent
# computations (awk, python3). Also: a plugin built for another ABI version is refused naming
# both versions; a plugin using every op and function of job.h works (counters in the report,
# lmr_job_error's sentence in the task error); nothing but job.h's functions is exported.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
BUILD_DIR=$(cd "$LMR_BIN_DIR/.." && pwd)
P=$D/prefix
cmake --install "$BUILD_DIR" --prefix "$P" > "$D/install.log" 2>&1 || { cat "$D/install.log"; fail "cmake --install"; }
export PKG_CONFIG_PATH=$(dirname "$(find "$P" -name lambdamr.pc | head -1)")
LMR=$P/bin/lambdamr
[ -x "$LMR" ] && [ -f "$P/include/lambdamr/job.h" ] && pass "installed lambdamr, bootstrap, job.h, lambdamr.pc" \
    || fail "install layout: $(find "$P" -type f)"

# Exported symbols: exactly what job.h declares (besides libc's copy relocations, and in sanitizer
# builds the sanitizer runtime's own).
for b in lambdamr bootstrap; do
    got=$(nm -D --defined-only "$P/bin/$b" | awk '$2 ~ /^[TDB]$/ && $3 !~ /@/ && $3 !~ /^__(asan|ubsan|lsan|sanitizer)_/ {print $3}' | sort | tr '\n' ' ')
    [ "$got" = "lmr_job_arg lmr_job_count lmr_job_error " ] && pass "$b exports exactly job.h's functions" \
        || fail "$b exports: $got"
done

# Build out of tree, as the examples' READMEs say.
build() { # build NAME SRC
    cc -O2 -Wall -Werror -shared -fPIC $(pkg-config --cflags lambdamr) "$2" -o "$D/$1.so" 2> "$D/cc-$1.log" \
        || { cat "$D/cc-$1.log"; fail "building $1"; return 1; }
}
for ex in inverted_index topk http_status; do
    mkdir -p "$D/src-$ex" && cp "$P/share/doc/lambdamr/examples/$ex/$ex.c" "$D/src-$ex/"
    build "$ex" "$D/src-$ex/$ex.c" && pass "example $ex builds against the installed SDK with pkg-config"
done
build all_api "$LMR_SOURCE_DIR/tests/plugins/all_api.c"
build abi_mismatch "$LMR_SOURCE_DIR/tests/plugins/abi_mismatch.c"
cd "$D"

show_diff() { diff "$1" "$2" | head || true; }
run() { # run NAME ARGS... : lambdamr run, log kept
    local name=$1; shift
    timeout 120 "$LMR" run "$@" > "$D/$name.log" 2>&1
}

# ---- inverted index: word -> sorted files -------------------------------------------------------
mkdir -p "$D/docs"
python3 - "$D/docs" <<'PY'
import random, sys
r = random.Random(7)
words = ['w%d' % i for i in range(300)]
for d in range(12):
    with open('%s/doc%02d.txt' % (sys.argv[1], d), 'w') as f:
        for _ in range(r.randint(20, 400)):
            f.write(' '.join(r.choice(words[:30 + 20 * d]) for _ in range(r.randint(0, 9))) + ', end.\n')
PY
if run ii ./inverted_index.so --input "$D/docs" --output "$D/out-ii" --split-size 2K --reducers 3 --json; then
    LC_ALL=C sort "$D"/out-ii/part-r-* > "$D/ii.got"
    (cd "$D/docs" && for f in *.txt; do tr -c 'A-Za-z0-9\n' ' ' < "$f" | tr ' ' '\n' | grep -v '^$' | sed "s/\$/\t$f/"; done) |
        LC_ALL=C sort -u | awk -F'\t' '$1 != w { if (w != "") print w "\t" l; w = $1; l = $2; next } { l = l "," $2 } END { print w "\t" l }' |
        LC_ALL=C sort > "$D/ii.want"
    cmp -s "$D/ii.got" "$D/ii.want" && pass "inverted_index equals awk's index ($(wc -l < "$D/ii.want") words)" \
        || { show_diff "$D/ii.got" "$D/ii.want"; fail "inverted_index output"; }
    words=$(cat "$D"/docs/*.txt | tr -c 'A-Za-z0-9\n' ' ' | wc -w)
    python3 -c "import json,sys; r=json.load(open('$D/ii.log')); sys.exit(r['counters'].get('words') != $words)" \
        && pass "named counter 'words' summed over tasks into the report ($words)" || fail "words counter: $(grep -o '"counters".\{0,80\}' "$D/ii.log" | head -1)"
else
    cat "$D/ii.log"; fail "inverted_index run"
fi

# ---- top-k per key with a capped accumulator as combiner ------------------------------------------
python3 - "$D/scores.csv" <<'PY'
import random, sys
r = random.Random(3)
with open(sys.argv[1], 'w') as f:
    for i in range(30000):
        f.write('k%d,%d\n' % (r.randint(0, 200), r.randint(-10**6, 10**6)))
        if i % 1000 == 0:
            f.write('bad row without a number\n')
PY
if run topk ./topk.so --arg k=5 --input "$D/scores.csv" --output "$D/out-topk" --split-size 32K --json; then
    python3 - "$D/scores.csv" > "$D/topk.want" <<'PY'
import collections, sys
g = collections.defaultdict(list)
for line in open(sys.argv[1]):
    k, _, v = line.rstrip('\n').partition(',')
    try:
        n = int(v)
    except ValueError:
        continue
    g[k].append(n)
for k in sorted(g):
    print('%s\t%s' % (k, ','.join(map(str, sorted(g[k], reverse=True)[:5]))))
PY
    LC_ALL=C sort "$D"/out-topk/part-r-* > "$D/topk.got"
    LC_ALL=C sort "$D/topk.want" -o "$D/topk.want"
    cmp -s "$D/topk.got" "$D/topk.want" && pass "topk (k=5) equals python's per-key top 5" \
        || { show_diff "$D/topk.got" "$D/topk.want"; fail "topk output"; }
    python3 -c "import json,sys; r=json.load(open('$D/topk.log')); sys.exit(r['counters'].get('bad_rows') != 30)" \
        && pass "topk counted 30 bad rows (lmr_job_count)" || fail "bad_rows counter"
else
    cat "$D/topk.log"; fail "topk run"
fi
run topk-bad ./topk.so --arg k=99 --input "$D/scores.csv" --output "$D/out-topk-bad" \
    && fail "topk k=99 accepted" || { grep -q "k must be a whole number from 1 to 16" "$D/topk-bad.log" \
    && pass "bad plugin argument refused with the plugin's sentence" || { cat "$D/topk-bad.log"; fail "k=99 message"; }; }

# ---- HTTP status codes by hour ---------------------------------------------------------------------
python3 - "$D/access.log" <<'PY'
import random, sys
r = random.Random(11)
months = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split()
with open(sys.argv[1], 'w') as f:
    for i in range(20000):
        if i % 997 == 0:
            f.write('garbage line %d\n' % i)
            continue
        f.write('10.0.%d.%d - - [%02d/%s/2024:%02d:%02d:%02d +0000] "GET /p/%d?q=a%%20b HTTP/1.1" %d %d "-" "agent/1.0"\n' % (
            r.randint(0, 255), r.randint(0, 255), r.randint(1, 3), r.choice(months[:2]), r.randint(0, 23),
            r.randint(0, 59), r.randint(0, 59), r.randint(0, 99), r.choice([200, 200, 200, 301, 404, 500]),
            r.randint(0, 99999)))
PY
if run hs ./http_status.so --input "$D/access.log" --output "$D/out-hs" --split-size 64K --json; then
    awk 'BEGIN { split("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec", m, " "); for (i = 1; i <= 12; i++) mon[m[i]] = sprintf("%02d", i) }
         match($0, /\[[0-9][0-9]\/[A-Z][a-z][a-z]\/[0-9][0-9][0-9][0-9]:[0-9][0-9]/) {
             d = substr($0, RSTART + 1, RLENGTH - 1); split($0, q, "\""); split(q[3], s, " ")
             n[substr(d, 8, 4) "-" mon[substr(d, 4, 3)] "-" substr(d, 1, 2) "T" substr(d, 13, 2) "\t" s[1]]++ }
         END { for (k in n) print k "\t" n[k] }' "$D/access.log" | LC_ALL=C sort > "$D/hs.want"
    LC_ALL=C sort "$D"/out-hs/part-r-* > "$D/hs.got"
    cmp -s "$D/hs.got" "$D/hs.want" && pass "http_status equals awk's counts by hour and status ($(wc -l < "$D/hs.want") keys)" \
        || { show_diff "$D/hs.got" "$D/hs.want"; fail "http_status output"; }
    python3 -c "import json,sys; r=json.load(open('$D/hs.log')); sys.exit(r['counters'].get('malformed_lines') != 21 or r['phases']['map']['malformed_records'] != 21)" \
        && pass "http_status: 21 malformed lines counted" || fail "malformed_lines counter"
else
    cat "$D/hs.log"; fail "http_status run"
fi

# ---- the CMake package: find_package(lambdamr) + lambdamr_add_plugin ---------------------------------
mkdir -p "$D/cm"
cat > "$D/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.18)
project(myjobs C)
find_package(lambdamr REQUIRED)
lambdamr_add_plugin(topk "$D/src-topk/topk.c")
CM
if cmake -S "$D/cm" -B "$D/cm/build" -DCMAKE_PREFIX_PATH="$P" > "$D/cm.log" 2>&1 && cmake --build "$D/cm/build" >> "$D/cm.log" 2>&1 \
    && run topk-cmake "$D/cm/build/topk.so" --arg k=5 --input "$D/scores.csv" --output "$D/out-topk2"; then
    LC_ALL=C sort "$D"/out-topk2/part-r-* | cmp -s - "$D/topk.want" && pass "topk built with find_package(lambdamr) gives the same output" \
        || fail "topk (CMake build) output"
else
    cat "$D/cm.log" "$D/topk-cmake.log" 2>/dev/null | tail -20; fail "CMake package build"
fi

# ---- ABI mismatch refused, naming both versions ------------------------------------------------------
abi=$(awk '/^#define LMR_JOB_ABI_VERSION/ {print $3}' "$P/include/lambdamr/job.h")
if run abi ./abi_mismatch.so --input "$D/scores.csv" --output "$D/out-abi"; then
    fail "a plugin for another ABI version ran"
else
    grep -q "built for ABI version $((abi + 41)) but this lambdamr has job ABI version $abi" "$D/abi.log" \
        && pass "ABI mismatch refused naming both versions" || { cat "$D/abi.log"; fail "ABI mismatch message"; }
    [ ! -e "$D/out-abi/_SUCCESS" ] && [ -z "$(ls "$D/out-abi" 2>/dev/null)" ] && pass "nothing written for a refused plugin" \
        || fail "output written for a refused plugin"
fi

# ---- every op and function of job.h --------------------------------------------------------------------
printf 'b a c\nthe quick brown fox\njumps over the lazy dog\r\n\nlast line no newline' > "$D/aa1.txt"
seq 1 3000 | sed 's/$/ x y z the/' > "$D/aa2.txt"
if run aa ./all_api.so --input "$D/aa1.txt" --input "$D/aa2.txt" --output "$D/out-aa" --split-size 8K --reducers 2 --json; then
    shards=$(python3 -c "import json; r=json.load(open('$D/aa.log')); print(r['mappers'])")
    python3 - "$D" <<'PY' && pass "all_api: word counts, finish's emits, reverse key order per part, counters" || fail "all_api checks"
import collections, glob, json, re, sys
d = sys.argv[1]
r = json.load(open(d + '/aa.log'))
want = collections.Counter()
lines = 0
for f in ('aa1.txt', 'aa2.txt'):
    data = open(d + '/' + f, 'rb').read()
    lines += data.count(b'\n') + (0 if data.endswith(b'\n') else 1)
    want.update(w.decode() for w in re.split(rb'[ \t\r\n]+', data) if w)
got = {}
reducers = set()
for p in sorted(glob.glob(d + '/out-aa/part-r-*')):
    keys = []
    for line in open(p):
        k, _, v = line.rstrip('\n').partition('\t')
        if k.startswith('~reducer '):
            reducers.add(k.split()[1]); continue
        keys.append(k)
        got[k] = int(v)
    assert keys == sorted(keys, reverse=True), ('not in reverse order', p)
shards = got.pop('~shards')
assert got == dict(want), 'word counts differ'
c = r['counters']
assert c['lines'] == lines, (c, lines)
assert c['starts'] == shards and shards >= 2, (c, shards)
assert reducers == {'r-00000', 'r-00001'}, reducers
PY
else
    cat "$D/aa.log"; fail "all_api run"
fi
if run aa-fail ./all_api.so --arg fail=finish --input "$D/aa1.txt" --output "$D/out-aa-fail" --max-attempts 1; then
    fail "all_api fail=finish succeeded"
else
    grep -q "all_api: asked to fail in finish of m-00000" "$D/aa-fail.log" && pass "lmr_job_error's sentence is the task error" \
        || { cat "$D/aa-fail.log"; fail "lmr_job_error message"; }
fi

# Loaded once per execution environment: with one mapper environment, every map task after the
# first finds the plugin's static state of earlier tasks (a fresh load would start from zero).
seq 1 20000 > "$D/nums.txt"
if run aa-warm ./all_api.so --input "$D/nums.txt" --output "$D/out-aa-warm" --split-size 16K --concurrency 1 --json; then
    python3 -c "
import json, sys
r = json.load(open('$D/aa-warm.log'))
sys.exit(not (r['mappers'] >= 3 and r['counters'].get('warm_setups') == r['mappers'] - 1))" \
        && pass "plugin loaded once per environment (every later task saw the earlier tasks' static state)" \
        || fail "warm_setups: $(grep -o '"counters".\{0,120\}' "$D/aa-warm.log" | head -1)"
else
    cat "$D/aa-warm.log"; fail "all_api warm run"
fi
finish
