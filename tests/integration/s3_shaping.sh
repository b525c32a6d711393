#!/usr/bin/env bash
# The shaping side of tests/tools/s3_fault_proxy.py (issue 16 item 3): word count with s3://
# input and output on moto (SigV4 checking on) through the proxy with a per-prefix request-rate
# limit low enough that the job's bursts of GETs and PUTs get 503 SlowDown, plus a first-byte
# latency and a per-connection bandwidth. The proxy must have throttled (its counts say how
# often), and the job must retry past every 503 and write exactly the oracle's counts: a
# throttled request never reaches moto, so an exact output means each one was sent again. Not
# timed: the shaping only has to be there, not to take any particular time.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/s3server.sh"
s3_test_init moto shape-in shape-out
python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(16)
words = ['w%d' % i for i in range(2000)] + ['Zeta', 'naïve']
for i in range(8):
    with open(os.path.join(sys.argv[1], 'part-%d.txt' % i), 'w') as f:
        for _ in range(3000):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 12))) + '\n')
PY
aws s3 cp --recursive --quiet "$D/in" s3://shape-in/in/

# Bad shaping options are refused with a clear error, before listening.
if python3 "$PROXY" --upstream "$MOTO_URL" --latency-ms 50:20 2> "$D/bad.txt"; then
    fail "the proxy accepted --latency-ms 50:20"
elif grep -q -- "--latency-ms 50:20: expected MIN\[:MAX\]" "$D/bad.txt"; then
    pass "the proxy refuses a latency range with MIN > MAX: $(cat "$D/bad.txt")"
else
    fail "unclear error for --latency-ms 50:20: $(cat "$D/bad.txt")"
fi

# 20 GET/s and 10 PUT/s per prefix with a tenth of a second of burst (2 and 1 tokens): the
# job's mappers and reducers start together, so their first requests on a prefix collide.
python3 "$PROXY" --upstream "$MOTO_URL" --port-file "$D/port" --counts-file "$D/counts.json" --seed 7 \
    --latency-ms 2:6 --bandwidth-mbs 20:40 --get-rate 20 --put-rate 10 --burst-s 0.1 2> "$D/proxy.log" &
PROXY_PID=$!
lmr_on_exit 'kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true'
for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
PROXY_URL="http://127.0.0.1:$(cat "$D/port")"

rc=0
AWS_ENDPOINT_URL=$PROXY_URL timeout 300 "$LAMBDAMR" run wordcount --input s3://shape-in/in/ \
    --output s3://shape-out/wc/ --mappers 4 --reducers 2 > /dev/null 2> "$D/err.txt" || rc=$?
kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
[ "$rc" = 0 ] && pass "the job succeeded through the rate limit" || { fail "the job failed (exit $rc)"; tail -c 1500 "$D/err.txt"; }

counts=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print('requests %(requests)d, forwarded %(forwarded)d, throttled %(throttled)d (GET %(throttled_get)d, PUT %(throttled_put)d), shaped waits %(shaped_wait_ms)d ms, %(bytes_paced)d bytes paced' % c)" "$D/counts.json")
if python3 -c "import json,sys; c=json.load(open(sys.argv[1])); sys.exit(0 if c['throttled'] > 0 and c['forwarded'] > 10 and c['requests'] == c['forwarded'] + c['throttled'] else 1)" "$D/counts.json"; then
    pass "the proxy answered 503 SlowDown past the rate limit and forwarded the rest: $counts"
else
    fail "the proxy did not throttle (or counted wrong): $counts"
fi
python3 -c "import json,sys; c=json.load(open(sys.argv[1])); sys.exit(0 if c['shaped_wait_ms'] > 0 and c['bytes_paced'] > 0 else 1)" "$D/counts.json" \
    && pass "latency and bandwidth shaping applied" || fail "no shaping waits recorded: $counts"
rm -rf "$D/out"; mkdir -p "$D/out"
aws s3 cp --recursive --quiet s3://shape-out/wc/ "$D/out/" --exclude '_lambdamr/*'
check_wordcount "output through the throttling, shaping proxy vs the oracle" "$D/out" "$D/in"
finish
