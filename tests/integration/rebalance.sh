#!/usr/bin/env bash
# Dynamic work rebalancing (docs/ARCHITECTURE.md, "Rebalancing"): one map task made slow
# (map-slow) leaves the other slot idle, so the coordinator asks it to split and runs the rest
# as tail tasks. Checked against an independent count (python): the output is exact and every
# input line was mapped exactly once (the map phase's records_in is the input's line count),
# the report counts the splits and marks the tail invocations; --rebalance off splits nothing;
# a task killed right after its cut is retried and the retry honours the cut; whole (gzip)
# shards are cut only at shard boundaries; the merge exchange covers the tails too; a job killed
# after a cut resumes with it; auto leaves floating-point sums unsplit.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
python3 - "$D" <<'PY'
import gzip, os, random, sys
d = sys.argv[1]
r = random.Random(16)
words = [''.join(r.choice('abcdefghijklmnop') for _ in range(r.randint(2, 9))) for _ in range(4000)]
def text(lines):
    return ''.join(' '.join(r.choice(words) for _ in range(r.randint(1, 12))) + '\n' for _ in range(lines))
os.makedirs(d + '/plain')
for i in range(3):
    with open('%s/plain/p%d.txt' % (d, i), 'w') as f:
        f.write(text(30000))
os.makedirs(d + '/gz')
for i in range(8):
    with gzip.open('%s/gz/g%d.txt.gz' % (d, i), 'wt') as f:
        f.write(text(6000))
PY
lines() { python3 -c "
import gzip, os, sys
n = 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        p = os.path.join(d, f)
        n += (gzip.open(p, 'rb') if p.endswith('.gz') else open(p, 'rb')).read().count(b'\n')
print(n)" "$1"; }
# field NAME OUT: a figure of the map phase in the report
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['phases']['map'][sys.argv[2]])" "$2/_lambdamr/report.json" "$1"; }
tails() { python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
print(sum(1 for i in r['invocations'] if i['phase'] == 'map' and i.get('tail')))" "$1/_lambdamr/report.json"; }
# A split leaves at least 64 KiB to each side (the default, 8 MiB, is for real inputs).
export LMR_SPLIT_MIN_BYTES=65536
# and the tail's start-up (20 ms by default, worth megabytes at this machine's rate) is not counted against
# these small tasks' tails.
export LMR_SPLIT_TAIL_START_MS=0
run() { "$LAMBDAMR" run wordcount --reducers 2 --concurrency 2 "$@" > "$D/run.log" 2>&1 || { cat "$D/run.log"; return 1; }; }

# 1. Map task 0 sleeps 1.5 s before reading: the other slot is idle meanwhile.
LMR_FAULT='map-slow:0:1' LMR_FAULT_SLOW_MS=1500 run --input "$D/plain" --output "$D/on" || fail "run with a slow map task"
check_wordcount "slow task, rebalanced: exact counts" "$D/on" "$D/plain"
want=$(lines "$D/plain")
[ "$(field records_in "$D/on")" -eq "$want" ] && pass "every input line mapped once ($want lines)" ||
    fail "map records_in $(field records_in "$D/on") != $want input lines"
planned=$(field planned_tasks "$D/on") splits=$(field splits "$D/on") tasks=$(field tasks "$D/on")
[ "$splits" -ge 1 ] && pass "the report counts $splits split(s)" || fail "no split was made ($splits)"
[ "$tasks" -eq $((planned + splits)) ] && pass "map tasks = planned $planned + $splits tails" ||
    fail "map tasks $tasks != planned $planned + splits $splits"
[ "$(tails "$D/on")" -ge "$splits" ] && pass "the tail tasks' invocations are marked in the report" ||
    fail "tail invocations: $(tails "$D/on") for $splits splits"

# 2. --rebalance off: the same job splits nothing.
LMR_FAULT='map-slow:0:1' LMR_FAULT_SLOW_MS=1500 run --input "$D/plain" --output "$D/off" --rebalance off ||
    fail "run with --rebalance off"
check_wordcount "--rebalance off: exact counts" "$D/off" "$D/plain"
[ "$(field splits "$D/off")" -eq 0 ] && [ "$(tails "$D/off")" -eq 0 ] &&
    [ "$(field tasks "$D/off")" -eq "$(field planned_tasks "$D/off")" ] && pass "--rebalance off: no split, no tail task" ||
    fail "--rebalance off split: $(field splits "$D/off") splits, $(tails "$D/off") tail invocations"
help=$("$LAMBDAMR" run --help 2>&1 || true)
grep -q -- '--rebalance auto|on|off' <<< "$help" && pass "run --help shows --rebalance" ||
    fail "--rebalance missing from run --help"
if "$LAMBDAMR" run wordcount --input "$D/plain" --output "$D/bad" --rebalance maybe > "$D/bad.log" 2>&1; then
    fail "--rebalance maybe was accepted"
else
    grep -q "not one of: auto, on, off" "$D/bad.log" && pass "--rebalance maybe: a clear error" || fail "unclear error: $(cat "$D/bad.log")"
fi

# 3. Task 0's first attempt dies right after writing its cut: the retry honours the cut.
LMR_LOG=info LMR_FAULT='map-slow:0:1,map-cut-kill:0:1' LMR_FAULT_SLOW_MS=1500 run --input "$D/plain" --output "$D/kill" ||
    fail "run with a task killed after its cut"
check_wordcount "killed after its cut, retried: exact counts" "$D/kill" "$D/plain"
[ "$(field records_in "$D/kill")" -eq "$want" ] && pass "killed after its cut: every line mapped once" ||
    fail "killed after its cut: records_in $(field records_in "$D/kill") != $want"
[ "$(field failed_attempts "$D/kill")" -ge 1 ] && [ "$(field splits "$D/kill")" -ge 1 ] &&
    pass "the killed attempt failed and the task was split" || fail "expected a failed attempt and a split"
grep -rqs "an earlier attempt cut the task" "$D/kill/_lambdamr" "$D/run.log" && pass "the retry read the earlier attempt's cut" ||
    fail "the retry did not say it honoured the cut"

# 4. Whole shards (gzip) are cut at shard boundaries only.
# (--split-size: four tasks of two files; the default packs this small input into one task, and a slot runs
# one task at a time: nothing would be idle.)
LMR_FAULT='map-slow:0:1' LMR_FAULT_SLOW_MS=1500 run --input "$D/gz" --output "$D/gzo" --split-size 300K || fail "gzip run"
check_wordcount "gzip shards, rebalanced: exact counts" "$D/gzo" "$D/gz"
[ "$(field splits "$D/gzo")" -ge 1 ] && pass "gzip: split at a shard boundary" || fail "gzip: no split"
[ "$(field records_in "$D/gzo")" -eq "$(lines "$D/gz")" ] && pass "gzip: every line mapped once" ||
    fail "gzip: records_in $(field records_in "$D/gzo") != $(lines "$D/gz")"

# 5. The merge exchange covers the tail tasks (its merge tasks are counted at the end of the map phase).
LMR_FAULT='map-slow:0:1' LMR_FAULT_SLOW_MS=1500 run --input "$D/plain" --output "$D/merge" --exchange merge \
    --merge-fan-in 2 || fail "merge exchange run"
check_wordcount "merge exchange, rebalanced: exact counts" "$D/merge" "$D/plain"
python3 - "$D/merge/_lambdamr/report.json" <<'PY' && pass "merge tasks cover every map task" || fail "merge tasks do not cover the tails"
import json, math, sys
r = json.load(open(sys.argv[1]))
m = r['phases']['map']['tasks']
sys.exit(0 if m > r['phases']['map']['planned_tasks'] and r['exchange']['merge_tasks'] == math.ceil(m / 2) else 1)
PY
# 7. auto (the default) rebalances only jobs whose output cannot depend on the cut: aggregate count yes,
# aggregate sum (floating point: a split re-associates partial sums) only with --rebalance on.
python3 - "$D/csv" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(7)
for i in range(3):
    with open(os.path.join(sys.argv[1], 'c%d.csv' % i), 'w') as f:
        for _ in range(60000):
            f.write('k%d,%d.%02d\n' % (r.randint(0, 999), r.randint(0, 9999), r.randint(0, 99)))
PY
agg() { LMR_FAULT='map-slow:0:1' LMR_FAULT_SLOW_MS=1500 "$LAMBDAMR" run aggregate --input "$D/csv" --delimiter , --key 1 \
    --value 2 --reducers 2 --concurrency 2 "$@" > "$D/agg.log" 2>&1 || { cat "$D/agg.log"; return 1; }; }
agg --op count --output "$D/cnt" || fail "aggregate count"
agg --op sum --output "$D/sum" || fail "aggregate sum"
agg --op sum --output "$D/sum-on" --rebalance on || fail "aggregate sum --rebalance on"
python3 - "$D" <<'PY' && pass "auto: count split, sum not; --rebalance on: sum split, sums right" || fail "aggregate and auto"
import collections, glob, json, os, sys
d = sys.argv[1]
cnt, tot = collections.Counter(), collections.defaultdict(float)
for p in glob.glob(d + '/csv/*.csv'):
    for line in open(p):
        k, v = line.rstrip('\n').split(',')
        cnt[k] += 1
        tot[k] += float(v)
def out(name):
    rows = {}
    for p in glob.glob(d + '/' + name + '/part-r-*'):
        for line in open(p):
            k, v = line.rstrip('\n').split('\t')
            rows[k] = v
    return rows
def rep(name):
    return json.load(open(d + '/' + name + '/_lambdamr/report.json'))
assert {k: int(v) for k, v in out('cnt').items()} == dict(cnt), 'count differs'
assert rep('cnt')['rebalance'] and rep('cnt')['phases']['map']['splits'] >= 1, 'count: no split'
assert not rep('sum')['rebalance'] and rep('sum')['phases']['map']['splits'] == 0, 'sum: split under auto'
assert rep('sum-on')['rebalance'] and rep('sum-on')['phases']['map']['splits'] >= 1, 'sum on: no split'
for name in ('sum', 'sum-on'):
    o = out(name)
    assert set(o) == set(tot) and all(abs(float(o[k]) - tot[k]) <= 1e-9 * max(1, abs(tot[k])) for k in tot), name
PY

# 6. Resume: the driver (and with it the embedded service, the coordinator and the mappers) is killed
# right after task 0 cut its input; the same command again finds the cut (and the tail, if it was made),
# and the output is exact.
LMR_FAULT='map-slow:0:1' LMR_FAULT_SLOW_MS=1500 "$LAMBDAMR" run wordcount --reducers 2 --concurrency 2 \
    --input "$D/plain" --output "$D/res" > "$D/res1.log" 2>&1 &
pid=$!
for _ in $(seq 400); do
    compgen -G "$D/res/_lambdamr/work/*/map/m-00000/cut.json" > /dev/null && break
    sleep 0.01
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if compgen -G "$D/res/_lambdamr/work/*/map/m-00000/cut.json" > /dev/null && [ ! -f "$D/res/_SUCCESS" ]; then
    run --input "$D/plain" --output "$D/res" || fail "the resumed run after a cut"
    check_wordcount "resumed after a cut: exact counts" "$D/res" "$D/plain"
    python3 - "$D/res/_lambdamr/report.json" <<'PY' && pass "the resumed job ran or reused the tail" || fail "the resumed job has no tail"
import json, sys
r = json.load(open(sys.argv[1]))
m = r['phases']['map']
sys.exit(0 if m['tasks'] > m['planned_tasks'] else 1)
PY
else
    fail "the first run did not stop after the cut (no cut.json, or it finished)"
fi
finish
