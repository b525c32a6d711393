#!/usr/bin/env bash
# ETags and If-Match (the lease's compare-and-swap) on both store back-ends: the file store and
# S3 on moto_server (SigV4 checking on). Concurrent writers increment one counter object with
# read-ETag-then-put-if-match retries: no increment may be lost, a stale ETag must fail with
# exit status 2, and a conditional write to a missing key with 3.
set -euo pipefail
: "${LMR_BIN_DIR:?}" "${LMR_SOURCE_DIR:?}"
source "$LMR_SOURCE_DIR/tests/integration/lib/moto.sh"
T="$LMR_BIN_DIR/lmr_storetool"
tmp=$(mktemp -d)
lmr_on_exit 'rm -rf "$tmp"'
die() { echo "FAIL: $*" >&2; exit 1; }
moto_start
aws s3api create-bucket --bucket lmr-versions >/dev/null

# One writer: $2 increments of the counter at $1, each retried until its If-Match wins.
writer() {
    local uri=$1 n=$2 k rc out etag value
    for ((k = 0; k < n; k++)); do
        while :; do
            out=$("$T" get-etag "$uri")
            etag=$(head -1 <<<"$out")
            value=$(sed -n 2p <<<"$out")
            rc=0
            echo $((value + 1)) | "$T" put-if-match "$uri" "$etag" 2>/dev/null || rc=$?
            [ "$rc" = 0 ] && break
            [ "$rc" = 2 ] || { echo "writer: put-if-match exit $rc" >&2; return 1; }
        done
    done
}

for uri in "$tmp/store/counter" "s3://lmr-versions/dir/counter"; do
    echo "== $uri"
    echo 0 | "$T" put --create-only "$uri"
    rc=0; echo 0 | "$T" put --create-only "$uri" 2>/dev/null || rc=$?
    [ "$rc" = 2 ] || die "a second create-only put of $uri gave exit $rc, expected 2"
    stale=$("$T" get-etag "$uri" | head -1)
    pids=()
    for w in 1 2 3; do writer "$uri" 6 & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || die "a writer of $uri failed"; done
    got=$("$T" get "$uri")
    [ "$got" = 18 ] || die "$uri: counter is '$got' after 3 writers x 6 increments, expected 18 (a lost update)"
    rc=0; echo 99 | "$T" put-if-match "$uri" "$stale" 2>"$tmp/stale.err" || rc=$?
    [ "$rc" = 2 ] || die "$uri: a stale ETag gave exit $rc, expected 2"
    grep -q "changed since it was read" "$tmp/stale.err" || die "unclear stale-ETag message: $(cat "$tmp/stale.err")"
    [ "$("$T" get "$uri")" = 18 ] || die "$uri: a failed If-Match changed the object"
    rc=0; echo 1 | "$T" put-if-match "${uri}-missing" "$stale" 2>/dev/null || rc=$?
    [ "$rc" = 3 ] || die "$uri: If-Match on a missing key gave exit $rc, expected 3 (not found)"
done
echo "OK"
