#!/usr/bin/env bash
# The sort built-in (TeraSort) and `lambdamr gen sort`, checked independently:
# - the generator's format (gensort's ASCII layout) and determinism, by Python;
# - total order: the part files concatenated in name order equal `LC_ALL=C sort` of the input
#   (whole-line sort), or are ordered by key and hold the same lines (--key bytes:A-B, --key N);
# - partition balance within 15 % of N/R, on uniform and on heavily skewed keys, with the
#   sample's GETs bounded (the plan phase's reads in the report);
# - a map task over more than its memory budget spills and stays within its memory;
# - bad keys and a hand-made bad ranges argument fail clearly with nothing written.
set -euo pipefail
BIN="${LMR_BIN_DIR:?LMR_BIN_DIR must point at build/bin}"
LMR="$BIN/lambdamr"
work="$(mktemp -d /tmp/lmr-sort.XXXXXX)"
trap 'rm -rf "$work"' EXIT
pass() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    exit 1
}

size=16M
[ "${LMR_SANITIZE:-OFF}" = "ON" ] && size=6M

# ---- the generator ----
"$LMR" gen sort --size "$size" --out "$work/u" --seed 3 --files 3 --quiet
"$LMR" gen sort --size "$size" --out "$work/u2" --seed 3 --files 5 --threads 1 --quiet
cmp <(cat "$work"/u/part-*) <(cat "$work"/u2/part-*) && pass "same bytes with other --files/--threads" ||
    fail "generator not deterministic"
"$LMR" gen sort --size "$size" --out "$work/k" --seed 3 --files 2 --skew --quiet
python3 - "$work/u" "$work/k" <<'PY' && pass "gensort ASCII format (100-byte records, printable keys, record numbers)" || fail "format"
import glob, sys, collections
for d, skew in ((sys.argv[1], False), (sys.argv[2], True)):
    data = b''.join(open(p, 'rb').read() for p in sorted(glob.glob(d + '/part-*')))
    assert len(data) % 100 == 0 and data, len(data)
    n = len(data) // 100
    keys = collections.Counter()
    for i in range(n):
        r = data[i * 100:(i + 1) * 100]
        assert r[98:] == b'\r\n', (i, r)
        assert all(32 <= c <= 126 for c in r[:10]), (i, r[:10])
        assert r[10:12] == b'  ' and r[44:46] == b'  ', (i, r)
        assert int(r[12:44], 16) == i, (i, r[12:44])
        assert all(c in b'0123456789ABCDEF' for c in r[46:98]), (i, r)
        keys[r[:10]] += 1
    blank = keys[b' ' * 10] / n
    if skew:
        assert 0.08 < blank < 0.14, blank  # 0.8^10 = 0.107
    else:
        assert len(keys) > 0.99 * n, (len(keys), n)
PY

check_total() { # DIR INPUT_DIR NAME
    cmp <(cat "$1"/part-r-*) <(LC_ALL=C sort "$2"/part-*) && pass "$3: parts in name order = LC_ALL=C sort" ||
        fail "$3: output differs from LC_ALL=C sort"
}
check_balance() { # DIR R NAME
    python3 - "$1" "$2" <<'PY' && pass "$3: $2 partitions within 15% of N/R, sample GETs bounded" || fail "$3: balance"
import glob, json, sys
d, R = sys.argv[1], int(sys.argv[2])
parts = sorted(glob.glob(d + '/part-r-*'))
assert len(parts) == R, parts
counts = [sum(1 for _ in open(p, 'rb')) for p in parts]
mean = sum(counts) / R
assert max(abs(c - mean) for c in counts) <= 0.15 * mean, counts
r = json.load(open(d + '/_lambdamr/report.json'))
# the driver's own GETs: the sample (at most 64) plus commit records and the like
assert r['store_requests']['get'] - sum(r['phases'][p]['store_requests']['get'] for p in ('map', 'reduce')) <= 64 + 2 * R + 16, r['store_requests']
print('  partition lines:', counts)
PY
}
run() { # NAME ARGS...
    local name="$1"
    shift
    "$LMR" run sort "$@" --output "$work/out-$name" > "$work/$name.log" 2>&1 || {
        cat "$work/$name.log"
        fail "$name: lambdamr run sort exited non-zero"
    }
}

run uniform --input "$work/u" --reducers 4 --split-size 2M
run one --input "$work/u" --reducers 1
check_total "$work/out-one" "$work/u" "one reducer (\\r\\n kept)"
check_total "$work/out-uniform" "$work/u" uniform
check_balance "$work/out-uniform" 4 uniform
run skew --input "$work/k" --reducers 8 --split-size 2M
check_total "$work/out-skew" "$work/k" skewed
check_balance "$work/out-skew" 8 skewed

# On the 10-byte key (ties allowed: 11 % of the skewed records share the blank key, < 1/5).
run key --input "$work/k" --reducers 5 --key bytes:1-10 --split-size 2M
python3 - "$work/out-key" "$work/k" <<'PY' && pass "--key bytes:1-10: ordered by key, same lines" || fail "--key bytes"
import glob, sys
out = b''.join(open(p, 'rb').read() for p in sorted(glob.glob(sys.argv[1] + '/part-r-*'))).split(b'\n')[:-1]
inp = b''.join(open(p, 'rb').read() for p in sorted(glob.glob(sys.argv[2] + '/part-*'))).split(b'\n')[:-1]
keys = [l[:10] for l in out]
assert keys == sorted(keys)
assert sorted(out) == sorted(inp)
PY
check_balance "$work/out-key" 5 "skewed, --key bytes:1-10"

# A delimited field as the key; lines end in \n only.
python3 - "$work/csv" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
rnd = random.Random(5)
with open(sys.argv[1] + '/t.csv', 'w') as f:
    for i in range(30000):
        f.write('%d,%s,%d\n' % (i, ''.join(rnd.choice('abcdefgh') for _ in range(rnd.randint(0, 6))), rnd.randint(0, 99)))
PY
run field --input "$work/csv" --reducers 3 --key 2 --delimiter , --split-size 64K
python3 - "$work/out-field" "$work/csv/t.csv" <<'PY' && pass "--key 2 --delimiter ,: ordered by field 2, same lines" || fail "--key field"
import glob, sys
out = b''.join(open(p, 'rb').read() for p in sorted(glob.glob(sys.argv[1] + '/part-r-*'))).split(b'\n')[:-1]
inp = open(sys.argv[2], 'rb').read().split(b'\n')[:-1]
keys = [l.split(b',')[1] for l in out]
assert keys == sorted(keys) and sorted(out) == sorted(inp)
PY

# More than the map task's budget (55 % of 128 MB): spills, memory within the function's size.
if [ "${LMR_SANITIZE:-OFF}" != "ON" ]; then
    "$LMR" gen sort --size 80M --out "$work/big" --seed 9 --quiet
    run spill --input "$work/big" --reducers 3 --mappers 1 --memory 128
    check_total "$work/out-spill" "$work/big" "spilling map task"
    python3 - "$work/out-spill/_lambdamr/report.json" <<'PY' && pass "spilled, no task above 128 MB" || fail "spill figures"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['phases']['map']['spills'] >= 1, r['phases']['map']
for inv in r['invocations']:
    assert 0 < inv['max_memory_used_mb'] <= 128, inv
PY
fi

# Bad input: a clear error, non-zero exit, nothing written.
for bad in "--key bytes:5-2" "--key zero" "--arg ranges=zz"; do
    # shellcheck disable=SC2086
    if "$LMR" run sort --input "$work/u" --output "$work/bad" $bad > "$work/bad.log" 2>&1; then
        fail "sort $bad succeeded"
    fi
    grep -qiE "key|range|boundar" "$work/bad.log" || { cat "$work/bad.log"; fail "sort $bad: unclear error"; }
    ! ls "$work/bad"/part-* > /dev/null 2>&1 || fail "sort $bad left part files"
done
pass "bad --key and ranges arguments refused"
