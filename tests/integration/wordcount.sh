#!/usr/bin/env bash
# Word count end to end on the embedded default, compared with an independent oracle on the
# input shapes that break line splitting: many files, one file in many shards, lines across
# every boundary, no trailing newline, CRLF, empty files, a 10 MB line, high and NUL bytes,
# .gz and .zst inputs.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP

# Many small files, some empty, some hidden (must be skipped), in nested directories.
mkdir -p "$D/many/a/b" "$D/many/c"
for i in $(seq 1 40); do
    printf 'file %d says hello world\nhello again %d\n' "$i" $((i % 7)) > "$D/many/a/f$i.txt"
done
: > "$D/many/c/empty1.txt"
: > "$D/many/c/empty2.txt"
printf 'no trailing newline here' > "$D/many/a/b/last.txt"
printf 'crlf line one\r\ncrlf line two\r\n\r\n' > "$D/many/a/b/crlf.txt"
printf 'hidden should not count\n' > "$D/many/.hidden.txt"
printf 'underscore should not count\n' > "$D/many/_SKIPPED"
"$LAMBDAMR" run wordcount --input "$D/many" --output "$D/out-many" > "$D/run.log" 2>&1 || { cat "$D/run.log"; fail "many files: run failed"; }
check_wordcount "many files, empty files, CRLF, no trailing newline" "$D/out-many" "$D/many"

# One bigger file split into many shards, with lines crossing every boundary; two reducers.
python3 - "$D/big.txt" <<'PY'
import random, sys
r = random.Random(42)
words = [''.join(r.choice('abcdefghij') for _ in range(r.randint(1, 9))) for _ in range(3000)]
with open(sys.argv[1], 'w') as f:
    for _ in range(40000):
        f.write(' '.join(r.choice(words) for _ in range(r.randint(0, 14))) + '\n')
PY
"$LAMBDAMR" run wordcount --input "$D/big.txt" --output "$D/out-big" --split-size 4K --mappers 23 --reducers 3 \
    > "$D/run.log" 2>&1 || { cat "$D/run.log"; fail "big file: run failed"; }
check_wordcount "one file in 23 tasks of 4K shards, 3 reducers" "$D/out-big" "$D/big.txt"
ls "$D/out-big" | grep -c '^part-r-' | grep -qx 3 && pass "3 part files" || fail "expected 3 part files"

# Every split size from 1 to 40 bytes over a small file (boundaries at every byte).
printf 'alpha beta\ngamma\n\n\tdelta  epsilon\r\nzeta\nlast' > "$D/tiny.txt"
ok=1
for s in 1 2 3 5 7 11 13 17 40; do
    "$LAMBDAMR" run wordcount --input "$D/tiny.txt" --output "$D/out-tiny-$s" --split-size "$s" --mappers 100000 \
        > "$D/run.log" 2>&1 || { ok=0; cat "$D/run.log"; }
    wordcount_oracle "$D/tiny.txt" | LC_ALL=C sort > "$D/e"; job_output "$D/out-tiny-$s" > "$D/g"
    cmp -s "$D/e" "$D/g" || { ok=0; echo "split $s differs"; }
done 2>/dev/null || true
[ $ok = 1 ] && pass "boundaries at every byte (split sizes 1..40)" || fail "some split sizes differ"

# A 10 MB single line with 1 MB splits.
python3 -c "
import sys
sys.stdout.write('start ' + 'x' * 10_000_000 + ' end\nafter the long line\n')" > "$D/longline.txt"
"$LAMBDAMR" run wordcount --input "$D/longline.txt" --output "$D/out-long" --split-size 1M > "$D/run.log" 2>&1 \
    || { cat "$D/run.log"; fail "10 MB line: run failed"; }
check_wordcount "a 10 MB line with --split-size 1M" "$D/out-long" "$D/longline.txt"

# Bytes above 0x7F and NUL bytes are word bytes.
python3 -c "
import sys, random
r = random.Random(3)
out = bytearray()
for _ in range(20000):
    out += bytes(r.choice([0, 0x80, 0xff, 0xc3, 0xa9, 0x41, 0x42, 0x20, 0x0a, 0x09, 0x0b, 0x0c, 0x0d]) for _ in range(r.randint(1, 12)))
sys.stdout.buffer.write(bytes(out))" > "$D/binary.txt"
"$LAMBDAMR" run wordcount --input "$D/binary.txt" --output "$D/out-bin" --split-size 8K > "$D/run.log" 2>&1 \
    || { cat "$D/run.log"; fail "binary: run failed"; }
check_wordcount "bytes above 0x7F and NUL bytes" "$D/out-bin" "$D/binary.txt"

# Compressed inputs, alongside a plain one.
mkdir -p "$D/comp"
head -c 300000 "$D/big.txt" > "$D/comp/plain.txt"
head -c 500000 "$D/big.txt" | tail -c 200000 | gzip -c > "$D/comp/part.gz"
tail -c 300000 "$D/big.txt" | zstd -q -c > "$D/comp/part.zst"
"$LAMBDAMR" run wordcount --input "$D/comp" --output "$D/out-comp" --split-size 64K > "$D/run.log" 2>&1 \
    || { cat "$D/run.log"; fail "compressed: run failed"; }
check_wordcount ".gz and .zst inputs" "$D/out-comp" "$D/comp"

# Several --input locations, a file and a directory.
"$LAMBDAMR" run wordcount --input "$D/tiny.txt" --input "$D/many/a/b" --output "$D/out-multi" > "$D/run.log" 2>&1 \
    || { cat "$D/run.log"; fail "multi input: run failed"; }
wordcount_oracle "$D/tiny.txt" "$D/many/a/b" | LC_ALL=C sort > "$D/e"; job_output "$D/out-multi" > "$D/g"
cmp -s "$D/e" "$D/g" && pass "several --input locations" || fail "several --input locations differ"

# The report is there and adds up.
python3 - "$D/out-big/_lambdamr/report.json" <<'PY' && pass "report.json adds up" || fail "report.json"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['status'] == 'succeeded'
assert r['mappers'] == 23 and r['reducers'] == 3, (r['mappers'], r['reducers'])
m = r['phases']['map']; red = r['phases']['reduce']
assert m['tasks'] == 23 and m['attempts'] >= 23
assert m['records_in'] == 40000, m['records_in']
assert red['records_out'] == sum(1 for _ in open(sys.argv[1].replace('_lambdamr/report.json', 'part-r-00000'))) + \
    sum(1 for _ in open(sys.argv[1].replace('_lambdamr/report.json', 'part-r-00001'))) + \
    sum(1 for _ in open(sys.argv[1].replace('_lambdamr/report.json', 'part-r-00002')))
assert r['cost']['invocations'] == m['attempts'] + red['attempts'] + len(r['coordinator_invocations'])
assert r['cost']['gb_seconds'] > 0 and r['cost']['total_usd'] > 0
for inv in r['invocations']:
    assert inv['billed_duration_ms'] >= inv['duration_ms'] > 0, inv
    assert inv['max_memory_used_mb'] <= inv['memory_size_mb'], inv
assert r['store_requests']['put'] > 0 and r['store_requests']['get'] > 0
PY

# --json prints the report on stdout and nothing else.
"$LAMBDAMR" run wordcount --input "$D/tiny.txt" --output "$D/out-json" --json > "$D/report.out" 2> "$D/run.log"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['status']=='succeeded'" "$D/report.out" \
    && pass "--json prints the report" || fail "--json output is not the report"

finish
