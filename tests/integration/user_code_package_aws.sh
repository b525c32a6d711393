#!/usr/bin/env bash
# User code in the function package, as on AWS: `lambdamr package --plugin topk.so --file wc_map
# --file wc_reduce` unpacked as /var/task into an otherwise empty root (busybox as /bin/sh, as
# package_hermetic does), functions (coordinator, mapper, reducer) served chrooted as uid 65534 with Lambda's environment only,
# data on moto. `run --backend aws` then runs the plugin (found as $LAMBDA_TASK_ROOT/plugins/
# topk.so) and an exec job whose static C mapper and reducer are found as files/NAME; both equal
# the same jobs on the embedded default. A Python mapper fails there, as on provided.al2023, with
# the error that says so. Needs root (chroot).
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/chroot.sh"
chroot_require user_code_package_aws || exit 1
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
R=$D/root
serve_pid=
lmr_on_exit '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null; cleanup_tmp'
cd "$D"

# The user's code: a plugin and two static executables (no loader in the root for anything else).
cc -O2 -shared -fPIC -I"$LMR_SOURCE_DIR/include" "$LMR_SOURCE_DIR/examples/topk/topk.c" -o topk.so
cc -O2 -static -o wc_map "$LMR_SOURCE_DIR/benchmarks/exec/wc_map.c"
cc -O2 -static -o wc_reduce "$LMR_SOURCE_DIR/benchmarks/exec/wc_reduce.c"
"$LAMBDAMR" package --out fn.zip --plugin "$D/topk.so" --file "$D/wc_map" --file "$D/wc_reduce" > package.out 2>&1 \
    || { cat package.out; fail "lambdamr package failed"; finish; exit 1; }
chroot_root fn.zip "$R" || fail "unzip the package into the root"
[ -f "$R/var/task/plugins/topk.so" ] && [ -x "$R/var/task/files/wc_map" ] && pass "package holds plugins/topk.so and files/wc_map" \
    || fail "package layout: $(zipinfo -1 fn.zip | tr '\n' ' ')"

moto_start
aws s3 mb s3://lmr-usercode > /dev/null
python3 - in <<'PY'
import os, random, sys
os.makedirs(sys.argv[1] + '/text'); os.makedirs(sys.argv[1] + '/scores')
r = random.Random(4)
words = ['w%d' % i for i in range(500)]
for i in range(3):
    with open('%s/text/t%d.txt' % (sys.argv[1], i), 'w') as f:
        for _ in range(3000):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(0, 9))) + '\n')
with open(sys.argv[1] + '/scores/s.csv', 'w') as f:
    for _ in range(20000):
        f.write('k%d,%d\n' % (r.randint(0, 99), r.randint(-1000, 10**6)))
PY
aws s3 cp --recursive --quiet in s3://lmr-usercode/in/

chroot_function "$R" "$D/chroot-function"
# The packaged coordinator runs in the chroot too and invokes the tasks through
# AWS_ENDPOINT_URL_LAMBDA, so the port is chosen (and exported) before serve starts.
serve_package_start "$D" "$D/chroot-function" || { fail "lambdamr serve did not start"; finish; exit 1; }

aws_run() { # aws_run NAME ARGS...: run on the packaged functions, output copied to $D/NAME
    local name=$1; shift
    timeout 180 "$LAMBDAMR" run "$@" --backend aws --function-prefix pk --output "s3://lmr-usercode/$name/" \
        --reducers 2 > "$name.log" 2>&1 || return 1
    aws s3 cp --recursive --quiet "s3://lmr-usercode/$name/" "$name/"
}

# The plugin, from plugins/topk.so in the chroot, against the embedded default's run of it.
timeout 120 "$LAMBDAMR" run ./topk.so --arg k=4 --input in/scores --output local-topk > local-topk.log 2>&1 \
    || { cat local-topk.log; fail "local topk"; }
if aws_run aws-topk ./topk.so --arg k=4 --input s3://lmr-usercode/in/scores/ --split-size 64K; then
    cmp -s <(LC_ALL=C sort aws-topk/part-r-*) <(LC_ALL=C sort local-topk/part-r-*) \
        && pass "plugin from \$LAMBDA_TASK_ROOT/plugins in the chroot equals the local run" || fail "packaged topk output differs"
else
    cat aws-topk.log; tail -5 logs/pk-coordinator.log logs/pk-mapper.log; fail "packaged topk run"
fi

# An exec job with the shipped static binaries (files/wc_map, files/wc_reduce) = the built-in.
timeout 120 "$LAMBDAMR" run wordcount --input in/text --output local-wc > local-wc.log 2>&1 || { cat local-wc.log; fail "local wordcount"; }
if aws_run aws-exec exec --mapper ./wc_map --reducer wc_reduce --input s3://lmr-usercode/in/text/ --split-size 32K; then
    cmp -s <(LC_ALL=C sort aws-exec/part-r-*) <(LC_ALL=C sort local-wc/part-r-*) \
        && pass "exec job with shipped static binaries in the chroot equals the built-in word count" \
        || fail "packaged exec output differs"
else
    cat aws-exec.log; tail -5 logs/pk-coordinator.log logs/pk-mapper.log; fail "packaged exec run"
fi

# No Python in the runtime: the error says what to do.
if aws_run aws-py exec --mapper 'python3 map.py' --reducer wc_reduce --input s3://lmr-usercode/in/text/ --max-attempts 1; then
    fail "a python3 mapper ran in a root without python"
else
    grep -q "exited with status 127" aws-py.log && grep -q "provided.al2023 runtime has no Python" aws-py.log \
        && pass "a python3 mapper in the package: status 127 and the provided.al2023 note" || { cat aws-py.log; fail "python error"; }
fi
grep -q "^REPORT" logs/pk-coordinator.log 2>/dev/null && pass "the jobs were coordinated by the packaged pk-coordinator in the chroot" \
    || fail "no REPORT line from pk-coordinator"
finish
