#!/usr/bin/env bash
# Bad input gets a clear error, a non-zero exit, and nothing written to the output.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
mkdir -p "$D/in" "$D/emptydir"
printf 'a b c\n' > "$D/in/x.txt"

# expect_error NAME PATTERN OUTDIR -- command...: non-zero exit, stderr matches, OUTDIR untouched.
expect_error() {
    local name=$1 pattern=$2 out=$3; shift 4
    local before=""
    [ -e "$out" ] && before=$(find "$out" -type f -printf '%P %s %T@\n' | sort)
    if "$@" > "$D/stdout" 2> "$D/stderr"; then
        fail "$name: exited 0"; return
    fi
    if ! grep -qE -- "$pattern" "$D/stderr"; then
        fail "$name: error does not match /$pattern/:"; cat "$D/stderr"; return
    fi
    local after=""
    [ -e "$out" ] && after=$(find "$out" -type f -printf '%P %s %T@\n' | sort)
    if [ "$before" != "$after" ]; then
        fail "$name: the output changed"; return
    fi
    pass "$name: $(head -c 160 "$D/stderr" | head -1)"
}

expect_error "missing input" "input '.*/nope' does not exist" "$D/out1" -- \
    "$LAMBDAMR" run wordcount --input "$D/nope" --output "$D/out1"
[ ! -e "$D/out1" ] && pass "missing input: no output directory created" || fail "missing input created $D/out1"
expect_error "empty input set" "holds no input files" "$D/out2" -- \
    "$LAMBDAMR" run wordcount --input "$D/emptydir" --output "$D/out2"
expect_error "unknown job" "unknown job 'nosuchjob'" "$D/out3" -- \
    "$LAMBDAMR" run nosuchjob --input "$D/in" --output "$D/out3"
expect_error "no --output" "no --output" "$D/out4" -- "$LAMBDAMR" run wordcount --input "$D/in"
expect_error "bad --split-size" "--split-size 'lots'" "$D/out5" -- \
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/out5" --split-size lots
expect_error "bad --memory" "--memory '64' is not a whole number from 128" "$D/out6" -- \
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/out6" --memory 64
expect_error "unknown option" "unknown option '--bogus'" "$D/out7" -- \
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/out7" --bogus

# A finished output is not overwritten without --overwrite.
"$LAMBDAMR" run wordcount --input "$D/in" --output "$D/done" > /dev/null 2>&1 || fail "first run failed"
expect_error "existing _SUCCESS" "already holds a finished job.*--overwrite" "$D/done" -- \
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/done"
printf 'a a a\n' > "$D/in/x.txt"
if "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/done" --overwrite > /dev/null 2>&1 &&
    grep -qx "$(printf 'a\t3')" "$D/done/part-r-00000"; then
    pass "--overwrite replaces the earlier output"
else
    fail "--overwrite"
fi

# An unreadable file (checked as an unprivileged user: root reads everything).
if command -v setpriv > /dev/null && [ "$(id -u)" = 0 ]; then
    chmod 777 "$D"
    mkdir -p "$D/priv"; printf 'x\n' > "$D/priv/ok.txt"; printf 'y\n' > "$D/priv/secret.txt"
    chmod 755 "$D/priv"; chmod 644 "$D/priv/ok.txt"; chmod 000 "$D/priv/secret.txt"
    chmod -R o+rx "$LMR_BIN_DIR" 2>/dev/null || true
    PRIV_LMR=$LAMBDAMR
    if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$LMR_BIN_DIR/bootstrap"; then
        # The build sits below a directory that user cannot enter (a private mktemp -d or home):
        # run copies of the two binaries from the test's own directory instead.
        mkdir -p "$D/bin"
        cp "$LAMBDAMR" "$LMR_BIN_DIR/bootstrap" "$D/bin/"
        chmod 755 "$D/bin" "$D/bin/lambdamr" "$D/bin/bootstrap"
        PRIV_LMR=$D/bin/lambdamr
    fi
    expect_error "unreadable file" "secret.txt.*(Permission denied|permission)" "$D/out8" -- \
        setpriv --reuid=65534 --regid=65534 --clear-groups "$PRIV_LMR" run wordcount --input "$D/priv" --output "$D/out8"
elif [ "$(id -u)" != 0 ]; then
    chmod 000 "$D/in/x.txt"
    expect_error "unreadable file" "x.txt.*Permission denied" "$D/out8" -- \
        "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/out8"
    chmod 644 "$D/in/x.txt"
else
    fail "unreadable file: cannot drop privileges (setpriv missing)"
fi

# Progress is drawn on a terminal only (script(1) gives the run a pseudo-terminal).
if command -v script > /dev/null; then
    script -qec "'$LAMBDAMR' run wordcount --input '$D/in' --output '$D/tty-out' --overwrite" /dev/null > "$D/tty.log" 2>&1 || true
    grep -q "tasks done" "$D/tty.log" && pass "progress drawn on a terminal" || { fail "no progress on a terminal"; cat "$D/tty.log"; }
    "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/notty-out" > "$D/notty.log" 2>&1
    grep -q "tasks done" "$D/notty.log" && fail "progress drawn without a terminal" || pass "no progress lines when not on a terminal"
fi

# --help for every command exits 0 and documents its options.
for cmd in run serve gen stream put; do
    if "$LAMBDAMR" $cmd --help > "$D/help" 2>&1 && grep -q -- "usage: lambdamr $cmd" "$D/help"; then
        pass "lambdamr $cmd --help"
    else
        fail "lambdamr $cmd --help"; head -3 "$D/help"
    fi
done
"$LAMBDAMR" --help | grep -q "commands:" && pass "lambdamr --help" || fail "lambdamr --help"
"$LAMBDAMR" frobnicate > /dev/null 2>&1 && fail "unknown command exits 0" || pass "unknown command exits non-zero"
finish
