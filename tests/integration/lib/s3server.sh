# Start tests/tools/lmr_s3server (an S3-compatible server in memory, SigV4 checked, conditional
# writes enforced) on a free loopback port with fresh random credentials.
#
#   source lib/s3server.sh
#   s3server_start [EXTRA ARGS...]   # exports S3SERVER_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#                                    # AWS_REGION, AWS_ENDPOINT_URL (= S3SERVER_URL) for lambdamr and the aws CLI
#
#   s3_test_init moto|s3server [BUCKET...]   # the S3 tests' start-up, below
#
# Needs LMR_BIN_DIR (the build's bin/) and lmr_on_exit (from moto.sh, or define your own trap
# chain first). The server is stopped on exit.
s3server_start() {
    local bin=${LMR_S3SERVER:-$LMR_BIN_DIR/lmr_s3server} dir
    [ -x "$bin" ] || { echo "s3server_start: $bin not found (build first)" >&2; return 1; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/lmr-s3server.XXXXXX")
    AWS_ACCESS_KEY_ID="AKIA$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
    AWS_SECRET_ACCESS_KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    "$bin" --port-file "$dir/port" --region us-east-1 "$@" 2> "$dir/log" &
    S3SERVER_PID=$!
    S3SERVER_LOG=$dir/log
    lmr_on_exit 'kill "$S3SERVER_PID" 2>/dev/null || true; wait "$S3SERVER_PID" 2>/dev/null || true; rm -rf "'"$dir"'"'
    local i
    for i in $(seq 1 100); do
        [ -s "$dir/port" ] && break
        kill -0 "$S3SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ -s "$dir/port" ] || { echo "lmr_s3server did not start:" >&2; cat "$dir/log" >&2; return 1; }
    S3SERVER_URL="http://127.0.0.1:$(cat "$dir/port")"
    export S3SERVER_URL S3SERVER_PID S3SERVER_LOG AWS_ENDPOINT_URL=$S3SERVER_URL
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL_S3
    # Keep the aws CLI away from this machine's configuration; checksums only where required
    # (newer CLIs otherwise send aws-chunked bodies, which the server refuses with 501).
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
    export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
}

# s3_test_init moto|s3server [BUCKET...] (after lib/common.sh and lib/moto.sh): the S3 tests'
# start-up: the test's temporary folder removed on exit (cleanup_tmp), the S3 service started
# (moto_start or s3server_start), D (= TEST_TMP), PROXY (tests/tools/s3_fault_proxy.py), and each
# BUCKET made. Fails when the service does not start.
s3_test_init() {
    local b
    lmr_on_exit cleanup_tmp
    case $1 in
    moto) moto_start || return 1 ;;
    s3server) s3server_start || return 1 ;;
    *) echo "s3_test_init: moto or s3server, not '$1'" >&2; return 2 ;;
    esac
    shift
    D=$TEST_TMP
    PROXY="$LMR_SOURCE_DIR/tests/tools/s3_fault_proxy.py"
    for b in "$@"; do aws s3 mb "s3://$b" > /dev/null; done
}
