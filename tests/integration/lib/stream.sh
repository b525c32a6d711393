# Sourceable helpers for tests of `lambdamr stream`: the committed windows' totals, and waiting
# for a running consumer to reach exact totals.

# stream_window_sums OUT: every committed window's output under OUT (OUT/window=*/part-00000)
# summed per key, as sorted key<TAB>count lines (compare with the input's own counts).
stream_window_sums() { python3 -c '
import sys, glob, collections
c = collections.Counter()
for f in glob.glob(sys.argv[1] + "/window=*/part-00000"):
    with open(f, "rb") as fh:
        for line in fh:
            k, v = line.rstrip(b"\n").rsplit(b"\t", 1)
            c[k] += int(v)
for k in sorted(c): sys.stdout.buffer.write(k + b"\t" + str(c[k]).encode() + b"\n")
' "$1"; }

# stream_wait_exact WANT OUT PID LOG DEADLINE_S SETTLE_S WHAT: wait (polling every 0.5 s, at most
# DEADLINE_S seconds) until the window sums of OUT equal the file WANT while the consumer PID runs,
# then SETTLE_S seconds more, and check that they stayed exact (nothing counted twice). Calls the
# caller's `fail` (with WHAT in the message, the consumer's LOG tail shown) when they do not.
stream_wait_exact() {
    local want=$1 out=$2 pid=$3 log=$4 deadline=$((SECONDS + $5)) settle=$6 what=$7 got
    got=$(mktemp)
    while :; do
        stream_window_sums "$out" > "$got"
        cmp -s "$want" "$got" && break
        if [ $SECONDS -ge $deadline ]; then
            { diff "$want" "$got" | head -5 || true; }; tail -5 "$log" || true
            rm -f "$got"
            fail "window outputs did not reach the exact totals $what"
            return 1
        fi
        kill -0 "$pid" 2>/dev/null || { tail -5 "$log" || true; rm -f "$got"; fail "the consumer died"; return 1; }
        sleep 0.5
    done
    sleep "$settle" # nothing more may arrive
    stream_window_sums "$out" > "$got"
    cmp -s "$want" "$got" || { rm -f "$got"; fail "outputs changed after reaching the totals (double counting)"; return 1; }
    rm -f "$got"
}

# kinesis_test_init TAG (after lib/moto.sh): T, a fresh /tmp/lmr-TAG.XXXXXX removed on exit (kept
# with LMR_TEST_KEEP); PIDS, processes killed on exit; fail MESSAGE, which exits 1.
kinesis_test_init() {
    T=$(mktemp -d "/tmp/lmr-$1.XXXXXX")
    PIDS=()
    lmr_on_exit 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; [ -n "${LMR_TEST_KEEP:-}" ] || rm -rf "$T"'
    fail() { echo "FAIL: $*" >&2; exit 1; }
}

# kinesis_stream_create NAME SHARDS: create Kinesis stream NAME (in the moto that moto_start
# started, or wherever AWS_ENDPOINT_URL_KINESIS points) and wait (at most 5 s) until it is ACTIVE.
kinesis_stream_create() {
    aws kinesis create-stream --stream-name "$1" --shard-count "$2"
    local i
    for i in $(seq 1 50); do
        [ "$(aws kinesis describe-stream-summary --stream-name "$1" --query StreamDescriptionSummary.StreamStatus \
            --output text)" = ACTIVE ] && return 0
        sleep 0.1
    done
}
