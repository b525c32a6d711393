# Sourceable helper (after lib/common.sh) for the HTML report tests: headless Chromium as a user's
# browser, but unable to reach any host, with its own background traffic off.
#
#   chromium_find                          # CHROMIUM and ARTIFACTS (build/test-artifacts); exits
#                                          # with a FAIL line when chromium is not installed
#   chrome ARGS...                         # run it (profile in $D/profile, log on stderr)
#   chromium_render PAGE SHOT SIZE [ARGS]  # PAGE's DOM into $D/dom.html (ARGS added to that run),
#                                          # a SIZE (W,H) screenshot into $ARTIFACTS/SHOT
#   chromium_console_clean                 # pass/fail: no console message in those runs' logs

chromium_find() {
    CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
    if [ -z "$CHROMIUM" ]; then
        echo "FAIL - chromium is not installed: run scripts/deps.sh --test (Debian package chromium)"
        exit 1
    fi
    ARTIFACTS="$LMR_BIN_DIR/../test-artifacts"
    mkdir -p "$ARTIFACTS"
}

chrome() {
    timeout 120 "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --no-first-run --no-default-browser-check \
        --host-resolver-rules='MAP * ~NOTFOUND' --disable-background-networking --disable-component-update \
        --disable-sync --disable-extensions --user-data-dir="$D/profile" --enable-logging=stderr --v=0 "$@"
}

chromium_render() {
    local page=$1 shot=$2 size=$3
    shift 3
    chrome --dump-dom "$@" "file://$page" > "$D/dom.html" 2> "$D/chrome-dom.log" ||
        { tail -20 "$D/chrome-dom.log"; fail "chromium --dump-dom"; }
    chrome --screenshot="$ARTIFACTS/$shot" --window-size="$size" "file://$page" > /dev/null \
        2> "$D/chrome-shot.log" || { tail -20 "$D/chrome-shot.log"; fail "chromium --screenshot"; }
    [ -s "$ARTIFACTS/$shot" ] && pass "screenshot saved ($ARTIFACTS/$shot)" || fail "no screenshot"
}

# chromium_console_clean: pass when the page logged no console message (an error, a CSP
# violation) in Chromium's logs of the last chromium_render, fail when it did.
chromium_console_clean() {
    if grep -E 'CONSOLE|Content Security Policy|Refused to' "$D/chrome-dom.log" "$D/chrome-shot.log"; then
        fail "the page logged console messages"
    else
        pass "no console errors"
    fi
}
