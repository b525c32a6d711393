#!/usr/bin/env bash
# `lambdamr gen` from the command line: help, errors for bad flags, exact sizes, the same bytes
# with any thread count, refusing to overwrite without --force.
set -euo pipefail
LMR="${LMR_BIN_DIR:?LMR_BIN_DIR must point at build/bin}/lambdamr"
work="$(mktemp -d /tmp/lmr-gen-cli.XXXXXX)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$LMR" gen --help | grep -q "lambdamr gen text" || fail "gen --help does not show the usage"

expect_error() { # expect_error "needle" ARGS...: exit 2 (usage) or 1, stderr contains needle
    local needle="$1" rc=0
    shift
    "$LMR" gen "$@" > /dev/null 2> "$work/err" || rc=$?
    [ "$rc" -ne 0 ] || fail "gen $* should fail"
    grep -qF -- "$needle" "$work/err" || fail "gen $*: expected '$needle' in: $(cat "$work/err")"
}
expect_error "which data set" --size 1M --out "$work/x"
expect_error "unknown data set 'csv'" csv --size 1M --out "$work/x"
expect_error "--size is required" text --out "$work/x"
expect_error "invalid --size" text --size 12Q --out "$work/x"
expect_error "--out DIR is required" text --size 1M
expect_error "unknown option '--colour'" text --size 1M --out "$work/x" --colour red
expect_error "invalid value 'many' for --files" text --size 1M --out "$work/x" --files many
expect_error "invalid value '0' for --vocab" text --size 1M --out "$work/x" --vocab 0
expect_error "--seed needs a value" text --size 1M --out "$work/x" --seed
expect_error "--vocab applies to 'text' only" bdb --size 1M --out "$work/x" --vocab 10
expect_error "lower --files" text --size 3 --out "$work/x" --files 5
[ ! -e "$work/x" ] || [ -z "$(ls -A "$work/x")" ] || fail "a failed gen left files in $work/x"

"$LMR" gen text --size 5M --out "$work/t1" --seed 3 --files 4 --threads 1 --quiet
"$LMR" gen text --size 5M --out "$work/t2" --seed 3 --files 4 --threads 3 --quiet
[ "$(cat "$work"/t1/part-* | wc -c)" -eq $((5 * 1024 * 1024)) ] || fail "text is not exactly 5 MiB"
[ "$(ls "$work/t1" | wc -l)" -eq 4 ] || fail "expected 4 part files, got: $(ls -A "$work/t1")"
cmp <(cat "$work"/t1/part-*) <(cat "$work"/t2/part-*) || fail "text differs between 1 and 3 threads"
[ -z "$(ls -A "$work/t1" | grep -v '^part-')" ] || fail "temporary files left behind: $(ls -A "$work/t1")"

expect_error "--force" text --size 1M --out "$work/t1"
"$LMR" gen text --size 1M --out "$work/t1" --files 2 --force --quiet
[ "$(ls "$work/t1" | wc -l)" -eq 2 ] || fail "--force left stale parts: $(ls "$work/t1")"

"$LMR" gen bdb --size 4M --out "$work/b1" --threads 1 --quiet
"$LMR" gen bdb --size 4M --out "$work/b2" --threads 2 --quiet
for t in rankings uservisits; do
    cmp <(cat "$work"/b1/$t/part-*) <(cat "$work"/b2/$t/part-*) || fail "bdb $t differs between thread counts"
done
awk -F, 'NF != 3 { bad = 1 } END { exit bad }' "$work"/b1/rankings/part-* || fail "rankings rows without 3 fields"
awk -F, 'NF != 9 { bad = 1 } END { exit bad }' "$work"/b1/uservisits/part-* || fail "uservisits rows without 9 fields"
# Every destURL is a pageURL.
missing="$(awk -F, 'NR == FNR { url[$1] = 1; next } !($2 in url) { n++ } END { print n + 0 }' \
    <(cat "$work"/b1/rankings/part-*) <(cat "$work"/b1/uservisits/part-*))"
[ "$missing" -eq 0 ] || fail "$missing destURLs are not pageURLs"
echo "PASS: jobs_gen_cli"
