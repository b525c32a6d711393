#!/usr/bin/env bash
# The multi-stage exchange at the issue's shape: 2,000 map tasks and 200 reducers, every mapper
# emitting to every reducer (each 16 KiB shard holds the whole 2,500-word vocabulary, so every
# map output has all 200 partitions). Run with --exchange direct and --exchange merge: the part
# files are byte-identical (and equal to an independent word count), and the request counts in
# the reports prove the shape: direct reducers read M x R = 400,000 frames; with merge tasks of
# fan-in G the reducers read R x ceil(M/G) and all requests together stay within a small factor
# of M + R x M/G. The merge run also sends every reducer's frame list through the store
# (LMR_FRAMES_INLINE_MAX_BYTES=0), kills one merge task's first attempt (it is retried) and
# delivers another twice (the loser's object is removed), and its dry run counts the same tasks,
# invocations and requests per stage as the run. Last, a small merge job whose driver is
# SIGKILLed in the merge phase resumes with its committed map and merge tasks reused.
source "$(dirname "$0")/lib/common.sh"
# On tmpfs when there is one: the run creates some 20,000 small files, and on ext4 the kernel's
# file creation was 40% of the run's CPU time.
D=$(mktemp -d /dev/shm/lmr-exchange-XXXXXX 2> /dev/null) || D=$TEST_TMP/work
mkdir -p "$D"
trap 'rm -rf "$D"; cleanup_tmp' EXIT
M=2000 R=200 SPLIT=16384
python3 - "$D/in" $M $SPLIT <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
M, split = int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(13)
vocab = ['w%04d' % i for i in range(2500)]  # 6 bytes a word with its separator: 15,000 bytes
rng.shuffle(vocab)
# One order, repeated: any 16 KiB window (about 2,700 words) holds every word of the vocabulary.
cycle = ''.join(' '.join(vocab[i:i + 10]) + '\n' for i in range(0, len(vocab), 10)).encode()
out = cycle * (M * split // len(cycle) + 1)
open(os.path.join(sys.argv[1], 'words.txt'), 'wb').write(bytes(out[:M * split - 1]) + b'\n')
PY
COMMON=(wordcount --input "$D/in" --reducers $R --split-size $SPLIT --concurrency 4 --json)
report() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }

t0=$(date +%s.%N)
if "$LAMBDAMR" run "${COMMON[@]}" --output "$D/direct" --exchange direct > "$D/direct.json" 2> "$D/direct.err"; then
    pass "direct exchange ($(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s)"
else
    tail -20 "$D/direct.err"
    fail "direct exchange"
fi
check_wordcount "direct exchange" "$D/direct" "$D/in"

t0=$(date +%s.%N)
if LMR_FRAMES_INLINE_MAX_BYTES=0 LMR_FAULT="merge-kill:3:1,merge-duplicate:0:1" "$LAMBDAMR" run "${COMMON[@]}" --output "$D/merge" \
    --exchange merge > "$D/merge.json" 2> "$D/merge.err"; then
    pass "merge exchange ($(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s)"
else
    tail -20 "$D/merge.err"
    fail "merge exchange"
fi
LMR_FRAMES_INLINE_MAX_BYTES=0 "$LAMBDAMR" run "${COMMON[@]}" --output "$D/merge-est" --exchange merge --dry-run \
    > "$D/merge-est.json" 2> "$D/est.err" || { cat "$D/est.err"; fail "merge dry run"; }

same=1
for p in "$D/direct"/part-r-*; do cmp -s "$p" "$D/merge/$(basename "$p")" || same=0; done
[ "$(ls "$D/direct" | grep -c part-r-)" = $R ] && [ "$(ls "$D/merge" | grep -c part-r-)" = $R ] || same=0
[ $same = 1 ] && pass "direct and merge outputs are byte-identical ($R parts)" || fail "outputs differ"

if python3 - "$D/direct.json" "$D/merge.json" "$D/merge-est.json" $M $R <<'PY'; then
import json, math, sys
d, m, e = (json.load(open(p)) for p in sys.argv[1:4])
M, R = int(sys.argv[4]), int(sys.argv[5])
ok = True
def check(name, cond, detail):
    global ok
    print('  %s %-58s %s' % ('ok  ' if cond else 'FAIL', name, detail))
    ok = ok and cond
def total(rep):
    return sum(rep['store_requests'].values())
dp, mp = d['phases'], m['phases']
check('direct: %d map tasks, %d reducers, no merge stage' % (M, R),
      d['mappers'] == M and d['reducers'] == R and 'merge' not in dp and d['exchange']['mode'] == 'direct',
      '%d x %d, exchange %s' % (d['mappers'], d['reducers'], d['exchange']['mode']))
check('direct: every mapper emitted to every reducer (frames = M x R)', dp['reduce']['frames'] == M * R,
      'frames %d' % dp['reduce']['frames'])
# (a reducer of 2,000 frames merges in two passes: its two scratch runs are read back)
check('direct: reduce GETs = M x R (+ 2 scratch runs a reducer)',
      M * R <= dp['reduce']['store_requests']['get'] <= M * R + 2 * R,
      'reduce GET %d' % dp['reduce']['store_requests']['get'])
ex = m['exchange']
G, NG = ex['fan_in'], ex['merge_tasks']
check('merge: fan-in G and ceil(M/G) merge tasks', G >= 2 and NG == math.ceil(M / G) and mp['merge']['tasks'] == NG,
      'G %d, %d merge tasks' % (G, NG))
check('merge: merge tasks read every map output once', mp['merge']['sources'] == M,
      'sources %d' % mp['merge']['sources'])
check('merge: one merge attempt killed and retried, one delivered twice', mp['merge']['attempts'] == NG + 2 and
      mp['merge']['failed_attempts'] == 1, 'attempts %d' % mp['merge']['attempts'])
check('merge: merge GETs = 2 per map output (commit record + object)', mp['merge']['store_requests']['get'] <= 2 * M + 2 * G,
      'merge GET %d' % mp['merge']['store_requests']['get'])
check('merge: reducers read R x ceil(M/G) frames', mp['reduce']['frames'] == R * NG,
      'frames %d' % mp['reduce']['frames'])
check('merge: reduce GETs = R x ceil(M/G) + R frame lists', mp['reduce']['store_requests']['get'] == R * NG + R,
      'reduce GET %d' % mp['reduce']['store_requests']['get'])
check('merge: every frame list went through the store', ex['frame_lists_stored'] == R,
      'stored %d' % ex['frame_lists_stored'])
bound = M + R * M / G
check('merge: all requests within 3x of M + R x M/G', total(m) <= 3 * bound,
      'total %d, M + R x M/G = %d' % (total(m), bound))
check('direct: all requests over M x R', total(d) >= M * R, 'total %d' % total(d))
check('merge makes over 10x fewer requests than direct', 10 * total(m) < total(d),
      '%d vs %d' % (total(m), total(d)))
inv = [i['phase'] for i in m['invocations']]
check('merge: the invocations of every stage are in the report',
      inv.count('map') == M and inv.count('merge') == NG + 2 and inv.count('reduce') == R,
      'map %d, merge %d, reduce %d' % (inv.count('map'), inv.count('merge'), inv.count('reduce')))
pairs = [('merge tasks', e['exchange']['merge_tasks'], NG),
         ('invocations', e['invocations']['total'], len(m['invocations']) - 2),  # less the two extra attempts
         ('map GETs', e['requests']['map']['get'], mp['map']['store_requests']['get']),
         ('map PUTs', e['requests']['map']['put'], mp['map']['store_requests']['put']),
         ('merge GETs', e['requests']['merge']['get'], mp['merge']['store_requests']['get']),
         ('merge PUTs', e['requests']['merge']['put'], mp['merge']['store_requests']['put']),
         ('reduce GETs', e['requests']['reduce']['get'], mp['reduce']['store_requests']['get']),
         ('reduce PUTs', e['requests']['reduce']['put'], mp['reduce']['store_requests']['put'])]
for n, a, b in pairs:
    check('dry run = run: %s' % n, a == b, 'estimate %s, run %s' % (a, b))
sys.exit(0 if ok else 1)
PY
    pass "request counts from the reports prove the shape; the dry run counts the merge stage"
else
    fail "request counts"
fi

# auto: 2,000 x 200 merges; a small job stays direct. Bad flags are usage errors.
"$LAMBDAMR" run "${COMMON[@]}" --output "$D/auto" --dry-run > "$D/auto.json" 2> "$D/auto.err" || cat "$D/auto.err"
[ "$(report "$D/auto.json" "['exchange']['mode']")" = merge ] && pass "auto merges at $M x $R" || fail "auto at $M x $R"
"$LAMBDAMR" run wordcount --input "$D/in" --reducers 2 --split-size 1M --json --output "$D/auto2" --dry-run \
    > "$D/auto2.json" 2> "$D/auto.err" || cat "$D/auto.err"
[ "$(report "$D/auto2.json" "['exchange']['mode']")" = direct ] && pass "auto stays direct for a small job" ||
    fail "auto for a small job"
for bad in "--exchange sideways" "--merge-fan-in 1"; do
    rc=0
    # shellcheck disable=SC2086
    "$LAMBDAMR" run "${COMMON[@]}" --output "$D/bad" $bad > "$D/bad.out" 2>&1 || rc=$?
    [ $rc = 2 ] && [ ! -e "$D/bad" ] && pass "$bad refused" || { cat "$D/bad.out"; fail "$bad (exit $rc)"; }
done

# Resume: the driver SIGKILLed once merge tasks have committed; the same command again reuses the
# committed map and merge tasks and gives the clean run's output.
mkdir -p "$D/small"
head -c 480000 "$D/in/words.txt" > "$D/small/w.txt"
SMALL=(wordcount --input "$D/small" --reducers 5 --split-size 16384 --exchange merge --merge-fan-in 3 --concurrency 2)
"$LAMBDAMR" run "${SMALL[@]}" --output "$D/s-clean" > "$D/s.log" 2>&1 || { cat "$D/s.log"; fail "small clean run"; }
LMR_FAULT='merge-slow:*:1' LMR_FAULT_SLOW_MS=400 "$LAMBDAMR" run "${SMALL[@]}" --output "$D/s-kill" > "$D/k.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    [ "$(find "$D/s-kill/_lambdamr/work" -path '*/merge/g-*/commit.json' 2>/dev/null | wc -l)" -ge 2 ] && break
    sleep 0.05
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
committed=$(find "$D/s-kill/_lambdamr/work" -path '*/merge/g-*/commit.json' 2>/dev/null | wc -l)
if [ "$committed" -ge 2 ] && [ ! -e "$D/s-kill/_SUCCESS" ]; then
    pass "driver killed in the merge phase ($committed merge tasks committed)"
else
    fail "the kill did not land in the merge phase ($committed merge commits)"
fi
sleep 0.5
"$LAMBDAMR" run "${SMALL[@]}" --output "$D/s-kill" > "$D/r.log" 2>&1 || { cat "$D/r.log"; fail "resumed run"; }
if diff -q <(cat "$D/s-clean"/part-r-*) <(cat "$D/s-kill"/part-r-*) > /dev/null &&
    python3 - "$D/s-kill/_lambdamr/report.json" "$committed" <<'PY'; then
import json, sys
ph = json.load(open(sys.argv[1]))['phases']
print('  resumed: map reused %d of %d, merge reused %d of %d' % (ph['map']['reused'], ph['map']['tasks'],
      ph['merge']['reused'], ph['merge']['tasks']))
sys.exit(0 if ph['map']['reused'] == ph['map']['tasks'] and ph['merge']['reused'] >= int(sys.argv[2]) else 1)
PY
    pass "the resumed job reuses its committed map and merge tasks; output identical to a clean run"
else
    fail "resume of a merge job"
fi
finish
