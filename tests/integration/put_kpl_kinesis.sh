#!/usr/bin/env bash
# `lambdamr put` into Kinesis emulated by moto_server (SigV4 checking on), read back with boto3 and
# a protobuf decoder written here from amazon-kinesis-producer's aggregation-format.md:
#  - by default (1 MiB records, keys from field 1 over 3 shards): KPL aggregated records (magic,
#    MD5 of the protobuf), one per shard, each user record keeping its partition key (every key
#    once in the key table), every user record on the shard its key's MD5 maps to, in input order
#    per key, and the aggregated record put with its first user record's key;
#  - with --aggregate-max-bytes 2000 (line-number keys, one 3000-byte line): aggregated records
#    packed up to 2000 bytes with their key, the long line alone as a plain record;
#  - with --no-aggregate: one plain record per line, data and key as given;
#  - `lambdamr stream wordcount` over the 2000-byte stream and the plain one counts exactly;
#  - a pause in standard input sends what is held after --max-buffered-ms, before input ends.
set -euo pipefail
BIN=${LMR_BIN_DIR:?set LMR_BIN_DIR to the bin directory of a build}
SRC=${LMR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
LMR=$BIN/lambdamr
source "$SRC/tests/integration/lib/moto.sh"
source "$SRC/tests/integration/lib/stream.sh"
kinesis_test_init put-kpl
moto_start || fail "moto_server did not start"
export AWS_ENDPOINT_URL_KINESIS=$MOTO_URL
kinesis_stream_create agg 3
kinesis_stream_create small 2
kinesis_stream_create plain 2
kinesis_stream_create paused 1

python3 - "$T" <<'PY'
import random, sys
r = random.Random(15)
words = lambda: " ".join("w%d" % r.randrange(400) for _ in range(r.randrange(1, 8)))
with open(sys.argv[1] + "/keyed.txt", "w") as f:
    for _ in range(3000):
        f.write("u%d %s\n" % (r.randrange(300), words()))
with open(sys.argv[1] + "/lines.txt", "w") as f:
    for i in range(2000):
        f.write(("L " * 1500).strip() + "\n" if i == 1200 else words() + "\n")
PY

put() { # put STREAM INPUT ARGS...: run lambdamr put, keep its summary line in $T/STREAM.summary
    local stream=$1 input=$2
    shift 2
    "$LMR" put --stream "$stream" "$@" < "$input" 2> "$T/$stream.summary" ||
        { cat "$T/$stream.summary" >&2; fail "lambdamr put into $stream failed"; }
}
put agg "$T/keyed.txt" --partition-key-field 1
put small "$T/lines.txt" --aggregate-max-bytes 2000
put plain "$T/keyed.txt" --partition-key-field 1 --no-aggregate

# check STREAM INPUT KEYFIELD MODE MAX_BYTES: what the stream holds, against the input.
check() {
    python3 - "$@" "$T/$1.summary" <<'PY' || fail "stream $1 does not hold what lambdamr put $4 should write"
import boto3, collections, hashlib, os, re, sys
stream, path, keyfield, mode, max_bytes, summary = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
MAGIC = b"\xf3\x89\x9a\xc2"

def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7F) << shift; shift += 7
        if c < 0x80:
            return v, i

def fields(b):  # (number, wire type, value) of a protobuf message; only the types the format uses
    i = 0
    while i < len(b):
        tag, i = varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v = b[i:i + n]; i += n
            assert len(v) == n, "truncated"
        else:
            raise AssertionError("wire type %d" % wt)
        yield num, wt, v

def aggregated(body):
    pks, ehks, recs = [], [], []
    for num, wt, v in fields(body):
        if num == 1: pks.append(v.decode())
        elif num == 2: ehks.append(v.decode())
        elif num == 3:
            f = {n: x for n, _, x in fields(v)}
            assert 1 in f and 3 in f and 2 not in f and 4 not in f, f
            recs.append((f[1], f[3]))
        else:
            raise AssertionError("field %d" % num)
    return pks, ehks, recs

want = []  # (key, line) in input order
with open(path, "rb") as fh:
    for n, line in enumerate(fh, 1):
        line = line.rstrip(b"\n")
        key = line.split()[keyfield - 1].decode() if keyfield else str(n)
        want.append((key, line))
k = boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"])
got, plain, n_agg, n_plain = [], set(), 0, 0
for sh in k.list_shards(StreamName=stream)["Shards"]:
    lo, hi = int(sh["HashKeyRange"]["StartingHashKey"]), int(sh["HashKeyRange"]["EndingHashKey"])
    on_shard = lambda key: lo <= int(hashlib.md5(key.encode()).hexdigest(), 16) <= hi
    it = k.get_shard_iterator(StreamName=stream, ShardId=sh["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = []
    while it:
        r = k.get_records(ShardIterator=it, Limit=10000)
        recs += r["Records"]
        it = r.get("NextShardIterator") if r["Records"] else None
    kinds = []
    for rec in recs:
        d, pk = rec["Data"], rec["PartitionKey"]
        assert len(d) + len(pk.encode()) <= max_bytes or not d.startswith(MAGIC), ("too large", len(d), pk)
        if d.startswith(MAGIC):
            assert mode == "aggregated", "an aggregated record with --no-aggregate"
            body, digest = d[4:-16], d[-16:]
            assert hashlib.md5(body).digest() == digest, "wrong MD5"
            pks, ehks, urs = aggregated(body)
            assert len(urs) >= 2, "an aggregated record of %d user records (one goes plain)" % len(urs)
            assert not ehks and len(set(pks)) == len(pks), "every key once, no explicit hash keys"
            assert sorted({i for i, _ in urs}) == list(range(len(pks))), "every key of the table used"
            assert pk == pks[urs[0][0]], "the record's key is its first user record's"
            for i, data in urs:
                assert on_shard(pks[i]), "user record of key %s on shard %s" % (pks[i], sh["ShardId"])
                got.append((pks[i], data))
            n_agg += 1
            kinds.append(("agg", len(d) + len(pk.encode())))
        else:
            assert on_shard(pk), "plain record of key %s on shard %s" % (pk, sh["ShardId"])
            got.append((pk, d))
            plain.add((pk, d))
            n_plain += 1
            kinds.append(("plain", len(d)))
    # Packed up to the limit: an aggregated record followed by another lacked room for one more line.
    for (a, size), (b, _) in zip(kinds, kinds[1:]):
        assert a != "agg" or b != "agg" or size > max_bytes - 200, ("not packed", size, max_bytes)
    if mode == "aggregated" and max_bytes == 1048576:
        assert kinds and all(kd == "agg" for kd, _ in kinds) and len(kinds) == 1, ("one record per shard", kinds)
per_key = lambda pairs: {key: [l for k2, l in pairs if k2 == key] for key in set(x for x, _ in pairs)}
assert sorted(got) == sorted(want), "user records differ (%d put, %d read)" % (len(want), len(got))
assert per_key(got) == per_key(want), "a key's lines are out of order"
for key, l in want:  # a line too long to be aggregated goes alone, plain
    assert len(l) + len(key) <= max_bytes - 40 or (key, l) in plain, "a %d-byte line not alone" % len(l)
if mode == "plain":
    assert n_agg == 0 and n_plain == len(want)
else:
    assert n_agg >= 1
line = open(summary).read()
m = re.search(r"(\d+) records into %s in [0-9.]+ s as (\d+) Kinesis records" % stream, line)
assert m and int(m.group(1)) == len(want) and int(m.group(2)) == n_agg + n_plain, line
print("%s: %d lines as %d aggregated and %d plain records" % (stream, len(want), n_agg, n_plain))
PY
}
check agg "$T/keyed.txt" 1 aggregated 1048576
check small "$T/lines.txt" 0 aggregated 2000
check plain "$T/keyed.txt" 1 plain 1048576

# A pause in the input: the first lines are in the stream before the input ends.
{
    printf 'first a\nfirst b\n'
    for _ in $(seq 1 40); do
        [ "$(python3 -c '
import boto3, os, sys
k = boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL_KINESIS"])
s = k.list_shards(StreamName="paused")["Shards"][0]["ShardId"]
it = k.get_shard_iterator(StreamName="paused", ShardId=s, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
print(len(k.get_records(ShardIterator=it)["Records"]))')" = 1 ] && { echo seen > "$T/paused.seen"; break; }
        sleep 0.25
    done
    printf 'last\n'
} | "$LMR" put --stream paused --max-buffered-ms 200 --quiet
[ -f "$T/paused.seen" ] || fail "lines held during a pause in the input were not sent after --max-buffered-ms"

# The stream function counts every line once, aggregated or not.
count() { python3 -c '
import collections, sys
c = collections.Counter()
for line in open(sys.argv[1], "rb"): c.update(line.split())
for k in sorted(c): sys.stdout.buffer.write(k + b"\t" + str(c[k]).encode() + b"\n")' "$1"; }
count "$T/lines.txt" > "$T/small.want"
count "$T/keyed.txt" > "$T/plain.want"
for s in small plain; do
    "$LMR" stream wordcount --source kinesis://$s --window 1 --output "$T/$s.out" --starting-position trim-horizon \
        --close-grace-ms 300 --quiet 2>>"$T/$s.log" &
    PIDS+=($!)
    eval "C_$s=\$!"
done
stream_wait_exact "$T/small.want" "$T/small.out" "$C_small" "$T/small.log" 40 1 "of the aggregated stream"
stream_wait_exact "$T/plain.want" "$T/plain.out" "$C_plain" "$T/plain.log" 40 1 "of the plain stream"
for c in "$C_small" "$C_plain"; do
    kill -TERM "$c"
    wait "$c" || fail "a consumer did not stop cleanly on SIGTERM"
done
echo "ok: aggregated (1 MiB and 2000-byte records, keys kept, shards as keys map) and plain puts; word counts exact"
