# Sourceable helpers for tests that run `lambdamr serve` (the embedded Lambda service) and, in
# front of it, sigv4_check_proxy.py (serve does not check signatures; the proxy recomputes each
# one with botocore). Both return empty ports on failure; the caller says what failed.
#
#   "$LMR_BIN_DIR/lambdamr" serve --port 0 ... >"$work/serve.out" 2>"$work/serve.err" &
#   serve_pid=$!
#   port=$(serve_port "$work/serve.out")
#   sigv4_proxy_start "http://127.0.0.1:$port" "$AWS_SECRET_ACCESS_KEY" "$work/checks" "$work/proxy"
#   [ -n "$proxy_port" ] || ...     # proxy_pid is set at once (kill it on exit)
#
# A deployment's three functions (what --backend aws invokes), on a free port or behind the proxy:
#
#   serve_functions_start "$D" sp memory=256 concurrency=4 || { fail "lambdamr serve did not start"; finish; }
#   sigv4_proxy_ahead "$D" && serve_functions_start "$D" wc memory=512 || ...

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

# serve_functions_start DIR PREFIX [memory=MB] [timeout=S] [concurrency=N] [coordinator_timeout=S]:
# start `lambdamr serve` with the three functions a deployment has, PREFIX-mapper, PREFIX-reducer
# and PREFIX-coordinator (build/bin/bootstrap with handler mapper, reducer and coordinator; each of
# memory MB, default 256; the tasks' timeout S, default 60, and reserved concurrency N, default 4;
# the coordinator's timeout coordinator_timeout, default the tasks', at concurrency 2). Logs in
# DIR/logs, its output in DIR/serve.out and DIR/serve.err. It listens on $port when that is set
# (sigv4_proxy_ahead chose it and pointed AWS_ENDPOINT_URL_LAMBDA at its proxy); otherwise on a
# free port, with AWS_ENDPOINT_URL_LAMBDA exported at serve, so that the coordinator function
# invokes the tasks there as it would invoke Lambda (export it before, the functions inherit it).
# Sets serve_pid at once (kill it on exit) and port. Fails after printing serve's errors when it
# did not announce itself on that port within 10 s.
serve_functions_start() {
    local dir=$1 prefix=$2 memory=256 timeout=60 concurrency=4 coordinator_timeout= kv
    shift 2
    for kv in "$@"; do
        case $kv in
        memory=* | timeout=* | concurrency=* | coordinator_timeout=*) local "$kv" ;;
        *) echo "serve_functions_start: unknown setting '$kv'" >&2; return 2 ;;
        esac
    done
    if [ -z "${port:-}" ]; then
        port=$(free_port)
        export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$port"
    fi
    local fn="$LMR_BIN_DIR/bootstrap" task="memory=$memory,timeout=$timeout,concurrency=$concurrency"
    "$LAMBDAMR" serve --port "$port" --log-dir "$dir/logs" \
        --function "$prefix-mapper=$fn,handler=mapper,$task" \
        --function "$prefix-reducer=$fn,handler=reducer,$task" \
        --function "$prefix-coordinator=$fn,handler=coordinator,memory=$memory,timeout=${coordinator_timeout:-$timeout},concurrency=2" \
        > "$dir/serve.out" 2> "$dir/serve.err" &
    serve_pid=$!
    if [ "$(serve_port "$dir/serve.out")" != "$port" ]; then
        cat "$dir/serve.err" >&2
        return 1
    fi
}

# serve_package_start DIR FUNCTION [SERVE ARGS...]: start `lambdamr serve` with a packaged
# deployment's three functions, pk-mapper, pk-reducer and pk-coordinator (FUNCTION, e.g. the
# chroot wrapper of a package, with handler mapper, reducer and coordinator; 512 MB, 60 s,
# concurrency 2 each), and SERVE ARGS after them (more --function ...). On a free port with
# AWS_ENDPOINT_URL_LAMBDA exported at it first (the packaged coordinator invokes the tasks there);
# logs in DIR/logs, output in DIR/serve.out and DIR/serve.err. Sets serve_pid at once and port.
# Fails after printing serve's errors when it did not announce itself on that port within 10 s.
serve_package_start() {
    local dir=$1 fn=$2 opts="memory=512,timeout=60,concurrency=2"
    shift 2
    port=$(free_port)
    export AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$port"
    "$LAMBDAMR" serve --port "$port" --log-dir "$dir/logs" \
        --function "pk-mapper=$fn,handler=mapper,$opts" \
        --function "pk-reducer=$fn,handler=reducer,$opts" \
        --function "pk-coordinator=$fn,handler=coordinator,$opts" "$@" \
        > "$dir/serve.out" 2> "$dir/serve.err" &
    serve_pid=$!
    if [ "$(serve_port "$dir/serve.out")" != "$port" ]; then
        cat "$dir/serve.err"
        return 1
    fi
}

# serve_behind_proxy_init DIR (after moto_start): for a test whose serve runs behind the
# signature-checking proxy: serve_pid and proxy_pid (set them when starting) are killed on exit,
# then the test's temporary folder removed (cleanup_tmp); then sigv4_proxy_ahead DIR (the proxy on
# the port serve will take). Fails when the proxy did not start.
serve_behind_proxy_init() {
    serve_pid= proxy_pid=
    lmr_on_exit 'for p in $proxy_pid $serve_pid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; cleanup_tmp'
    sigv4_proxy_ahead "$1"
}
