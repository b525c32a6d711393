# Sourceable helpers for tests that run the function package as Lambda does: unpacked as
# /var/task into an otherwise empty root (a static busybox as /bin/sh is the only other file),
# entered with chroot as uid 65534 with Lambda's environment only. Needs root.
#
#   chroot_require NAME || exit 1          # root, chroot and a static busybox, or FAIL and finish
#   chroot_root ZIP ROOT                   # ROOT/var/task = the zip, ROOT/bin/sh, ROOT/tmp
#   chroot_function ROOT WRAPPER           # WRAPPER: what serve runs as the function's executable

# chroot_require NAME: succeed when this test can chroot (root, chroot, a static busybox);
# otherwise print why (NAME is the test's name), count a failure and finish.
chroot_require() {
    local name=$1
    if [ "$(id -u)" -ne 0 ]; then
        echo "FAIL - $name must run as root: it chroots into an empty root and drops to uid 65534" \
            "(CI runs the suite as root; run it with sudo)"
        return 1
    fi
    CHROOT=$(command -v chroot || true)
    BUSYBOX=$(command -v busybox || true)
    if [ -z "$CHROOT" ]; then fail "chroot (coreutils) is missing"; finish; return 1; fi
    if [ -z "$BUSYBOX" ] || LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q INTERP; then
        fail "a static busybox is missing: install busybox-static (scripts/deps.sh)"; finish; return 1
    fi
}

# chroot_root ZIP ROOT: unpack the function package ZIP as ROOT/var/task, with busybox as
# ROOT/bin/sh and a world-writable ROOT/tmp, modes as on Lambda (the task root is read-only).
chroot_root() {
    local zip=$1 root=$2
    mkdir -p "$root/var/task" "$root/tmp" "$root/bin" || return 1
    unzip -q "$zip" -d "$root/var/task" || return 1
    cp "$BUSYBOX" "$root/bin/sh" || return 1
    chmod 755 "$root" "$root/var" "$root/var/task" "$root/bin" "$root/bin/sh"
    chmod 1777 "$root/tmp"
}

# chroot_function ROOT WRAPPER: write WRAPPER, the executable `lambdamr serve --function
# NAME=WRAPPER,...` runs: Lambda's environment only (serve's own variables do not leak in), then
# chroot into ROOT as uid 65534, cwd /var/task as on Lambda, the package's entry point.
chroot_function() {
    local root=$1 wrapper=$2
    cat > "$wrapper" <<SH
#!/bin/sh
exec /usr/bin/env -i \\
    LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime \\
    _HANDLER="\$_HANDLER" AWS_LAMBDA_RUNTIME_API="\$AWS_LAMBDA_RUNTIME_API" \\
    AWS_LAMBDA_FUNCTION_NAME="\$AWS_LAMBDA_FUNCTION_NAME" \\
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="\$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" \\
    AWS_LAMBDA_FUNCTION_VERSION="\$AWS_LAMBDA_FUNCTION_VERSION" \\
    AWS_LAMBDA_LOG_GROUP_NAME="\$AWS_LAMBDA_LOG_GROUP_NAME" AWS_LAMBDA_LOG_STREAM_NAME="\$AWS_LAMBDA_LOG_STREAM_NAME" \\
    AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023 AWS_REGION="\$AWS_REGION" AWS_DEFAULT_REGION="\$AWS_REGION" \\
    AWS_ACCESS_KEY_ID="\$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="\$AWS_SECRET_ACCESS_KEY" \\
    AWS_ENDPOINT_URL="\$AWS_ENDPOINT_URL" AWS_ENDPOINT_URL_LAMBDA="\$AWS_ENDPOINT_URL_LAMBDA" LMR_LOG="\$LMR_LOG" \${ASAN_OPTIONS:+ASAN_OPTIONS="\$ASAN_OPTIONS"} \\
    PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin \\
    LD_LIBRARY_PATH=/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib \\
    LANG=en_US.UTF-8 TZ=:UTC \\
    $CHROOT --userspec=65534:65534 "$root" /bin/sh -c 'cd /var/task && exec /var/task/bootstrap'
SH
    chmod 755 "$wrapper"
}
