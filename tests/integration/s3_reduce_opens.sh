#!/usr/bin/env bash
# The reducer and the merge task open their inputs several at once (issue 16, "under latency"):
# on S3 each open waits for a first byte, and opened one after another a reducer of M frames
# waited M first-byte latencies before merging anything. On lmr_s3server behind
# tests/tools/s3_fault_proxy.py (60 ms to every first byte; its --request-log gives each
# exchange's start and end), with LMR_MERGE_OPENS_IN_FLIGHT=6:
#   1. one reducer over 24 map outputs: its 24 frame GETs (one each) overlap, at least 3 and at
#      most 6 in flight at once; the same job with LMR_MERGE_OPENS_IN_FLIGHT=1 has exactly 1 in
#      flight (so the measure sees the difference); both outputs equal the oracle's;
#   2. the multi-stage exchange (two merge tasks of 12 map outputs): each merge task's 12 source
#      GETs overlap the same way (3 to 6 in flight), the output equals the oracle's;
#   3. a sort of ~6 MiB of incompressible lines in 128 MB functions: the reducer's frame readers
#      (one per map task, at least 4) share the read-ahead share of memory (10% of 128 MiB), so
#      no frame GET asks for more than the store's largest part under an equal part of it (a
#      frame of ~0.8 MiB would otherwise be one GET), some frame takes more than one GET, and
#      the output is the input sorted.
# Not timed: the checks count requests in flight, never durations.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh" # lmr_on_exit
source "$(dirname "$0")/lib/s3server.sh"
s3_test_init s3server ro-in ro-out
python3 - "$D/in" "$D/sort-in" <<'PY'
import base64, os, random, sys
r = random.Random(24)
os.makedirs(sys.argv[1])
words = ['w%d' % i for i in range(3000)] + ['Zeta', 'naïve']
for i in range(24):  # 24 files of exactly 10,000 bytes: with --split-size 10000, one map task each
    text = ''
    while len(text.encode()) < 9900:
        text += ' '.join(r.choice(words) for _ in range(r.randint(1, 10))) + '\n'
    text += 'pad' + 'x' * (10000 - len(text.encode()) - 4) + '\n'
    open(os.path.join(sys.argv[1], 'part-%02d.txt' % i), 'w').write(text)
os.makedirs(sys.argv[2])
with open(os.path.join(sys.argv[2], 'lines.txt'), 'w') as f:  # ~6 MiB that zstd cannot shrink much
    for _ in range(6 * 1024 * 1024 // 81):
        f.write(base64.b64encode(r.randbytes(60)).decode() + '\n')
PY
aws s3 cp --recursive --quiet "$D/in" s3://ro-in/in/
aws s3 cp --recursive --quiet "$D/sort-in" s3://ro-in/sort/

start_proxy() { # NAME: starts the proxy with 60 ms to first byte, sets PROXY_URL and PROXY_PID
    python3 "$PROXY" --upstream "$S3SERVER_URL" --port-file "$D/$1.port" --request-log "$D/$1.log" \
        --latency-ms 60:60 2> "$D/$1.stderr" &
    PROXY_PID=$!
    lmr_on_exit 'kill '"$PROXY_PID"' 2>/dev/null || true'
    for _ in $(seq 1 100); do [ -s "$D/$1.port" ] && break; sleep 0.05; done
    PROXY_URL="http://127.0.0.1:$(cat "$D/$1.port")"
}
stop_proxy() { kill "$PROXY_PID"; wait "$PROXY_PID" 2> /dev/null || true; }
run_job() { # NAME OPENS ARGS...: the job through a fresh proxy with LMR_MERGE_OPENS_IN_FLIGHT=OPENS
    local name=$1 opens=$2 rc=0; shift 2
    start_proxy "$name"
    AWS_ENDPOINT_URL=$PROXY_URL LMR_MERGE_OPENS_IN_FLIGHT=$opens timeout 300 "$LAMBDAMR" run "$@" \
        --output "s3://ro-out/$name/" > /dev/null 2> "$D/$name.err" || rc=$?
    stop_proxy
    [ "$rc" = 0 ] || { fail "job $name failed (exit $rc)"; tail -c 1500 "$D/$name.err"; }
    rm -rf "$D/out-$name"; mkdir -p "$D/out-$name"
    aws s3 cp --recursive --quiet "s3://ro-out/$name/" "$D/out-$name/" --exclude '_lambdamr/*'
}
# peaks LOG REGEX GROUP_BY: per group (the regex's group GROUP_BY, or "all"), the ranged GETs
# whose target matches REGEX and the most of them in flight at one time, as "group gets peak" lines.
peaks() {
    python3 - "$@" <<'PY'
import collections, re, sys
log, pat, by = sys.argv[1], re.compile(sys.argv[2]), sys.argv[3]
groups = collections.defaultdict(list)
for line in open(log):
    conn, start, end, status, method, target, rng = line.split()
    m = pat.search(target)
    if method == 'GET' and m and rng != '-':
        key = 'all' if by == 'all' else str(int(m.group(int(by))) // 12)
        groups[key].append((float(start), float(end)))
for key in sorted(groups):
    ev = sorted([(s, 1) for s, e in groups[key]] + [(e, -1) for s, e in groups[key]])
    cur = peak = 0
    for _, d in ev:  # at equal times an end comes before a start: touching is not overlapping
        cur += d
        peak = max(peak, cur)
    print(key, len(groups[key]), peak)
PY
}

# 1. One reducer over 24 map outputs, opens 6 at once and then 1 at a time.
for opens in 6 1; do
    run_job "direct$opens" "$opens" wordcount --input s3://ro-in/in/ --mappers 24 --split-size 10000 --reducers 1 --concurrency 8
    check_wordcount "direct exchange, LMR_MERGE_OPENS_IN_FLIGHT=$opens, vs the oracle" "$D/out-direct$opens" "$D/in"
    read -r _ gets peak <<< "$(peaks "$D/direct$opens.log" '/map/m-[0-9]+/[^/]*\.lmr$' all)"
    ok=0
    if [ "$opens" = 6 ]; then [ "${gets:-0}" = 24 ] && [ "${peak:-0}" -ge 3 ] && [ "${peak:-0}" -le 6 ] && ok=1
    else [ "${gets:-0}" = 24 ] && [ "${peak:-0}" = 1 ] && ok=1; fi
    msg="the reducer read its 24 frames in ${gets:-0} ranged GETs with up to ${peak:-0} in flight (LMR_MERGE_OPENS_IN_FLIGHT=$opens)"
    [ "$ok" = 1 ] && pass "$msg" || fail "$msg"
done

# 2. The multi-stage exchange: two merge tasks of 12 map outputs each.
run_job merge 6 wordcount --input s3://ro-in/in/ --mappers 24 --split-size 10000 --reducers 2 --concurrency 8 --exchange merge \
    --merge-fan-in 12
check_wordcount "multi-stage exchange vs the oracle" "$D/out-merge" "$D/in"
peaks "$D/merge.log" '/map/m-([0-9]+)/[^/]*\.lmr$' 1 > "$D/merge.peaks"
if [ "$(wc -l < "$D/merge.peaks")" = 2 ] && awk '$2 != 12 || $3 < 3 || $3 > 6 { bad = 1 } END { exit bad }' "$D/merge.peaks"; then
    pass "each merge task read its 12 sources with 3 to 6 GETs in flight: $(tr '\n' ';' < "$D/merge.peaks")"
else
    fail "merge tasks' source GETs (group, GETs, most in flight): $(tr '\n' ';' < "$D/merge.peaks")"
fi

# 3. Eight frames of ~0.7 MiB in 128 MB functions: each frame reader gets 1/8 of the read-ahead share.
run_job sort 6 sort --input s3://ro-in/sort/ --mappers 8 --reducers 1 --concurrency 8 --memory 128
LC_ALL=C sort "$D/sort-in/lines.txt" > "$D/sorted.txt"
cat "$D"/out-sort/part-* > "$D/sort-got.txt" 2> /dev/null || true
cmp -s "$D/sorted.txt" "$D/sort-got.txt" && pass "the sort's output is its input sorted" ||
    fail "the sort's output differs from sort(1)'s ($(wc -l < "$D/sort-got.txt") lines)"
python3 - "$D/sort.log" <<'PY' > "$D/sort.verdict" && pass "$(cat "$D/sort.verdict")" || fail "$(cat "$D/sort.verdict")"
import collections, re, sys
longest, per = 0, collections.Counter()
for line in open(sys.argv[1]):
    conn, start, end, status, method, target, rng = line.split()
    if method == 'GET' and re.search(r'/map/m-[0-9]+/[^/]*\.lmr$', target) and rng.startswith('bytes='):
        a, b = rng[6:].split('-')
        longest = max(longest, int(b) - int(a) + 1)
        per[target] += 1
n = len(per)
share = (128 << 20) * 10 // 100 // max(n, 1)  # each frame reader's part of the read-ahead share
part = share * 2 // 9                          # 4 parts (LMR_S3_READ_AHEAD) and a last one of up to 1.5
part = max(part, min(256 << 10, share * 2 // 3))
cap = part * 3 // 2
ok = n >= 4 and 0 < longest <= cap and max(per.values()) > 1
print('%d frame readers sharing 10%% of 128 MiB (%d bytes each): %d frame GETs, the longest %d bytes (cap %d), '
      'the most for one frame %d' % (n, share, sum(per.values()), longest, cap, max(per.values() or [0])))
sys.exit(0 if ok else 1)
PY
finish
