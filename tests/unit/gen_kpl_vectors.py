#!/usr/bin/env python3
"""Write tests/unit/kpl_vectors.h: KPL aggregated records made with Google's protobuf library
(python3-protobuf; the message types are built from a descriptor here, from the format in
amazon-kinesis-producer's aggregation-format.md), and what a deaggregator must find in them.
test_stream_kpl.c reads them; lambdamr's own reader and writer take no part in making them.

    /usr/bin/python3 tests/unit/gen_kpl_vectors.py > tests/unit/kpl_vectors.h   (Debian: python3-protobuf)
"""
import hashlib
import random

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

MAGIC = b"\xf3\x89\x9a\xc2"

fdp = descriptor_pb2.FileDescriptorProto(name="kpl.proto", package="kpl", syntax="proto2")
F = descriptor_pb2.FieldDescriptorProto
tag = fdp.message_type.add(name="Tag")
tag.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_REQUIRED)
tag.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
rec = fdp.message_type.add(name="Record")
rec.field.add(name="partition_key_index", number=1, type=F.TYPE_UINT64, label=F.LABEL_REQUIRED)
rec.field.add(name="explicit_hash_key_index", number=2, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
rec.field.add(name="data", number=3, type=F.TYPE_BYTES, label=F.LABEL_REQUIRED)
rec.field.add(name="tags", number=4, type=F.TYPE_MESSAGE, type_name=".kpl.Tag", label=F.LABEL_REPEATED)
agg = fdp.message_type.add(name="AggregatedRecord")
agg.field.add(name="partition_key_table", number=1, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
agg.field.add(name="explicit_hash_key_table", number=2, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
agg.field.add(name="records", number=3, type=F.TYPE_MESSAGE, type_name=".kpl.Record", label=F.LABEL_REPEATED)
pool = descriptor_pool.DescriptorPool()
pool.Add(fdp)
try:
    AggregatedRecord = message_factory.GetMessageClass(pool.FindMessageTypeByName("kpl.AggregatedRecord"))
except AttributeError:  # protobuf < 4
    AggregatedRecord = message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("kpl.AggregatedRecord"))


def wrap(body, digest=None):
    return MAGIC + body + (digest if digest is not None else hashlib.md5(body).digest())


def message(pks, ehks, records, partial=False):
    m = AggregatedRecord()
    m.partition_key_table.extend(pks)
    m.explicit_hash_key_table.extend(ehks)
    for r in records:
        x = m.records.add()
        if "pk" in r:
            x.partition_key_index = r["pk"]
        if "ehk" in r:
            x.explicit_hash_key_index = r["ehk"]
        if "data" in r:
            x.data = r["data"]
        for k, v in r.get("tags", []):
            t = x.tags.add()
            if k is not None:
                t.key = k
            if v is not None:
                t.value = v
    return m.SerializePartialToString() if partial else m.SerializeToString()


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


rnd = random.Random(15)
lines = [b"w%d w%d w%d" % (rnd.randrange(50000), rnd.randrange(50000), rnd.randrange(50000)) for _ in range(40)]
big = bytes(rnd.randrange(256) for _ in range(300))  # two-byte length varints
vectors = []
# (name, data, aggregated, records [(pk_index, has_ehk, ehk_index, data)], pks)
recs = [{"pk": 0, "data": b"alpha"}, {"pk": 1, "ehk": 0, "data": b""}, {"pk": 0, "data": big, "tags": [("k", "v"), ("only-key", None)]},
        {"pk": 1, "ehk": 0, "data": b"\x00\x01binary\xff"}]
vectors.append(("kpl_standard", wrap(message(["pk-a", "pk-b"], ["340282366920938463463374607431768211455"], recs)), True,
                [(r["pk"], "ehk" in r, r.get("ehk", 0), r["data"]) for r in recs], ["pk-a", "pk-b"]))
# What lambdamr's writer must produce byte for byte: one partition key, every record at index 0, no tags.
one = [{"pk": 0, "data": d} for d in lines]
vectors.append(("kpl_lines", wrap(message(["00000000000000000001"], [], one)), True, [(0, False, 0, d) for d in lines],
                ["00000000000000000001"]))
# What `lambdamr put` writes: a partition key table (130 keys: indexes past 127 take two bytes),
# user records pointing into it (no explicit hash keys, no tags), a 300-byte one among them.
keys = ["key-%d" % i for i in range(130)]
keyed = [{"pk": (i * 7) % 130, "data": big if i == 70 else lines[i % 40]} for i in range(140)]
vectors.append(("kpl_keyed", wrap(message(keys, [], keyed)), True, [(r["pk"], False, 0, r["data"]) for r in keyed], keys))
vectors.append(("kpl_empty_data", wrap(message(["k"], [], [{"pk": 0, "data": b""}])), True, [(0, False, 0, b"")], ["k"]))
# Unknown fields (varint, fixed64, fixed32, length-delimited) at both levels are skipped.
unk = varint(9 << 3 | 0) + varint(300) + varint(10 << 3 | 1) + b"12345678" + varint(11 << 3 | 5) + b"abcd" + \
    varint(12 << 3 | 2) + varint(3) + b"xyz"
rec_unk = message(["k"], [], [{"pk": 0, "data": b"inner"}])
r_body = varint(1 << 3 | 0) + varint(0) + unk + varint(3 << 3 | 2) + varint(5) + b"later"
with_unknown = rec_unk + unk + varint(3 << 3 | 2) + varint(len(r_body)) + r_body
vectors.append(("kpl_unknown_fields", wrap(with_unknown), True, [(0, False, 0, b"inner"), (0, False, 0, b"later")], ["k"]))
# A repeated scalar takes its last value; a second data field replaces the first.
r_twice = varint(1 << 3 | 0) + varint(5) + varint(3 << 3 | 2) + varint(5) + b"first" + varint(1 << 3 | 0) + varint(1) + \
    varint(3 << 3 | 2) + varint(6) + b"second"
vectors.append(("kpl_last_wins", wrap(message(["a", "b"], [], []) + varint(3 << 3 | 2) + varint(len(r_twice)) + r_twice), True,
                [(1, False, 0, b"second")], ["a", "b"]))
# Not aggregated (plain records), as the deaggregation libraries treat them:
good = message(["k"], [], [{"pk": 0, "data": b"x"}])
vectors.append(("plain_bad_md5", wrap(good, hashlib.md5(good + b"!").digest()), False, [], []))
vectors.append(("plain_no_magic", b"\xf3\x89\x9a\xc3" + good + hashlib.md5(good).digest(), False, [], []))
vectors.append(("plain_only_digest", MAGIC + hashlib.md5(b"").digest(), False, [], []))
vectors.append(("plain_text", b"just a line of text, longer than twenty bytes", False, [], []))
vectors.append(("plain_missing_data", wrap(message(["k"], [], [{"pk": 0}], partial=True)), False, [], []))
vectors.append(("plain_missing_pk_index", wrap(message(["k"], [], [{"data": b"x"}], partial=True)), False, [], []))
vectors.append(("plain_pk_index_out_of_range", wrap(message(["k"], [], [{"pk": 1, "data": b"x"}])), False, [], []))
vectors.append(("plain_ehk_index_out_of_range", wrap(message(["k"], ["1"], [{"pk": 0, "ehk": 1, "data": b"x"}])), False, [], []))
vectors.append(("plain_tag_without_key", wrap(message(["k"], [], [{"pk": 0, "data": b"x", "tags": [(None, "v")]}], partial=True)),
                False, [], []))
vectors.append(("plain_truncated", wrap(good[:-1]), False, [], []))
vectors.append(("plain_group", wrap(good + varint(7 << 3 | 3) + varint(7 << 3 | 4)), False, [], []))
vectors.append(("plain_field_zero", wrap(good + b"\x00\x00"), False, [], []))


def library_verdict(data):
    """What the deaggregation libraries make of data: (aggregated, records, partition keys), with
    the protobuf library parsing (DecodeError, a missing required field: a plain record) and a key
    index outside its table counted as malformed (the Python library raises on it)."""
    if len(data) < 4 or data[:4] != MAGIC or len(data) - 4 <= 16:
        return False, [], []
    body, digest = data[4:-16], data[-16:]
    if hashlib.md5(body).digest() != digest:
        return False, [], []
    m = AggregatedRecord()
    try:
        m.ParseFromString(body)
        if not m.IsInitialized():
            return False, [], []
    except Exception:
        return False, [], []
    out = []
    for r in m.records:
        if r.partition_key_index >= len(m.partition_key_table):
            return False, [], []
        if r.HasField("explicit_hash_key_index") and r.explicit_hash_key_index >= len(m.explicit_hash_key_table):
            return False, [], []
        out.append((r.partition_key_index, r.HasField("explicit_hash_key_index"), r.explicit_hash_key_index, r.data))
    return True, out, list(m.partition_key_table)


# lambdamr is stricter than this protobuf library here (docs/STREAMING.md): groups are malformed, and a
# tag of field number 0 (which the library takes as the end of the message) too.
STRICTER = {"plain_group", "plain_field_zero"}
checked = []
for name, data, aggregated, records, pks in vectors:
    lib = library_verdict(data)
    if name in STRICTER:
        assert lib[0], name  # the library takes it; lambdamr does not
        lib = (False, [], [])
    assert lib == (aggregated, records, pks), (name, lib, aggregated, records, pks)
    checked.append((name, data) + lib)
vectors = checked


def c_bytes(b):
    return ", ".join("0x%02x" % x for x in b) if b else "0"


print("/* Generated by tests/unit/gen_kpl_vectors.py with Google's protobuf %s: do not edit. */" %
      __import__("google.protobuf").protobuf.__version__)
print("#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n")
print("/* clang-format off */")
print("struct kpl_vector_record {\n    uint64_t pk;\n    bool has_ehk;\n    uint64_t ehk;\n    const uint8_t *data;\n    size_t len;\n};")
print("struct kpl_vector {\n    const char *name;\n    const uint8_t *data;\n    size_t len;\n    bool aggregated;\n"
      "    const struct kpl_vector_record *records;\n    size_t n_records;\n    const char *const *pks;\n    size_t n_pks;\n};\n")
for name, data, aggregated, records, pks in vectors:
    print("static const uint8_t %s_data[] = {%s};" % (name, c_bytes(data)))
    for i, r in enumerate(records):
        print("static const uint8_t %s_r%d[] = {%s};" % (name, i, c_bytes(r[3])))
    if records:
        print("static const struct kpl_vector_record %s_records[] = {%s};" % (
            name, ", ".join("{%d, %s, %d, %s_r%d, %d}" % (r[0], "true" if r[1] else "false", r[2], name, i, len(r[3]))
                            for i, r in enumerate(records))))
    if pks:
        print("static const char *const %s_pks[] = {%s};" % (name, ", ".join('"%s"' % k for k in pks)))
print("static const struct kpl_vector kpl_vectors[] = {")
for name, data, aggregated, records, pks in vectors:
    print('    {"%s", %s_data, %d, %s, %s, %d, %s, %d},' % (
        name, name, len(data), "true" if aggregated else "false", name + "_records" if records else "NULL", len(records),
        name + "_pks" if pks else "NULL", len(pks)))
print("};")
print("/* The lines of kpl_lines, for building the same record with lambdamr's writer. */")
print("static const char *const kpl_lines_text[] = {%s};" % ", ".join('"%s"' % d.decode() for d in lines))
print("/* clang-format on */")
