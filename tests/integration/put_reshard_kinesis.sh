#!/usr/bin/env bash
# `lambdamr put` while its stream is resharded (moto_server, SigV4 checking on; lib/moto_server.py
# makes moto route puts as Kinesis does after a reshard: to the open child the key's hash maps to,
# the parents keeping what they held). Two shards; half the lines are put; UpdateShardCount makes
# four (each parent split in two); put goes on from the same standard input: 200 lines, a pause
# (they are sent, aggregated for the parents), then the rest. Checks: every line is in the stream
# exactly once; the lines put before the reshard are on the parent their key maps to; the 200 are
# on children; put noticed the reshard (a record landed on a child, not on the parent it aimed at)
# and listed the shards again, once; every line after that is on the open child its key maps to.
set -euo pipefail
BIN=${LMR_BIN_DIR:?set LMR_BIN_DIR to the bin directory of a build}
SRC=${LMR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
LMR=$BIN/lambdamr
source "$SRC/tests/integration/lib/moto.sh"
source "$SRC/tests/integration/lib/stream.sh"
kinesis_test_init put-reshard
moto_start || fail "moto_server did not start"
export AWS_ENDPOINT_URL_KINESIS=$MOTO_URL
kinesis_stream_create rs 2

python3 - "$T" <<'PY'
import random, sys
r = random.Random(15)
with open(sys.argv[1] + "/lines.txt", "w") as f:
    for i in range(4000):
        f.write("u%d line%d %s\n" % (r.randrange(500), i, " ".join("w%d" % r.randrange(300) for _ in range(4))))
PY
head -n 2000 "$T/lines.txt" > "$T/first.txt"
sed -n 2001,2200p "$T/lines.txt" > "$T/middle.txt"
tail -n +2201 "$T/lines.txt" > "$T/rest.txt"

# stream.py count: user records in the stream now (aggregated records deaggregated); stream.py check: the checks.
cat > "$T/stream.py" <<'PY'
import boto3, hashlib, os, sys
MAGIC = b"\xf3\x89\x9a\xc2"
k = boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"])

def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7F) << shift; shift += 7
        if c < 0x80:
            return v, i

def fields(b):
    i = 0
    while i < len(b):
        tag, i = varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v = b[i:i + n]; i += n
        else:
            raise AssertionError("wire type %d" % wt)
        yield num, wt, v

def user_records(data, pk):  # [(key, line)] of one Kinesis record (aggregated, or a plain one of one line)
    if data[:4] != MAGIC:
        return [(pk, data)]
    assert hashlib.md5(data[4:-16]).digest() == data[-16:], "an aggregated record's MD5 is wrong"
    pks, out = [], []
    for num, _, v in fields(data[4:-16]):
        if num == 1:
            pks.append(v.decode())
        elif num == 3:
            f = {n: x for n, _, x in fields(v)}
            out.append((pks[f[1]], f[3]))
    return out

def shards():  # [(shard, [[(key, line)] per Kinesis record in order])]
    out = []
    for sh in k.list_shards(StreamName="rs")["Shards"]:
        it = k.get_shard_iterator(StreamName="rs", ShardId=sh["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs = []
        while it:
            r = k.get_records(ShardIterator=it, Limit=10000)
            recs += [user_records(x["Data"], x["PartitionKey"]) for x in r["Records"]]
            it = r.get("NextShardIterator") if r["Records"] else None
        out.append((sh, recs))
    return out

def holds(sh, key):
    h = int(hashlib.md5(key.encode()).hexdigest(), 16)
    return int(sh["HashKeyRange"]["StartingHashKey"]) <= h <= int(sh["HashKeyRange"]["EndingHashKey"])

if sys.argv[1] == "count":
    print(sum(len(u) for _, recs in shards() for u in recs))
    sys.exit(0)

first, middle, rest = ([l.rstrip(b"\n") for l in open(f, "rb")] for f in sys.argv[2:5])
log = open(sys.argv[5]).read()
assert "shards listed again 1 time(s) after a reshard" in log, "put did not list the shards again once: " + log
seen, mixed = {}, 0
for sh, recs in shards():
    closed = "EndingSequenceNumber" in sh["SequenceNumberRange"]
    for u in recs:
        for key, line in u:
            assert line not in seen, "line %r twice (on %s and %s)" % (line, seen[line], sh["ShardId"])
            seen[line] = (sh["ShardId"], closed, holds(sh, key))
        mixed += not all(holds(sh, key) for key, _ in u)
want = first + middle + rest
assert set(seen) == set(want) and len(seen) == len(want), "%d lines missing, %d not put" % (
    len(set(want) - set(seen)), len(set(seen) - set(want)))
for line in first:  # put before the reshard: on the parent its key maps to, which keeps it
    assert seen[line][1] and seen[line][2], "line %r is on %s" % (line, seen[line][0])
for line in middle:  # aggregated for the parents, put after the reshard: on a child
    assert not seen[line][1], "line %r is on the closed %s" % (line, seen[line][0])
for line in rest:  # after put listed the shards again: on the child its key maps to
    assert not seen[line][1] and seen[line][2], "line %r is on %s, not its key's child" % (line, seen[line][0])
print("put across a reshard: %d lines once each; %d records aggregated for the parents held keys of two children"
      % (len(seen), mixed))
PY

mkfifo "$T/in"
"$LMR" put --stream rs --partition-key-field 1 --max-buffered-ms 100 < "$T/in" 2> "$T/put.log" &
PUT=$!
PIDS+=("$PUT")
exec 3> "$T/in"
# wait_count N: until the stream holds N lines (put sends what it holds after 100 ms without input).
wait_count() {
    local i
    for i in $(seq 1 100); do
        [ "$(python3 "$T/stream.py" count)" = "$1" ] && return 0
        sleep 0.2
    done
    fail "the stream did not reach $1 lines: $(cat "$T/put.log")"
}
cat "$T/first.txt" >&3
wait_count 2000
aws kinesis update-shard-count --stream-name rs --target-shard-count 4 --scaling-type UNIFORM_SCALING > /dev/null
[ "$(aws kinesis list-shards --stream-name rs --query 'length(Shards)' --output text)" = 6 ] ||
    fail "UpdateShardCount did not make 4 children of the 2 shards"
# Aggregated by the old map and sent after the pause: they land on children, which put notices
# when it reads its next line.
cat "$T/middle.txt" >&3
wait_count 2200
cat "$T/rest.txt" >&3
exec 3>&-
wait "$PUT" || fail "lambdamr put failed: $(cat "$T/put.log")"
grep -q "4000 records into rs" "$T/put.log" || fail "put did not put 4000 lines: $(cat "$T/put.log")"
python3 "$T/stream.py" check "$T/first.txt" "$T/middle.txt" "$T/rest.txt" "$T/put.log" ||
    fail "the stream does not hold what put wrote"
echo "PASS put_reshard_kinesis"
