#!/usr/bin/env bash
# Hostile and broken local inputs (issue 11 items 1-4 and 8): each must give a clear error and
# a non-zero exit with nothing written, or the right answer; never a wrong answer with exit 0.
#   1. damaged compressed input: truncated gzip/zstd, CRC-32/ISIZE mismatch, zstd checksum
#   2. symbolic link loops and inputs reached twice
#   3. --split-size that would plan millions of shards; sizes that are not whole numbers
#   4. file names and job arguments that are not UTF-8
#   8. an output inside its own input; argument errors exit 2 (also under ASan: no leaks)
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
BAD_TRIED=0

# expect_failure NAME OUTDIR PATTERN... -- CMD...: CMD fails (exit != 0), stderr matches every
# PATTERN (grep -E), and OUTDIR holds no _SUCCESS and no part file.
expect_failure() {
    local name=$1 out=$2; shift 2
    local pats=()
    while [ "$1" != -- ]; do pats+=("$1"); shift; done
    shift
    BAD_TRIED=$((BAD_TRIED + 1))
    local rc=0
    timeout 60 "$@" > "$D/out.txt" 2> "$D/err.txt" || rc=$?
    if [ "$rc" -eq 0 ]; then
        fail "$name: exit 0 (expected a failure)"
        return
    fi
    if [ "$rc" -eq 124 ]; then
        fail "$name: still running after 60 s"
        return
    fi
    local p
    for p in "${pats[@]}"; do
        if ! grep -Eq -- "$p" "$D/err.txt"; then
            fail "$name: the error does not match /$p/:"
            head -c 600 "$D/err.txt"
            return
        fi
    done
    if [ -e "$out/_SUCCESS" ] || ls "$out"/part-* > /dev/null 2>&1; then
        fail "$name: output was written to $out"
        return
    fi
    pass "$name (exit $rc): $(head -n 1 "$D/err.txt" | cut -c 1-160)"
}

# ---- 1. damaged compressed input --------------------------------------------------------------
seq 1 200000 | sed s/^/w/ > "$D/f.txt"
gzip -c "$D/f.txt" > "$D/f.gz"
zstd -q -c "$D/f.txt" > "$D/f.zst"   # the zstd CLI writes a content checksum by default
gsize=$(stat -c %s "$D/f.gz")
zsize=$(stat -c %s "$D/f.zst")
damage() { # damage DIR NAME: a directory holding just that one damaged object, read from stdin
    rm -rf "${D:?}/$1"; mkdir -p "$D/$1"; cat > "$D/$1/$2"
}
flip() { # flip FILE OFFSET_FROM_END: the file with one byte inverted
    python3 -c "import sys; d=bytearray(open(sys.argv[1],'rb').read()); d[-int(sys.argv[2])]^=0xff; sys.stdout.buffer.write(d)" "$@"
}
head -c 200000 "$D/f.gz" | damage gz-cut t.gz
expect_failure "gzip cut short (the issue's reproducer)" "$D/o1" "'t.gz'" "truncated" "byte 200000" -- \
    "$LAMBDAMR" run wordcount --input "$D/gz-cut" --output "$D/o1" --max-attempts 1
head -c $((gsize - 8)) "$D/f.gz" | damage gz-notrailer t.gz
expect_failure "gzip member without its trailer" "$D/o2" "'t.gz'" "truncated" "byte $((gsize - 8))" -- \
    "$LAMBDAMR" run wordcount --input "$D/gz-notrailer" --output "$D/o2" --max-attempts 1
flip "$D/f.gz" 8 | damage gz-crc t.gz
expect_failure "gzip CRC-32 mismatch" "$D/o3" "'t.gz'" "incorrect data check" "byte [0-9]+" -- \
    "$LAMBDAMR" run wordcount --input "$D/gz-crc" --output "$D/o3" --max-attempts 1
flip "$D/f.gz" 1 | damage gz-isize t.gz
expect_failure "gzip ISIZE mismatch" "$D/o4" "'t.gz'" "incorrect length check" -- \
    "$LAMBDAMR" run wordcount --input "$D/gz-isize" --output "$D/o4" --max-attempts 1
head -c $((zsize / 2)) "$D/f.zst" | damage zst-cut t.zst
expect_failure "zstd frame cut in half" "$D/o5" "'t.zst'" "truncated" "byte $((zsize / 2))" -- \
    "$LAMBDAMR" run wordcount --input "$D/zst-cut" --output "$D/o5" --max-attempts 1
head -c $((zsize - 4)) "$D/f.zst" | damage zst-nosum t.zst
expect_failure "zstd frame without its checksum" "$D/o6" "'t.zst'" "truncated" -- \
    "$LAMBDAMR" run wordcount --input "$D/zst-nosum" --output "$D/o6" --max-attempts 1
flip "$D/f.zst" 1 | damage zst-sum t.zst
expect_failure "zstd checksum mismatch" "$D/o7" "'t.zst'" "checksum" "byte [0-9]+" -- \
    "$LAMBDAMR" run wordcount --input "$D/zst-sum" --output "$D/o7" --max-attempts 1
# Whole objects (two gzip members in one file too) still count every word.
mkdir -p "$D/gz-ok"
cp "$D/f.gz" "$D/f.zst" "$D/gz-ok/"
cat "$D/f.gz" "$D/f.gz" > "$D/gz-ok/two.gz"
"$LAMBDAMR" run wordcount --input "$D/gz-ok" --output "$D/o8" > /dev/null 2>&1 || fail "whole compressed input failed"
check_wordcount "undamaged .gz (one and two members) and .zst" "$D/o8" "$D/gz-ok"

# ---- 2. symbolic links -------------------------------------------------------------------------
mkdir -p "$D/links/sub"
echo "alpha beta" > "$D/links/a.txt"
echo "gamma" > "$D/links/sub/b.txt"
ln -s . "$D/links/loop"            # a loop to itself
ln -s . "$D/links/loop2"           # a second one: without loop detection the walk never ends
ln -s .. "$D/links/sub/up"         # a loop through the parent
ln -s sub "$D/links/sub-again"     # one real directory under two names
ln -s a.txt "$D/links/a-link.txt"  # one file under two names
BAD_TRIED=$((BAD_TRIED + 1))
if timeout 60 "$LAMBDAMR" run wordcount --input "$D/links" --output "$D/o9" --json > "$D/links.json" 2> "$D/err.txt"; then
    objects=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['input']['objects'])" "$D/links.json")
    [ "$objects" = 2 ] && pass "symlink loops: each real file listed once ($objects objects)" \
        || fail "symlink loops: $objects objects listed (want 2)"
    printf 'alpha\t1\nbeta\t1\ngamma\t1\n' > "$D/want.txt"
    job_output "$D/o9" | cmp -s - "$D/want.txt" && pass "symlink loops: every word counted once" \
        || { fail "symlink loops: wrong counts"; job_output "$D/o9" | head; }
else
    fail "symlink loops: the job failed or hung (exit $?)"; head -c 600 "$D/err.txt"
fi
# The same input named three ways is read once.
"$LAMBDAMR" run wordcount --input "$D/links" --input "$D/links/sub" --input "$D/links/a.txt" \
    --output "$D/o10" > /dev/null 2>&1 || fail "overlapping inputs failed"
job_output "$D/o10" | cmp -s - "$D/want.txt" && pass "overlapping --input locations: each object read once" \
    || { fail "overlapping --input locations counted twice"; job_output "$D/o10" | head; }

# ---- 3. unbounded planning and sizes -----------------------------------------------------------
head -c $((12 << 20)) /dev/zero | tr '\0' 'x' | fold -w 99 > "$D/big.txt"
expect_failure "--split-size 1 on 12 MiB (would be 12 million shards)" "$D/o11" "--split-size" "shards" -- \
    "$LAMBDAMR" run wordcount --input "$D/big.txt" --output "$D/o11" --split-size 1
for size in 1.5 1e3 -1 0 0x10 " 1" 64Q 99999999999999999999 9999999T; do
    BAD_TRIED=$((BAD_TRIED + 1))
    rc=0
    "$LAMBDAMR" run wordcount --input "$D/f.txt" --output "$D/o12" --split-size "$size" > /dev/null 2> "$D/err.txt" || rc=$?
    if [ "$rc" = 2 ] && grep -q "is not a size" "$D/err.txt" && [ ! -e "$D/o12" ]; then
        pass "--split-size '$size' refused (exit 2)"
    else
        fail "--split-size '$size': exit $rc, $(head -c 200 "$D/err.txt")"
    fi
done
"$LAMBDAMR" run wordcount --input "$D/f.txt" --output "$D/o13" --split-size 512K > /dev/null 2>&1 \
    && check_wordcount "--split-size 512K still works" "$D/o13" "$D/f.txt" || fail "--split-size 512K failed"

# ---- 4. names and arguments that are not UTF-8 -------------------------------------------------
mkdir -p "$D/names"
echo "one two" > "$D/names/ok.txt"
echo "three" > "$D/names/"$'\xff'".txt"
expect_failure "a file name that is not UTF-8" "$D/o14" 'xff\.txt' "UTF-8" "rename" -- \
    "$LAMBDAMR" run wordcount --input "$D/names" --output "$D/o14"
[ ! -e "$D/o14" ] && pass "nothing written for the refused name" || fail "output created for the refused name"
printf 'a\xffb\xffc\nx\xffyy\xffz\n' > "$D/ff.csv"
"$LAMBDAMR" run scan --input "$D/ff.csv" --output "$D/o15" --delimiter $'\xff' --fields 2,3 > /dev/null 2> "$D/err.txt" \
    || { fail "--delimiter \\xff failed"; head -c 300 "$D/err.txt"; }
printf 'b\xffc\nyy\xffz\n' > "$D/want.txt"
cat "$D"/o15/part-m-* 2>/dev/null | cmp -s - "$D/want.txt" && pass "--delimiter \$'\\xff' splits on the byte 0xFF" \
    || { fail "--delimiter \$'\\xff' output is wrong"; cat "$D"/o15/part-m-* | od -c | head -5; }
printf '1,a\n2,\xff\n3,\xfe\n4,\xff\xff\n' > "$D/where.csv"
"$LAMBDAMR" run scan --input "$D/where.csv" --output "$D/o16" --where $'2=\xff' > /dev/null 2> "$D/err.txt" \
    || { fail "--where 2=\\xff failed"; head -c 300 "$D/err.txt"; }
printf '2,\xff\n' > "$D/want.txt"
cat "$D"/o16/part-m-* 2>/dev/null | cmp -s - "$D/want.txt" && pass "--where \$'2=\\xff' keeps exactly the matching row" \
    || { fail "--where \$'2=\\xff' output is wrong"; cat "$D"/o16/part-m-* | od -c | head -5; }
python3 - "$D/o16/_lambdamr/report.json" <<'PY' && pass "the report carries the argument as base64" || fail "report args"
import base64, json, sys
w = json.load(open(sys.argv[1]))['args']['where']
assert base64.b64decode(w['base64']) == b'2=\xff', w
PY
BAD_TRIED=$((BAD_TRIED + 3))

# ---- 8. an output inside its own input; argument errors ----------------------------------------
mkdir -p "$D/in8"
echo "x y" > "$D/in8/a.txt"
expect_failure "--output inside --input" "$D/in8/out" "inside --input" -- \
    "$LAMBDAMR" run wordcount --input "$D/in8" --output "$D/in8/out"
[ ! -e "$D/in8/out" ] && pass "refused before anything ran (no output directory)" || fail "output directory created"
expect_failure "--output equal to --input" "$D/in8" "inside --input" -- \
    "$LAMBDAMR" run wordcount --input "$D/in8" --output "$D/in8"
"$LAMBDAMR" run wordcount --input "$D/in8" --output "$D/in8x" > /dev/null 2>&1 \
    && pass "a sibling whose name starts like the input is not 'inside'" || fail "--output in8x refused"
# Argument errors: exit 2 (with ASan, a leak on these paths turns the exit into 1).
arg_error() { # arg_error NAME CMD...
    local name=$1; shift
    BAD_TRIED=$((BAD_TRIED + 1))
    local rc=0
    "$@" > /dev/null 2> "$D/err.txt" || rc=$?
    [ "$rc" = 2 ] && pass "$name: exit 2" || { fail "$name: exit $rc (want 2)"; head -c 800 "$D/err.txt"; }
}
arg_error "run: a bad job option" "$LAMBDAMR" run scan --input "$D/in8" --output "$D/o17" --delimiter ab
arg_error "run: an unknown job" "$LAMBDAMR" run no-such-job --input "$D/in8" --output "$D/o17"
arg_error "run: a bad --split-size" "$LAMBDAMR" run wordcount --input "$D/in8" --output "$D/o17" --split-size 1.5
arg_error "run: --arg without NAME=" "$LAMBDAMR" run wordcount --input "$D/in8" --output "$D/o17" --arg novalue
arg_error "stream: a bad --window" "$LAMBDAMR" stream wordcount --source - --output "$D/o18" --window 0 --delimiter ,
arg_error "stream: no --output" "$LAMBDAMR" stream wordcount --source - --window 5 --delimiter ,
arg_error "stream: an unexpected argument" "$LAMBDAMR" stream wordcount extra --source - --delimiter ,

echo "bad inputs tried: $BAD_TRIED"
finish
