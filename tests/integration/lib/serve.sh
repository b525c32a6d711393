# Sourceable helpers for tests that run `lambdamr serve` (the embedded Lambda service) and, in
# front of it, sigv4_check_proxy.py (serve does not check signatures; the proxy recomputes each
# one with botocore). Both return empty ports on failure; the caller says what failed.
#
#   "$LMR_BIN_DIR/lambdamr" serve --port 0 ... >"$work/serve.out" 2>"$work/serve.err" &
#   serve_pid=$!
#   port=$(serve_port "$work/serve.out")
#   sigv4_proxy_start "http://127.0.0.1:$port" "$AWS_SECRET_ACCESS_KEY" "$work/checks" "$work/proxy"
#   [ -n "$proxy_port" ] || ...     # proxy_pid is set at once (kill it on exit)

SERVE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# serve_port OUT: wait up to 10 s for the serve whose standard output goes to OUT to announce
# itself ("... http://127.0.0.1:PORT ... logs in DIR"), then print PORT (nothing if it did not).
serve_port() {
    local out=$1 _
    for _ in $(seq 100); do grep -q "logs in" "$out" 2>/dev/null && break; sleep 0.1; done
    sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$out" | head -1
}

# sigv4_proxy_start UPSTREAM SECRET COUNT_FILE LOG: start sigv4_check_proxy.py in front of UPSTREAM
# (requests must be signed with SECRET; COUNT_FILE gets a line per request), output in LOG.out and
# LOG.err. Sets proxy_pid, and proxy_port once it printed its port (empty after 10 s without).
sigv4_proxy_start() {
    local upstream=$1 secret=$2 count_file=$3 log=$4 _
    python3 "$SERVE_LIB_DIR/sigv4_check_proxy.py" "$upstream" "$secret" "$count_file" >"$log.out" 2>"$log.err" &
    proxy_pid=$!
    for _ in $(seq 100); do [ -s "$log.out" ] && break; sleep 0.1; done
    proxy_port=$(head -1 "$log.out")
}

# sigv4_proxy_ahead WORK: choose the port serve will take (sets port), start the
# signature-checking proxy in front of it (checks counted in WORK/checks, logs WORK/proxy.*), and
# export AWS_ENDPOINT_URL_LAMBDA at the proxy, so that a coordinator function serve runs invokes
# the tasks through the proxy as it would invoke Lambda. Fails (after printing the proxy's
# errors) when the proxy did not start; then start serve with --port "$port".
sigv4_proxy_ahead() {
    local work=$1
    port=$(free_port)
    sigv4_proxy_start "http://127.0.0.1:$port" "$AWS_SECRET_ACCESS_KEY" "$work/checks" "$work/proxy"
    if [ -z "$proxy_port" ]; then cat "$work/proxy.err" >&2; return 1; fi
    export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$proxy_port"
}
