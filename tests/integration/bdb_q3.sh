#!/usr/bin/env bash
# BDB Query 3 (bdb-q3) against SQLite (python3's sqlite3) on a generated data set, every join
# strategy (filter-broadcast: filtered visits joined with each rankings shard, two stages;
# broadcast: rankings loaded by every mapper; reduce-side in two stages): every sourceIP, SUM(adRevenue) and
# AVG(pageRank) equal to 1e-9 relative, and the printed top row. At least 256 MiB of uservisits
# in the Release build (smaller under the sanitizers).
set -euo pipefail
BIN="${LMR_BIN_DIR:?LMR_BIN_DIR must point at build/bin}"
LMR="$BIN/lambdamr"
work="$(mktemp -d /tmp/lmr-q3.XXXXXX)"
trap 'rm -rf "$work"' EXIT
pass() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    exit 1
}
size=290M # 90 % uservisits: 261 MiB
[ "${LMR_SANITIZE:-OFF}" = "ON" ] && size=24M
from=1980-01-01 to=1980-04-01
"$LMR" gen bdb --size "$size" --out "$work/bdb" --seed 13 --quiet
uv_bytes=$(cat "$work"/bdb/uservisits/part-* | wc -c)
[ "${LMR_SANITIZE:-OFF}" = "ON" ] || [ "$uv_bytes" -ge $((256 << 20)) ] || fail "only $uv_bytes bytes of uservisits"

python3 - "$work/bdb" "$from" "$to" "$work/expected.tsv" <<'PY'
import glob, sqlite3, sys
d, lo, hi, out = sys.argv[1:]
db = sqlite3.connect(':memory:')
db.execute('CREATE TABLE rankings (pageURL TEXT PRIMARY KEY, pageRank INTEGER, avgDuration INTEGER)')
db.execute('CREATE TABLE uservisits (sourceIP TEXT, destURL TEXT, visitDate TEXT, adRevenue REAL)')
for p in glob.glob(d + '/rankings/part-*'):
    with open(p) as f:
        db.executemany('INSERT INTO rankings VALUES (?, ?, ?)', (l.rstrip('\n').split(',') for l in f))
year = lo[:4]
for p in glob.glob(d + '/uservisits/part-*'):
    with open(p) as f:
        # only rows of the query's year reach SQLite (the WHERE below is exact)
        db.executemany('INSERT INTO uservisits VALUES (?, ?, ?, ?)',
                       (r[:4] for r in (l.split(',', 4) for l in f) if r[2][:4] == year))
rows = db.execute('''SELECT sourceIP, SUM(adRevenue), AVG(pageRank) FROM rankings R JOIN uservisits UV
                     ON R.pageURL = UV.destURL WHERE UV.visitDate BETWEEN ? AND ? GROUP BY UV.sourceIP''',
                  (lo, hi)).fetchall()
assert len(rows) > 100, len(rows)
with open(out, 'w') as f:
    for ip, rev, rank in rows:
        f.write('%s\t%r\t%r\n' % (ip, rev, rank))
PY

compare() { # OUTDIR NAME
    python3 - "$1" "$work/expected.tsv" <<'PY' && pass "$2: every sourceIP, sums and averages equal SQLite's to 1e-9" || fail "$2 differs from SQLite"
import glob, math, sys
got = {}
for p in glob.glob(sys.argv[1] + '/part-*'):
    for l in open(p):
        ip, rev, rank = l.rstrip('\n').split('\t')
        assert ip not in got, ip
        got[ip] = (float(rev), float(rank))
want = {}
for l in open(sys.argv[2]):
    ip, rev, rank = l.rstrip('\n').split('\t')
    want[ip] = (float(rev), float(rank))
assert set(got) == set(want), (len(got), len(want), list(set(got) ^ set(want))[:5])
for ip, (r, k) in want.items():
    g = got[ip]
    assert math.isclose(g[0], r, rel_tol=1e-9, abs_tol=1e-9) and math.isclose(g[1], k, rel_tol=1e-9), (ip, g, (r, k))
print('  %d sourceIPs' % len(want))
PY
}
top_line() {
    # awk reads all of sort's output: no SIGPIPE for sort under pipefail
    sort -t "$(printf '\t')" -k2,2gr "$work/expected.tsv" | awk -F '\t' 'NR == 1 {print $1}'
}

for strategy in filter-broadcast broadcast reduce; do
    "$LMR" run bdb-q3 --input "$work/bdb" --output "$work/out-$strategy" --date-from $from --date-to $to \
        --join $strategy > "$work/$strategy.log" 2>&1 || {
        cat "$work/$strategy.log"
        fail "bdb-q3 --join $strategy exited non-zero"
    }
    grep -q "join strategy.*$strategy" "$work/$strategy.log" || fail "$strategy: the strategy is not reported"
    compare "$work/out-$strategy" "$strategy"
    grep -q "top      sourceIP $(top_line):" "$work/$strategy.log" && pass "$strategy: top row printed" ||
        fail "$strategy: top row ($(top_line)) not printed: $(grep top "$work/$strategy.log")"
done
for strategy in filter-broadcast reduce; do
    ls "$work/out-$strategy/_lambdamr/stage-1"/part-* > /dev/null 2>&1 && fail "$strategy: the intermediate stage's parts were left"
done
pass "the intermediate stage's output deleted"
# auto: filter the visits, then join them with each rankings shard (every table read once)
"$LMR" run bdb-q3 --input "$work/bdb" --output "$work/out-auto" --date-from $from --date-to $to > "$work/auto.log" 2>&1 ||
    fail "bdb-q3 auto"
grep -q "join strategy filter-broadcast" "$work/auto.log" && pass "auto chooses filter-broadcast" ||
    fail "auto strategy: $(head -2 "$work/auto.log")"
# a rankings shard's table past its cap (2M here): joined in several passes, same answer
"$LMR" run bdb-q3 --input "$work/bdb" --output "$work/out-small" --date-from $from --date-to $to \
    --arg probe-table=2M > "$work/small.log" 2>&1 || { cat "$work/small.log"; fail "bdb-q3 with a 2M table"; }
compare "$work/out-small" "filter-broadcast, rankings shards past the table's cap"
python3 - "$work/out-small/_lambdamr/report.json" <<'PY' && pass "the full table was joined in extra passes" || fail "no extra probe pass counted"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['counters'].get('q3_early_probe_passes', 0) > 0, r['counters']
PY

# bad input
if "$LMR" run bdb-q3 --input "$work/bdb" --output "$work/bad" --date-from 1980-1-1 --date-to $to > "$work/bad.log" 2>&1; then
    fail "a bad date was accepted"
fi
grep -q "YYYY-MM-DD" "$work/bad.log" || fail "bad date error: $(cat "$work/bad.log")"
if "$LMR" run bdb-q3 --input "$work/nowhere" --output "$work/bad" --date-from $from --date-to $to > "$work/bad.log" 2>&1; then
    fail "a missing data set was accepted"
fi
! ls "$work/bad"/part-* > /dev/null 2>&1 || fail "bad input left part files"
pass "bad dates and a missing data set refused"

# a dry run estimates the first stage of the two-stage plan and writes nothing
"$LMR" run bdb-q3 --input "$work/bdb" --output "$work/dry" --date-from $from --date-to $to --join reduce --dry-run \
    > "$work/dry.log" 2>&1 || { cat "$work/dry.log"; fail "dry run"; }
grep -q "stage 1/2: join" "$work/dry.log" && grep -q "stage 2/2: bdb-q3 reads stage 1's output" "$work/dry.log" &&
    grep -q "lambdamr estimate" "$work/dry.log" || fail "dry run output: $(cat "$work/dry.log")"
[ ! -e "$work/dry" ] || [ -z "$(find "$work/dry" -type f)" ] || fail "the dry run wrote files"
pass "dry run of the two-stage plan"
