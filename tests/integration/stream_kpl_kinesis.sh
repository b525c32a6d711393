#!/usr/bin/env bash
# KPL aggregated records from a Kinesis stream (moto_server, SigV4 checking on) deaggregated by the
# stream function: records put by a producer that aggregates as the KPL does (written here from
# the format, amazon-kinesis-producer's aggregation-format.md: magic, protobuf AggregatedRecord,
# MD5), mixed with plain records and with a plain record that starts with the magic but whose MD5
# is wrong. Every user record must be counted once; a poison line inside an aggregated record
# fails that whole record (its sequence number is the only one the mapping knows): with bisect
# and one retry it alone goes to the on-failure destination and none of its lines is counted.
set -euo pipefail
BIN=${LMR_BIN_DIR:?set LMR_BIN_DIR to the bin directory of a build}
SRC=${LMR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
LMR=$BIN/lambdamr
source "$SRC/tests/integration/lib/moto.sh"
source "$SRC/tests/integration/lib/stream.sh"
kinesis_test_init stream-kpl
moto_start || fail "moto_server did not start"
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$MOTO_PORT
kinesis_stream_create kpl 2

# Put the records; write the expected word counts (every user record, the poisoned aggregated
# record's lines left out).
python3 - "$T/want" <<'PY'
import boto3, collections, hashlib, os, random, sys

def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)

def field(num, wire, payload):  # payload: bytes for wire type 2, an int for 0
    tag = varint(num << 3 | wire)
    return tag + (varint(payload) if wire == 0 else varint(len(payload)) + payload)

def aggregate(pks, ehks, records):
    """records: (partition key index, explicit hash key index or None, data, tags)"""
    msg = b"".join(field(1, 2, k.encode()) for k in pks) + b"".join(field(2, 2, k.encode()) for k in ehks)
    for pk, ehk, data, tags in records:
        body = field(1, 0, pk) + (field(2, 0, ehk) if ehk is not None else b"") + field(3, 2, data)
        body += b"".join(field(4, 2, field(1, 2, k.encode()) + field(2, 2, v.encode())) for k, v in tags)
        msg += field(3, 2, body)
    return b"\xf3\x89\x9a\xc2" + msg + hashlib.md5(msg).digest()

k = boto3.client("kinesis", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"])
r = random.Random(21)
want = collections.Counter()
def line():
    return " ".join("w%d" % r.randrange(500) for _ in range(r.randrange(1, 6))).encode()
for n in range(12):
    lines = [line() for _ in range(r.randrange(50, 400))]
    poisoned = n == 7
    if poisoned:
        lines[len(lines) // 2] += b" POISON"
    pks = ["user-%d" % n, "other-%d" % n]
    ehks = ["%d" % (n * 1000)] if n % 3 == 0 else []
    recs = [(i % 2, 0 if ehks and i % 5 == 0 else None, l, [("t", "v")] if i % 7 == 0 else []) for i, l in enumerate(lines)]
    k.put_record(StreamName="kpl", Data=aggregate(pks, ehks, recs), PartitionKey=pks[0])
    if not poisoned:
        for l in lines:
            want.update(l.split())
    # Plain records between the aggregated ones.
    for _ in range(3):
        l = line()
        k.put_record(StreamName="kpl", Data=l, PartitionKey="plain-%d" % r.randrange(9))
        want.update(l.split())
# Starts with the magic, but its MD5 is wrong: a plain record of these bytes.
fake = b"\xf3\x89\x9a\xc2 fake kpl 0123456789abcdef"
k.put_record(StreamName="kpl", Data=fake, PartitionKey="fake")
want.update(fake.split())
with open(sys.argv[1], "wb") as f:
    for w in sorted(want):
        f.write(w + b"\t" + str(want[w]).encode() + b"\n")
PY

LMR_STREAM_FAIL_MATCH=POISON "$LMR" stream wordcount --source kinesis://kpl --window 1 --output "$T/out" \
    --starting-position trim-horizon --bisect-on-error --max-retries 1 --on-failure --close-grace-ms 300 \
    --quiet 2>>"$T/consumer.log" &
CPID=$!
PIDS+=("$CPID")
stream_wait_exact "$T/want" "$T/out" "$CPID" "$T/consumer.log" 40 1.5 "of the deaggregated records"
kill -TERM "$CPID"
wait "$CPID" || fail "the consumer did not stop cleanly on SIGTERM"
# The poisoned aggregated record alone, as one Kinesis record, in the on-failure destination.
python3 - "$T/out" <<'PY' || fail "the on-failure destination must hold exactly the one poisoned aggregated record"
import glob, json, sys
found = [json.load(open(f))["KinesisBatchInfo"] for f in glob.glob(sys.argv[1] + "/_checkpoint/failures/*/*.json")]
assert len(found) == 1 and found[0]["batchSize"] == 1, found
assert found[0]["startSequenceNumber"] == found[0]["endSequenceNumber"], found
PY
echo "ok: 12 aggregated records (one poisoned, given up whole), 36 plain records and a fake: $(wc -l < "$T/want") words exact"
