#!/usr/bin/env bash
# Malformed S3 listings (issue 11 item 5), from a tiny fake endpoint (lib/fake_s3_listing.py):
# a key shorter than the prefix or outside it, a <Contents> without <Key> or <Size>, sizes
# that are no size, IsTruncated=true with the same token again, a page repeated under a new
# token. Each must stop the listing with an error that says the listing is malformed: no
# out-of-bounds read (the ASan build runs this too), no input counted twice, no endless loop.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
STORETOOL="$LMR_BIN_DIR/lmr_storetool"
python3 "$(dirname "$0")/lib/fake_s3_listing.py" "$D/port" &
FAKE_PID=$!
trap 'kill $FAKE_PID 2>/dev/null || true; cleanup_tmp' EXIT
for _ in $(seq 1 100); do [ -s "$D/port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$D/port")"
export AWS_ENDPOINT_URL=$URL AWS_ACCESS_KEY_ID=AKIDFAKE AWS_SECRET_ACCESS_KEY=fake AWS_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL_S3
BAD_TRIED=0

# The control: two well-formed pages give exactly three objects.
if timeout 20 "$STORETOOL" ls s3://fakebucket/ok/ > "$D/ls.txt" 2> "$D/err.txt" && [ "$(wc -l < "$D/ls.txt")" = 3 ]; then
    pass "a well-formed two-page listing gives its 3 objects"
else
    fail "the well-formed listing: $(cat "$D/ls.txt" "$D/err.txt" | head -c 400)"
fi

malformed() { # malformed CASE PATTERN
    BAD_TRIED=$((BAD_TRIED + 1))
    local rc=0
    timeout 20 "$STORETOOL" ls "s3://fakebucket/$1/" > "$D/ls.txt" 2> "$D/err.txt" || rc=$?
    if [ "$rc" = 124 ]; then
        fail "$1: the listing did not end within 20 s"
    elif [ "$rc" = 0 ]; then
        fail "$1: accepted ($(wc -l < "$D/ls.txt") objects listed)"
    elif grep -q "AddressSanitizer\|runtime error" "$D/err.txt"; then
        fail "$1: a sanitizer report"; head -c 600 "$D/err.txt"
    elif ! grep -Eq -- "$2" "$D/err.txt"; then
        fail "$1: the error does not match /$2/: $(head -c 400 "$D/err.txt")"
    else
        pass "$1 refused: $(head -n 1 "$D/err.txt" | cut -c 1-150)"
    fi
}
malformed short "outside that prefix"
malformed outside "outside that prefix"
malformed nokey "without a <Key>"
malformed nosize "no <Size>"
malformed hugesize "<Size>.*18446744073709551615"
malformed negsize "<Size>.*-1"
malformed fracsize "<Size>.*1\.5"
malformed loop "same continuation token"
malformed repeat "out of order or repeated"
malformed badtrunc "IsTruncated"
malformed dotdot "'\.\.' segment"
n=$(curl -s "$URL/counts" | python3 -c "import json,sys; print(json.load(sys.stdin).get('loop', 0))")
[ "$n" -ge 2 ] && [ "$n" -le 3 ] && pass "the repeated token was caught after $n requests" || fail "the loop case took $n requests"

# The planner on top: a job over a malformed listing fails before any task runs.
for c in short hugesize nokey; do
    BAD_TRIED=$((BAD_TRIED + 1))
    rc=0
    timeout 30 "$LAMBDAMR" run wordcount --input "s3://fakebucket/$c/" --output "$D/out-$c" > /dev/null 2> "$D/err.txt" || rc=$?
    if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "malformed" "$D/err.txt" && ! grep -q "AddressSanitizer" "$D/err.txt" \
        && [ ! -e "$D/out-$c/_SUCCESS" ]; then
        pass "run over the '$c' listing: exit $rc, nothing written"
    else
        fail "run over the '$c' listing: exit $rc: $(head -c 400 "$D/err.txt")"
    fi
done
echo "malformed listings tried: $BAD_TRIED"
finish
