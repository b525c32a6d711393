#!/usr/bin/env bash
# Faults from the store (issue 11 item 11): word count with s3:// input and output on moto
# (SigV4 checking on), through tests/tools/s3_fault_proxy.py, which answers a seeded share of
# requests with 503 SlowDown or 500 InternalError, resets connections before or after
# forwarding, and cuts response bodies short. Every run must end with output byte-identical to
# a clean run, or with a clear error after the retry budget and no _SUCCESS: never a wrong
# result, never a hang. The figures (requests faulted, retries, outcome) are printed per seed.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/s3server.sh"
s3_test_init moto fault-in fault-out
SEEDS=${LMR_FAULT_SEEDS:-"1 2 3 4 9"}
SHARE=${LMR_FAULT_SHARE:-0.04} # of each kind: 5 kinds, so 20% of all requests are faulted
# Seed 4 loses only answers, a quarter of them: create-only commits whose first attempt was
# applied must still be recognised as the writer's own (they were not before).
LOST_ANSWERS_SEED=4
# Seed 9 throttles every request: the job must stop with a clear error once the client's retry
# budget is spent, write no _SUCCESS, and not hang.
ALWAYS_THROTTLED_SEED=9

python3 - "$D/in" <<'PY'
import gzip, os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(11)
words = ['w%d' % i for i in range(3000)] + ['Zeta', 'é', 'naïve']
for i in range(6):
    with open(os.path.join(sys.argv[1], 'part-%d.txt' % i), 'w') as f:
        for _ in range(6000):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 12))) + '\n')
with gzip.open(os.path.join(sys.argv[1], 'z.gz'), 'wt') as f:
    for _ in range(4000):
        f.write(' '.join(r.choice(words) for _ in range(8)) + '\n')
PY
aws s3 cp --recursive --quiet "$D/in" s3://fault-in/in/

fault_args() { # the proxy's fault options for a share of each kind (LMR_FAULT_ARGS overrides, for experiments)
    if [ "$1" = 0 ]; then return; fi
    if [ "$2" = "$LOST_ANSWERS_SEED" ] && [ -z "${LMR_FAULT_ARGS:-}" ]; then echo "--reset-after 0.25"; return; fi
    if [ "$2" = "$ALWAYS_THROTTLED_SEED" ] && [ -z "${LMR_FAULT_ARGS:-}" ]; then echo "--slowdown 1"; return; fi
    echo "${LMR_FAULT_ARGS:---slowdown $1 --internal-error $1 --reset $1 --reset-after $1 --truncate $1}"
}
start_proxy() { # start_proxy SEED SHARE: exports PROXY_URL, PROXY_PID
    rm -f "$D/port"
    python3 "$PROXY" --upstream "$MOTO_URL" --port-file "$D/port" --counts-file "$D/counts-$1.json" --seed "$1" \
        --log $(fault_args "$2" "$1") 2> "$D/proxy-$1.log" &
    PROXY_PID=$!
    for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
    PROXY_URL="http://127.0.0.1:$(cat "$D/port")"
}
stop_proxy() {
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
}
lmr_on_exit 'stop_proxy'
same_success() { # same_success CLEAN GOT REPORT: same parts, and GOT names the job REPORT describes
    python3 - "$@" <<'PY'
import json, sys
clean, got, report = (json.load(open(p)) for p in sys.argv[1:4])
ok = (got.get("version") == clean.get("version") and got.get("parts") == clean.get("parts")
      and got.get("job_id") == report.get("job_id") and got.get("job_id") != clean.get("job_id"))
sys.exit(0 if ok else 1)
PY
}
fetch_output() { # fetch_output PREFIX DIR
    rm -rf "$2"; mkdir -p "$2"
    aws s3 cp --recursive --quiet "s3://fault-out/$1/" "$2/" --exclude '_lambdamr/*'
}

# The clean run, through the proxy with no faults: it forwards signed requests unchanged.
start_proxy 0 0
AWS_ENDPOINT_URL=$PROXY_URL "$LAMBDAMR" run wordcount --input s3://fault-in/in/ --output s3://fault-out/clean/ \
    --mappers 4 --reducers 2 > /dev/null 2> "$D/err.txt" || { fail "clean run failed"; cat "$D/err.txt"; }
stop_proxy
fetch_output clean "$D/clean"
check_wordcount "clean run through the proxy (0 faults) vs the oracle" "$D/clean" "$D/in"
python3 -c "import json,sys; c=json.load(open(sys.argv[1])); assert c['faulted']==0 and c['forwarded']>20, c" \
    "$D/counts-0.json" && pass "the proxy forwarded $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['forwarded'])" "$D/counts-0.json") requests with SigV4 intact" \
    || fail "proxy counts for the clean run"

for seed in $SEEDS; do
    start_proxy "$seed" "$SHARE"
    rc=0
    AWS_ENDPOINT_URL=$PROXY_URL timeout 300 "$LAMBDAMR" run wordcount --input s3://fault-in/in/ \
        --output "s3://fault-out/seed-$seed/" --mappers 4 --reducers 2 --json > "$D/report-$seed.json" 2> "$D/err-$seed.txt" || rc=$?
    stop_proxy
    # The client's retries show as requests beyond the clean run's (a fault costs one more attempt).
    extra=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['requests'] - json.load(open(sys.argv[2]))['requests'])" \
        "$D/counts-$seed.json" "$D/counts-0.json")
    counts=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print('requests %(requests)d, faulted %(faulted)d (slowdown %(slowdown)d, 500 %(internal_error)d, reset %(reset)d, reset-after %(reset_after)d, truncated %(truncate)d)' % c)" "$D/counts-$seed.json")
    if [ "$rc" = 124 ]; then
        fail "seed $seed: the job hung ($counts)"
    elif [ "$seed" = "$ALWAYS_THROTTLED_SEED" ] && [ -z "${LMR_FAULT_ARGS:-}" ] && [ "$rc" = 0 ]; then
        fail "seed $seed: every request was throttled, yet the job succeeded"
    elif [ "$rc" = 0 ]; then
        fetch_output "seed-$seed" "$D/got-$seed"
        # _SUCCESS names the job (its id differs per run): its part list must equal the clean
        # run's and its job id the one this run reported; every other file is compared bytewise.
        if ! same_success "$D/clean/_SUCCESS" "$D/got-$seed/_SUCCESS" "$D/report-$seed.json"; then
            fail "seed $seed: exit 0 with a WRONG _SUCCESS; $counts"
            cat "$D/got-$seed/_SUCCESS" 2>/dev/null | head -c 400
        elif diff -r -x _SUCCESS "$D/clean" "$D/got-$seed" > /dev/null; then
            pass "seed $seed: part files byte-identical to the clean run, _SUCCESS names this job and the same parts; $counts; $extra requests more than the clean run"
        else
            fail "seed $seed: exit 0 with a WRONG result; $counts"
            diff -r -x _SUCCESS "$D/clean" "$D/got-$seed" | head -5
        fi
    else
        if aws s3 ls "s3://fault-out/seed-$seed/_SUCCESS" > /dev/null 2>&1; then
            fail "seed $seed: exit $rc but _SUCCESS was written"
        elif grep -Eq "^lambdamr run: .*(failed with HTTP|cannot reach|kept throttling|did not answer).*after [0-9]+ attempts" "$D/err-$seed.txt"; then
            pass "seed $seed: a clear error after the retry budget (exit $rc); $counts: $(grep -m1 -Eo "(failed with HTTP|cannot reach|kept throttling|did not answer).*after [0-9]+ attempts" "$D/err-$seed.txt" | cut -c 1-200)"
        else
            fail "seed $seed: exit $rc without a clear error; $counts"; head -c 800 "$D/err-$seed.txt"
        fi
        if [ -n "${LMR_FAULT_DEBUG:-}" ]; then cat "$D/err-$seed.txt"
        fi
    fi
done

# Lost answers of the lease's conditional writes: half of the PUTs of _lambdamr/lease.json (the
# create-only acquire, the If-Match renewals and the release) are applied upstream and their
# answers lost, so the retry meets its own first attempt (412). The job must still succeed (it
# did not: a retried renewal took the 412 for "another writer came first" and gave up the job).
LEASE_SEED=${LMR_LEASE_FAULT_SEED:-3}
rm -f "$D/port"
python3 "$PROXY" --upstream "$MOTO_URL" --port-file "$D/port" --counts-file "$D/counts-lease.json" --seed "$LEASE_SEED" \
    --log --reset-after 0.5 --only '^PUT [^?]*/_lambdamr/lease\.json$' 2> "$D/proxy-lease.log" &
PROXY_PID=$!
for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
PROXY_URL="http://127.0.0.1:$(cat "$D/port")"
rc=0
AWS_ENDPOINT_URL=$PROXY_URL timeout 300 "$LAMBDAMR" run wordcount --input s3://fault-in/in/ --output s3://fault-out/lease/ \
    --mappers 4 --reducers 2 --json > "$D/report-lease.json" 2> "$D/err-lease.txt" || rc=$?
stop_proxy
lost_if_match=$(grep -c '^[0-9]* reset_after PUT .*lease\.json if-match' "$D/proxy-lease.log" || true)
if [ "$lost_if_match" -lt 1 ]; then
    fail "lease faults: no If-Match write of the lease lost its answer (seed $LEASE_SEED): the case is not exercised"
elif [ "$rc" != 0 ]; then
    fail "lease faults: $lost_if_match lost If-Match answers made the job fail (exit $rc)"; head -c 800 "$D/err-lease.txt"
else
    fetch_output lease "$D/got-lease"
    if same_success "$D/clean/_SUCCESS" "$D/got-lease/_SUCCESS" "$D/report-lease.json" &&
        diff -r -x _SUCCESS "$D/clean" "$D/got-lease" > /dev/null; then
        pass "lease faults: $lost_if_match If-Match writes of the lease lost their answers; the job recognised them as its own and its output is identical"
    else
        fail "lease faults: exit 0 with a WRONG result"
    fi
fi
finish
