#!/usr/bin/env bash
# lambdamr stream against Kinesis emulated by moto_server (SigV4 signature checking on):
# records put with `lambdamr put --no-aggregate` (plain records, so that a poison line fails
# alone) over several shards must come out of the window outputs
# exactly once per word, through SIGKILL/restart cycles of the consumer while records keep
# arriving, a shard split while consuming, poison records (bisect, retries, on-failure
# destination), and a proxy in front of moto that answers some GetRecords calls with
# ExpiredIteratorException or ProvisionedThroughputExceededException.
set -euo pipefail
BIN=${LMR_BIN_DIR:?set LMR_BIN_DIR to the bin directory of a build}
SRC=${LMR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
LMR=$BIN/lambdamr
source "$SRC/tests/integration/lib/moto.sh"
source "$SRC/tests/integration/lib/stream.sh"
source "$SRC/tests/integration/lib/kill_restart.sh"
kinesis_test_init stream-kinesis
# moto's resharding is not Kinesis's (SplitShard moved the parent's records into the children
# and puts still went to the closed parent): lib/moto_server.py fixes both, records stay in the
# parent and new ones go to open shards.
moto_start || fail "moto_server did not start"

# Fault-injecting proxy: forwards to moto byte for byte (signatures stay valid), except that
# some GetRecords calls get an AWS error instead.
PROXY_PORT=$(free_port)
python3 - "$PROXY_PORT" "$MOTO_PORT" "$T/faults" "${LMR_TEST_FAULTS:-1}" 2>/dev/null <<'PY' &
import http.server, http.client, sys, threading
port, upstream, faults = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
faults_on = sys.argv[4] == "1"
lock = threading.Lock(); n = {"get": 0, "expired": 0, "throttled": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = self.headers.get("X-Amz-Target", "")
        fault = None
        if target.endswith(".GetRecords"):
            with lock:
                n["get"] += 1
                if not faults_on: pass
                elif n["get"] % 13 == 0: fault = "ExpiredIteratorException"; n["expired"] += 1
                elif n["get"] % 17 == 0: fault = "ProvisionedThroughputExceededException"; n["throttled"] += 1
                open(faults, "w").write("%d %d %d\n" % (n["get"], n["expired"], n["throttled"]))
        if fault:
            out = ('{"__type":"%s","message":"injected by the test proxy"}' % fault).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers(); self.wfile.write(out); return
        c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
        c.request("POST", self.path, body=body, headers=dict(self.headers.items()))
        r = c.getresponse(); data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
PIDS+=($!)
for i in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" -X POST -d '{}' && break; sleep 0.1; done
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$PROXY_PORT

kinesis_stream_create events 3

# Input: "user<N> w<a> w<b> ..." lines, keyed by the user field; three poison lines.
python3 -c '
import random, sys
r = random.Random(7)
for i in range(6000):
    words = " ".join("w%d" % r.randrange(40) for _ in range(r.randrange(1, 5)))
    print("u%d %s%s" % (r.randrange(300), words, " POISON" if i in (1000, 3500, 5200) else ""))
' > "$T/input.txt"
split -l 600 -d "$T/input.txt" "$T/chunk."

producer() {
    local n=0
    for f in "$T"/chunk.*; do
        "$LMR" put --stream events --partition-key-field 1 --no-aggregate --quiet < "$f"
        n=$((n + 1))
        if [ $n -eq 4 ]; then # reshard while the consumer runs: the parent keeps its records
            aws kinesis split-shard --stream-name events --shard-to-split shardId-000000000001 \
                --new-starting-hash-key 170141183460469231731687303715884105727
        fi
        sleep 0.4
    done
}
export LMR_STREAM_FAIL_MATCH=POISON
consumer() {
    "$LMR" stream wordcount --source kinesis://events --window 1 --output "$T/out" --batch-size 100 \
        --parallelization 2 --bisect-on-error --max-retries 1 --on-failure --shard-refresh 1 \
        --close-grace-ms 1000 --quiet 2>>"$T/consumer.log" &
    CPID=$!
    PIDS+=("$CPID")
}
producer &
PRODUCER=$!
PIDS+=("$PRODUCER")
kill_restart "${LMR_TEST_KILLS:-4}" 0.8 2.0 consumer
consumer
wait "$PRODUCER"

grep -v POISON "$T/input.txt" | python3 -c '
import sys, collections
c = collections.Counter()
for line in sys.stdin.buffer: c.update(line.split())
for k in sorted(c): sys.stdout.buffer.write(k + b"\t" + str(c[k]).encode() + b"\n")
' > "$T/want"
stream_wait_exact "$T/want" "$T/out" "$CPID" "$T/consumer.log" 45 2 "(lost or double-counted records)"
kill -TERM "$CPID"
wait "$CPID" || fail "the consumer did not stop cleanly on SIGTERM"

# The three poison records, each alone, in the on-failure destination.
python3 -c '
import json, glob, sys
seen = set()
for f in glob.glob(sys.argv[1] + "/_checkpoint/failures/*/*.json"):
    b = json.load(open(f))["KinesisBatchInfo"]
    assert b["batchSize"] == 1, b
    seen.add((b["shardId"], b["startSequenceNumber"]))
assert len(seen) == 3, seen
' "$T/out" || fail "the on-failure destination must hold exactly the three poison records"
shards=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["shards"]))' "$T/out/_checkpoint/checkpoint.json")
[ "$shards" -ge 4 ] || fail "the checkpoint should cover the split shard's children too ($shards shards)"
read -r gets expired throttled < "$T/faults"
[ "$expired" -ge 1 ] && [ "$throttled" -ge 1 ] || fail "the proxy injected no faults ($gets GetRecords)"
echo "ok: $(grep -vc POISON "$T/input.txt") records over 3+2 shards, 4 SIGKILLs, a split, $expired expired iterators and $throttled throttles injected: totals exact"
