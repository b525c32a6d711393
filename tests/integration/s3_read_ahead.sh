#!/usr/bin/env bash
# The mapper's read-ahead on S3 (issue 16 item 4): a shard is read by one sequential store
# reader with several ranged GETs in flight, capped by the task's read-ahead share of memory.
# On moto (SigV4 checking on) behind tests/tools/s3_fault_proxy.py, whose --request-log gives
# each exchange's start and end:
#   1. one mapper, 256 KiB parts, 4 in flight, 20 ms to first byte: the input GETs of one object
#      overlap in time (at most 4 at once, at least 2), each object is read in exactly as many
#      ranged GETs as 256 KiB parts (a rest of at most half a part joins the last), and the
#      counts equal the oracle's;
#   2. three mappers (shards of ~1.8 MiB with boundaries inside lines, lines longer than the
#      64 KiB tail chunk) in 128 MB functions with 8 MiB parts and 16 in flight asked for: the
#      read-ahead share (10% of 128 MiB) shrinks the parts, so no GET asks for more than 1.5 of
#      share / 16.5 (a whole shard would), and with resets, truncated answers, lost answers and
#      503s injected into the input reads the counts are still exact.
# Not timed.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/s3server.sh"
s3_test_init moto ra-in ra-out
mkdir -p "$D/in"
python3 - "$D/in" <<'PY'
import os, random, sys
r = random.Random(4)
words = ['w%d' % i for i in range(5000)] + ['Zeta', 'naïve']
for i, size in enumerate((3 << 20, (5 << 20) // 2 + 12345)):
    with open(os.path.join(sys.argv[1], 'part-%d.txt' % i), 'w') as f:
        n = 0
        while n < size:
            # mostly short lines, now and then one longer than the 64 KiB tail chunk
            k = r.randint(1, 12) if r.random() > 0.002 else r.randint(15000, 30000)
            line = ' '.join(r.choice(words) for _ in range(k)) + '\n'
            f.write(line)
            n += len(line.encode())
PY
aws s3 cp --recursive --quiet "$D/in" s3://ra-in/in/

start_proxy() { # NAME ARGS...: starts the proxy, sets PROXY_URL and PROXY_PID
    local name=$1; shift
    python3 "$PROXY" --upstream "$MOTO_URL" --port-file "$D/$name.port" --counts-file "$D/$name.counts" \
        --request-log "$D/$name.log" "$@" 2> "$D/$name.stderr" &
    PROXY_PID=$!
    lmr_on_exit 'kill '"$PROXY_PID"' 2>/dev/null || true'
    for _ in $(seq 1 100); do [ -s "$D/$name.port" ] && break; sleep 0.05; done
    PROXY_URL="http://127.0.0.1:$(cat "$D/$name.port")"
}
stop_proxy() { kill "$PROXY_PID"; wait "$PROXY_PID" 2> /dev/null || true; }
fetch_output() { # S3PREFIX DIR
    rm -rf "$2"; mkdir -p "$2"
    aws s3 cp --recursive --quiet "$1" "$2/" --exclude '_lambdamr/*'
}

# 1. One mapper: the overlap and the number of ranged GETs.
start_proxy one --latency-ms 20:20 --bandwidth-mbs 20
rc=0
AWS_ENDPOINT_URL=$PROXY_URL LMR_S3_READ_PART_BYTES=256K LMR_S3_READ_AHEAD=4 timeout 300 "$LAMBDAMR" run wordcount \
    --input s3://ra-in/in/ --output s3://ra-out/one/ --mappers 1 --reducers 2 > /dev/null 2> "$D/one.err" || rc=$?
stop_proxy
[ "$rc" = 0 ] || { fail "the one-mapper job failed (exit $rc)"; tail -c 1500 "$D/one.err"; }
fetch_output s3://ra-out/one/ "$D/out-one"
check_wordcount "one mapper with read-ahead vs the oracle" "$D/out-one" "$D/in"
python3 - "$D/one.log" "$D/in" <<'PY' && pass "$(cat "$D/one.verdict")" || fail "$(cat "$D/one.verdict")"
import collections, os, sys
log, indir = sys.argv[1], sys.argv[2]
gets = collections.defaultdict(list)
for line in open(log):
    conn, start, end, status, method, target, rng = line.split()
    if method == 'GET' and target.startswith('/ra-in/in/') and rng != '-':
        gets[target.rsplit('/', 1)[1]].append((float(start), float(end), int(conn), rng))
msgs, ok = [], True
for name in sorted(os.listdir(indir)):
    size = os.path.getsize(os.path.join(indir, name))
    g = gets[name]
    part = 256 << 10  # a rest of at most half a part joins the last part
    want = max(1, size // part + (1 if size % part > part // 2 else 0))
    # the most GETs of this object in flight at one time
    ev = sorted([(s, 1) for s, e, c, r in g] + [(e, -1) for s, e, c, r in g], key=lambda x: (x[0], x[1]))
    cur = peak = 0
    for _, d in ev:
        cur += d
        peak = max(peak, cur)
    conns = len({c for s, e, c, r in g})
    ok &= len(g) == want and 2 <= peak <= 4
    msgs.append('%s: %d ranged GETs (want %d), up to %d in flight on %d connections' % (name, len(g), want, peak, conns))
open(sys.argv[1].replace('.log', '.verdict'), 'w').write(
    ('read-ahead overlapped the ranged GETs of each object: ' if ok else 'read-ahead: ') + '; '.join(msgs))
sys.exit(0 if ok else 1)
PY

# 2. Three mappers in 128 MB functions, faults on the input reads.
# (seed 8 faults 5 of the first 9 decisions, so a few input reads are faulted whatever the order)
start_proxy six --seed 8 --only '^GET /ra-in/in/' --reset 0.08 --truncate 0.08 --reset-after 0.06 --slowdown 0.08 \
    --latency-ms 2:10
rc=0
AWS_ENDPOINT_URL=$PROXY_URL LMR_S3_READ_PART_BYTES=8M LMR_S3_READ_AHEAD=16 timeout 300 "$LAMBDAMR" run wordcount \
    --input s3://ra-in/in/ --output s3://ra-out/six/ --mappers 3 --reducers 3 --memory 128 > /dev/null \
    2> "$D/six.err" || rc=$?
stop_proxy
[ "$rc" = 0 ] || { fail "the three-mapper job with faults failed (exit $rc)"; tail -c 1500 "$D/six.err"; }
fetch_output s3://ra-out/six/ "$D/out-six"
check_wordcount "three mappers, shard boundaries inside lines, faults on the input reads, vs the oracle" "$D/out-six" "$D/in"
python3 - "$D/six.log" "$D/six.counts" <<'PY' && pass "$(cat "$D/six.verdict")" || fail "$(cat "$D/six.verdict")"
import json, sys
share = (128 << 20) * 10 // 100  # the read-ahead share of a 128 MB function
cap = share * 2 // 33 * 3 // 2     # 16 parts of share / 16.5 bytes, the last one up to 1.5 parts
longest, n, faulted = 0, 0, 0
for line in open(sys.argv[1]):
    conn, start, end, status, method, target, rng = line.split()
    if method == 'GET' and target.startswith('/ra-in/in/') and rng.startswith('bytes='):
        a, b = rng[6:].split('-')
        longest = max(longest, int(b) - int(a) + 1)
        n += 1
c = json.load(open(sys.argv[2]))
faults = sum(c.get(k, 0) for k in ('slowdown', 'reset', 'reset_after', 'truncate'))
ok = 0 < longest <= cap and faults >= 3
open(sys.argv[1].replace('.log', '.verdict'), 'w').write(
    '%d ranged input GETs, the longest %d bytes (cap %d: 10%% of 128 MiB in 16 parts, the last up to 1.5); %d faults injected (%s)' % (
        n, longest, cap, faults, ', '.join('%s %d' % (k, c.get(k, 0)) for k in ('slowdown', 'reset', 'reset_after', 'truncate'))))
sys.exit(0 if ok else 1)
PY
finish
