#!/usr/bin/env bash
# Exec jobs (Hadoop Streaming): any executable as mapper, combiner and reducer, shipped with
# --file into the local functions' task root. Outputs are checked against the built-in job or
# the same command run outside lambdamr; failing children (non-zero exit, signal, a line without
# a TAB, a missing interpreter) give a task error naming the command, the status and the first
# lines of its stderr; children that never read, or write 100x their input, give the right
# output. Every run is bounded with timeout: a hang fails the test.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
cd "$D"

run() { # run NAME ARGS... : lambdamr run, log in $D/NAME.log
    local name=$1; shift
    timeout 120 "$LAMBDAMR" run "$@" > "$D/$name.log" 2>&1
}
# expect_error NAME PATTERN...: the run failed, wrote no _SUCCESS, and its log matches each pattern
expect_error() {
    local name=$1 out=$2; shift 2
    local st=0
    run "$name" "$@" || st=$?
    if [ "$st" = 0 ] || [ "$st" = 124 ] || [ -e "$out/_SUCCESS" ]; then
        cat "$D/$name.log"; fail "$name: expected a task error, got status $st"; return 1
    fi
}
has() { grep -qF -- "$2" "$D/$1.log" || { cat "$D/$1.log"; fail "$1: no '$2' in the error"; return 1; }; }

python3 - "$D/text.txt" <<'PY'
import random, sys
r = random.Random(5)
words = [''.join(r.choice('abcdefgh') for _ in range(r.randint(1, 7))) for _ in range(2000)]
with open(sys.argv[1], 'w') as f:
    for _ in range(12000):
        f.write(' '.join(r.choice(words) for _ in range(r.randint(0, 12))) + '\n')
PY
cat > wc_map.py <<'PY'
import sys
out = sys.stdout
for line in sys.stdin:
    for w in line.split():
        out.write(w + "\t1\n")
PY
cat > wc_reduce.py <<'PY'
import sys
cur, n = None, 0
for line in sys.stdin:
    k, v = line.rstrip("\n").split("\t", 1)
    if k != cur:
        if cur is not None:
            print(f"{cur}\t{n}")
        cur, n = k, 0
    n += int(v)
if cur is not None:
    print(f"{cur}\t{n}")
PY

# ---- word count: Python mapper and reducer (shipped with --file) equal the built-in --------------------
run builtin wordcount --input text.txt --output out-builtin || { cat builtin.log; fail "built-in wordcount"; }
LC_ALL=C sort out-builtin/part-r-* > builtin.txt
if run py exec --mapper 'python3 wc_map.py' --reducer 'python3 wc_reduce.py' --file wc_map.py --file wc_reduce.py \
    --input text.txt --output out-py --split-size 64K --reducers 3; then
    LC_ALL=C sort out-py/part-r-* | cmp -s - builtin.txt && pass "exec word count (python3 mapper and reducer) equals the built-in ($(wc -l < builtin.txt) words)" \
        || fail "exec python word count differs from the built-in"
else
    cat py.log; fail "exec python word count run"
fi
if run pyc exec --mapper 'python3 wc_map.py' --combiner 'python3 wc_reduce.py' --reducer 'python3 wc_reduce.py' \
    --file wc_map.py --file wc_reduce.py --input text.txt --output out-pyc --split-size 64K --reducers 2 --json; then
    LC_ALL=C sort out-pyc/part-r-* | cmp -s - builtin.txt && pass "with the reducer as --combiner too: same output" \
        || fail "exec word count with combiner differs"
    python3 -c "
import json, sys
r = json.load(open('pyc.log'))
words = sum(int(l.split()[1]) for l in open('builtin.txt'))
sys.exit(not (r['phases']['map']['records_out'] < words))" && pass "the combiner shrank the map output" \
        || fail "combiner did not reduce map output records"
else
    cat pyc.log; fail "exec word count with combiner run"
fi

# A shipped compiled binary (the benchmark's C mapper and reducer), found as ./NAME in files/.
cc -O2 -o wc_map "$LMR_SOURCE_DIR/benchmarks/exec/wc_map.c" && cc -O2 -o wc_reduce "$LMR_SOURCE_DIR/benchmarks/exec/wc_reduce.c"
if run cbin exec --mapper ./wc_map --reducer wc_reduce --file wc_map --file wc_reduce --input text.txt --output out-c \
    --split-size 64K; then
    LC_ALL=C sort out-c/part-r-* | cmp -s - builtin.txt && pass "shipped C binaries (./wc_map, wc_reduce on PATH) equal the built-in" \
        || fail "C exec word count differs"
else
    cat cbin.log; fail "C exec run"
fi

# Reducers see their keys sorted, one line per value.
if run sorted exec --mapper ./wc_map --reducer cat --file wc_map --input text.txt --output out-sorted --reducers 2; then
    ok=1
    for p in out-sorted/part-r-*; do cut -f1 "$p" | LC_ALL=C sort -c 2> /dev/null || ok=0; done
    want=$(awk '{ n += $2 } END { print n }' builtin.txt)
    [ "$ok" = 1 ] && [ "$(cat out-sorted/part-r-* | wc -l)" = "$want" ] \
        && pass "a 'cat' reducer sees every value on its own line, keys in order ($want lines)" \
        || fail "reducer input not sorted or lines missing"
else
    cat sorted.log; fail "cat reducer run"
fi

# ---- map-only: cut -d, -f1,2 ---------------------------------------------------------------------------
python3 -c "
import random
r = random.Random(9)
with open('rows.csv', 'w') as f:
    for i in range(50000):
        f.write('%d,%s,%d,%s\n' % (i, r.choice(['x', 'yy', 'zzz']), r.randint(0, 10**6), 'tail' * r.randint(0, 3)))
"
if run cut exec --mapper 'cut -d, -f1,2' --input rows.csv --output out-cut --split-size 128K; then
    n=$(ls out-cut | grep -c '^part-m-')
    cat out-cut/part-m-* | cmp -s - <(cut -d, -f1,2 rows.csv) && [ "$n" -ge 3 ] \
        && pass "map-only 'cut -d, -f1,2' over $n shards equals cut on the whole file" || fail "map-only cut output"
else
    cat cut.log; fail "map-only cut run"
fi

# The child's environment names its input and task (Hadoop's variables).
if run env exec --mapper 'cat > /dev/null; printf "%s|%s|%s|%s\n" "$mapreduce_map_input_file" "$mapreduce_map_input_start" "$mapreduce_map_input_length" "$mapreduce_task_id"' \
    --input rows.csv --output out-env --split-size 128K; then
    size=$(stat -c %s rows.csv)
    python3 - "$D/rows.csv" "$size" out-env <<'PY' && pass "mapreduce_map_input_file/_start/_length and mapreduce_task_id cover the input" || fail "child environment"
import glob, sys
path, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [l.rstrip('\n').split('|') for p in sorted(glob.glob(out + '/part-m-*')) for l in open(p)]
assert all(r[0] == path for r in rows), rows[:2]
ranges = sorted((int(r[1]), int(r[2])) for r in rows)
pos = 0
for s, n in ranges:
    assert s == pos, (s, pos)
    pos += n
assert pos == size, (pos, size)
assert sorted(r[3] for r in rows) == ['m-%05d' % i for i in range(len(rows))], rows
PY
else
    cat env.log; fail "environment run"
fi

# --separator and --key-fields: key "a,b" of "a,b,c".
if run sep exec --mapper 'cut -d, -f2,3,1' --reducer 'cat' --separator , --key-fields 2 --input rows.csv \
    --output out-sep --reducers 1; then
    cut -d, -f1,2 out-sep/part-r-00000 | LC_ALL=C sort -c 2> /dev/null && [ "$(wc -l < out-sep/part-r-00000)" = 50000 ] \
        && pass "--separator , --key-fields 2: sorted by the two-field key" || fail "separator/key-fields output"
else
    cat sep.log; fail "separator run"
fi

# ---- failing children: the task error names the command, the status and the stderr's first lines -----------
if expect_error exit3 out-exit3 exec --mapper 'echo "bad things happened" >&2; echo second line >&2; exit 3' \
    --reducer cat --input text.txt --output out-exit3 --max-attempts 1; then
    has exit3 "exec mapper 'echo \"bad things happened\" >&2; echo second line >&2; exit 3'" && has exit3 "exited with status 3" \
        && has exit3 "its stderr began: bad things happened | second line" && has exit3 "input $D/text.txt bytes 0-" \
        && pass "a mapper that exits 3: error with command, status, stderr"
fi
if expect_error sig out-sig exec --mapper 'head -c 100 > /dev/null; echo dying >&2; kill -SEGV $$' --reducer cat \
    --input text.txt --output out-sig --max-attempts 1; then
    has sig "was killed by signal 11 (Segmentation fault)" && has sig "its stderr began: dying" \
        && pass "a mapper killed by a signal: error names the signal"
fi
if expect_error notab out-notab exec --mapper 'sed "s/ /:/g"' --reducer cat --input text.txt --output out-notab --max-attempts 1; then
    has notab "exec mapper 'sed \"s/ /:/g\"'" && has notab "wrote line 1 of its output without a separator (TAB)" \
        && pass "a mapper line without a TAB: error names the command and the line"
fi
if expect_error nopy out-nopy exec --mapper 'no-such-interpreter wc_map.py' --reducer cat --input text.txt --output out-nopy \
    --max-attempts 1; then
    has nopy "exited with status 127" && has nopy "provided.al2023 runtime has no Python" \
        && pass "a missing interpreter: status 127 and the provided.al2023 note"
fi
if expect_error rfail out-rfail exec --mapper ./wc_map --reducer 'head -n 3; exit 4' --file wc_map --input text.txt \
    --output out-rfail --max-attempts 1; then
    has rfail "exec reducer 'head -n 3; exit 4' (task r-00000" && has rfail "exited with status 4" \
        && pass "a failing reducer: error names the reducer, its task and status"
fi
# A child that never ends is ended with its execution environment by the function's timeout.
# Its command line is unique to this run (sleep adds its arguments): other runs of this test on
# the machine (the other build, other worktrees) have their own never-ending child at the same time.
NEVER="sleep 371 0.$$"
if expect_error tmo out-tmo exec --mapper "$NEVER" --reducer cat --input text.txt --output out-tmo --max-attempts 1 \
    --timeout 2; then
    for _ in $(seq 20); do pgrep -f -x "$NEVER" > /dev/null || break; sleep 0.5; done
    has tmo "Task timed out after" && ! pgrep -f -x "$NEVER" > /dev/null \
        && pass "a child that never ends: the task times out and the child is gone" || fail "timed-out child left running"
fi
# The child's memory counts against the function's, as on Lambda: a child holding ~300 MB in a
# 256 MB function ends the environment (Runtime.OutOfMemory).
if expect_error oom out-oom exec --mapper 'python3 -c "import sys, time; b = bytearray(300 << 20); b[::4096] = b\"x\" * len(b[::4096]); sys.stdin.read(); time.sleep(2)"' \
    --reducer cat --input text.txt --output out-oom --max-attempts 1 --memory 256; then
    has oom "ran out of memory" && pass "a child's memory counts against the function's memory size"
fi
[ -z "$(ls out-exit3 out-sig out-notab out-rfail 2> /dev/null | grep part-)" ] && pass "failed jobs leave no part files" \
    || fail "part files left by failed jobs"

# ---- children that never read, or write much more than they read --------------------------------------------
python3 -c "import sys; d = open('text.txt', 'rb').read() * 3; sys.stdout.buffer.write(d[:1 << 20])" > one_mb.txt
# Each shard's child prints its byte range without reading: the ranges must cover the input.
if run noread exec --mapper 'printf "%s\t%s\n" "$mapreduce_map_input_start" "$mapreduce_map_input_length"' \
    --reducer cat --input one_mb.txt --output out-noread --split-size 256K --reducers 1; then
    covered=$(sort -n out-noread/part-r-00000 | awk -F'\t' 'BEGIN { p = 0 } $1 != p { bad = 1 } { p += $2 } END { print bad ? -1 : p }')
    [ "$covered" = 1048576 ] && [ "$(wc -l < out-noread/part-r-00000)" -ge 4 ] \
        && pass "mappers that never read their stdin: their output, no hang ($(wc -l < out-noread/part-r-00000) shards)" \
        || fail "never-reading mapper output: $(cat out-noread/part-r-*)"
else
    cat noread.log; fail "never-reading mapper run"
fi
# One 3 MB shard (more than the pipe holds) to a child that sleeps, never reads, then exits.
cat one_mb.txt one_mb.txt one_mb.txt > three_mb.txt
if run noread2 exec --mapper 'sleep 1; printf "done\t1\n"' --reducer cat --input three_mb.txt --output out-noread2 \
    --split-size 8M; then
    [ "$(cat out-noread2/part-r-*)" = "$(printf 'done\t1')" ] && pass "a never-reading child with a full stdin pipe: no hang" \
        || fail "never-reading (full pipe) output: $(cat out-noread2/part-r-*)"
else
    cat noread2.log; fail "never-reading (full pipe) run"
fi
AMPLIFY='awk "{ for (i = 0; i < 100; i++) print i \"\t\" \$0 }"'
if run amp exec --mapper "$AMPLIFY" --input one_mb.txt --output out-amp --split-size 256K; then
    got=$(cat out-amp/part-m-* | md5sum) want=$(sh -c "$AMPLIFY" < one_mb.txt | md5sum)
    size=$(cat out-amp/part-m-* | wc -c)
    [ "$got" = "$want" ] && [ "$size" -gt 100000000 ] && pass "a mapper writing $((size / 1000000)) MB for 1 MB of input: exact output" \
        || fail "amplifying mapper output differs"
else
    cat amp.log; fail "amplifying mapper run"
fi

# ---- argument errors ------------------------------------------------------------------------------------------
run noarg exec --input text.txt --output out-noarg && fail "exec without --mapper ran" \
    || { grep -q -- "--mapper CMD is required" noarg.log && pass "exec without --mapper: usage error" || { cat noarg.log; fail "no-mapper message"; }; }
run combonly exec --mapper cat --combiner cat --input text.txt --output out-co && fail "combiner without reducer ran" \
    || { grep -q -- "--reducer CMD is required" combonly.log && pass "--combiner without --reducer refused" || { cat combonly.log; fail "combiner message"; }; }
run nofile exec --mapper cat --file ./missing.py --input text.txt --output out-nf && fail "missing --file ran" \
    || { grep -q "cannot ship './missing.py'" nofile.log && pass "a missing --file is refused before anything runs" || { cat nofile.log; fail "missing file message"; }; }
run unshipped exec --mapper 'python3 wc_map.py' --reducer 'python3 wc_reduce.py' --file wc_reduce.py --input text.txt \
    --output out-unshipped --max-attempts 1 || true
grep -q "the mapper command names 'wc_map.py', a file here that is not shipped" unshipped.log \
    && ! grep -q "names 'wc_reduce.py'" unshipped.log && pass "a script named but not shipped gets a warning" \
    || { cat unshipped.log; fail "unshipped warning"; }
run awsfile exec --mapper ./wc_map --file wc_map --backend aws --function-prefix p --input text.txt --output out-af \
    && fail "--file with --backend aws ran" || { grep -q "ship it with 'lambdamr package --file PATH'" awsfile.log \
    && pass "--file with --backend aws points to lambdamr package --file" || { cat awsfile.log; fail "aws --file message"; }; }
finish
