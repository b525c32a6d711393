#!/usr/bin/env bash
# Hermetic proof of the function package (issue 9 item 2). `lambdamr package` writes the zip;
# it is unpacked as /var/task into an otherwise empty root (busybox-static as /bin/sh is the
# only other file: no /lib, /usr, /etc, /proc, /dev, no mounts). `lambdamr serve` runs the
# functions pk-coordinator, pk-mapper and pk-reducer through a wrapper that does what Lambda does: an
# environment with only Lambda's variables, chroot into that root as uid 65534, cwd /var/task,
# /var/task/bootstrap. A wordcount over s3:// data on moto (SigV4 checking on) with
# `run --backend aws --function-prefix pk` must complete and give output byte-identical to the
# same job on the unpackaged binary (un-coordinator, un-mapper, un-reducer). Needs root (chroot); fails without.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/chroot.sh"
chroot_require package_hermetic || exit 1
source "$(dirname "$0")/lib/moto.sh"
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
R=$D/root
serve_pid=
lmr_on_exit '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null; cleanup_tmp'

# 1. The package, unpacked into the empty root.
"$LAMBDAMR" package --out "$D/fn.zip" > "$D/package.out" 2> "$D/package.err" \
    || { cat "$D/package.err"; fail "lambdamr package failed"; finish; exit 1; }
chroot_root "$D/fn.zip" "$R" || fail "unzip the package into the root"
loader=$(cd "$R/var/task/lib" && ls ld-linux-*)

# 2. The root holds exactly the zip's entries (and their folders), /bin/sh and an empty /tmp.
( zipinfo -1 "$D/fn.zip" | while read -r e; do
    echo "./var/task/$e"; d=$(dirname "$e"); while [ "$d" != . ]; do echo "./var/task/$d"; d=$(dirname "$d"); done
  done; printf '%s\n' ./bin ./bin/sh ./tmp ./var ./var/task ) | LC_ALL=C sort -u > "$D/expect.list"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort) > "$D/root.list"
if cmp -s "$D/expect.list" "$D/root.list"; then
    pass "the root holds only the zip ($(zipinfo -1 "$D/fn.zip" | wc -l) entries), /bin/sh and an empty /tmp"
else
    fail "the root holds other files"; diff "$D/expect.list" "$D/root.list" | head
fi
for p in proc lib lib64 usr etc dev sys; do [ -e "$R/$p" ] && fail "/$p exists in the root"; done
grep -q " $R" /proc/mounts && fail "something is mounted under the root" || pass "nothing is mounted under the root"
cmp -s "$R/var/task/bin/lambdamr-function" "$LMR_BIN_DIR/bootstrap" \
    && pass "bin/lambdamr-function is the build's bootstrap, byte for byte" || fail "packaged binary differs"

# 3. Without the package's loader and libraries the binary cannot start in this root.
# in_root CMD...: CMD inside the root as uid 65534 with an empty environment.
in_root() { env -i _HANDLER=echo "$CHROOT" --userspec=65534:65534 "$R" "$@"; }
cp "$LMR_BIN_DIR/bootstrap" "$R/tmp/unpackaged"
chmod 755 "$R/tmp/unpackaged"
in_root /tmp/unpackaged > "$D/bare.out" 2>&1 && rc=0 || rc=$?
if [ "$rc" -eq 127 ] && grep -q "No such file or directory" "$D/bare.out"; then
    pass "the unpackaged binary does not start in the root (its loader is missing): $(head -c 120 "$D/bare.out")"
else
    fail "the unpackaged binary in the root: exit $rc, $(head -c 200 "$D/bare.out")"
fi
in_root "/var/task/lib/$loader" --inhibit-cache /tmp/unpackaged > "$D/noload.out" 2>&1 && rc=0 || rc=$?
if [ "$rc" -ne 0 ] && grep -q "error while loading shared libraries: .*cannot open shared object file" "$D/noload.out"; then
    pass "through the packaged loader but without --library-path its libraries are missing: $(head -c 140 "$D/noload.out")"
else
    fail "without the library path: exit $rc, $(head -c 200 "$D/noload.out")"
fi
rm -f "$R/tmp/unpackaged"
in_root /bin/sh -c 'cd /var/task && for p in /proc /etc /usr /lib /dev; do test -e $p && echo "has $p"; done; echo done' \
    > "$D/look.out" 2>&1 || true
if grep -qx done "$D/look.out" && ! grep -q "^has " "$D/look.out"; then
    pass "inside the chroot /bin/sh runs and sees no /proc, /etc, /usr, /lib or /dev"
else
    fail "inside the chroot: $(cat "$D/look.out")"
fi
in_root /bin/sh -c 'echo x > /tmp/probe && ! (echo x > /var/task/probe) 2>/dev/null && echo dropped' > "$D/uid.out" 2>&1 || true
if grep -qx dropped "$D/uid.out" && [ ! -e "$R/var/task/probe" ] && [ "$(stat -c %u "$R/tmp/probe")" = 65534 ]; then
    pass "the chroot runs as uid 65534: /tmp is writable, /var/task is not"
else
    fail "uid in the chroot: $(cat "$D/uid.out")"
fi
rm -f "$R/tmp/probe" "$R/var/task/probe"

# 4. Data on moto, and the serve with the packaged (pk-*) and unpackaged (un-*) functions.
moto_start
aws s3 mb s3://lmr-hermetic > /dev/null
python3 - "$D/in" <<'PY'
import os, random, sys
os.makedirs(sys.argv[1])
r = random.Random(9)
words = ['alpha', 'beta', 'gamma', 'delta', 'é', 'naïve'] + ['w%d' % i for i in range(700)]
for i in range(4):
    with open(os.path.join(sys.argv[1], 'p%d.txt' % i), 'w') as f:
        for _ in range(2500):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 8))) + '\n')
PY
aws s3 cp --recursive --quiet "$D/in" s3://lmr-hermetic/in/

# The wrapper: Lambda's environment only (the serve's own variables do not leak in), then
# chroot as uid 65534, cwd /var/task as on Lambda, the package's entry point.
chroot_function "$R" "$D/chroot-function"
fn_opts="memory=512,timeout=60,concurrency=2"
# `run --backend aws` invokes P-coordinator, which invokes P-mapper and P-reducer through
# AWS_ENDPOINT_URL_LAMBDA: the port is chosen first so that serve's functions inherit it. The
# packaged coordinator runs in the chroot like the tasks (its Invoke calls leave the chroot over
# loopback TCP, nothing else). The un-* functions: the same deployment unpackaged.
serve_package_start "$D" "$D/chroot-function" \
    --function "un-mapper=$LMR_BIN_DIR/bootstrap,handler=mapper,$fn_opts" \
    --function "un-reducer=$LMR_BIN_DIR/bootstrap,handler=reducer,$fn_opts" \
    --function "un-coordinator=$LMR_BIN_DIR/bootstrap,handler=coordinator,$fn_opts" ||
    { fail "lambdamr serve did not start"; finish; exit 1; }

# 5. The same job on both deployments.
for p in pk un; do
    "$LAMBDAMR" run wordcount --backend aws --function-prefix $p --input s3://lmr-hermetic/in/ \
        --output s3://lmr-hermetic/out-$p/ --reducers 2 --split-size 24K --json > "$D/$p.json" 2> "$D/$p.log" \
        || { cat "$D/$p.log"; tail -20 "$D/logs/$p-coordinator.log" "$D/logs/$p-mapper.log" "$D/logs/$p-reducer.log" 2>/dev/null; fail "$p job failed"; }
    mkdir -p "$D/out-$p"
    aws s3 cp --recursive --quiet s3://lmr-hermetic/out-$p/ "$D/out-$p/"
done
python3 - "$D/pk.json" <<'PY' && pass "packaged job: every map and reduce task completed in the chroot" || fail "packaged job report"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['mappers'] >= 3 and r['reducers'] == 2, (r['mappers'], r['reducers'])
invs = r['invocations']
assert len(invs) == r['mappers'] + r['reducers'], len(invs)
assert all(i['max_memory_used_mb'] > 0 and i['memory_size_mb'] == 512 for i in invs), invs
PY
if [ -f "$D/out-pk/_SUCCESS" ] && [ -f "$D/out-un/_SUCCESS" ] &&
    cmp -s "$D/out-pk/part-r-00000" "$D/out-un/part-r-00000" && cmp -s "$D/out-pk/part-r-00001" "$D/out-un/part-r-00001"; then
    pass "packaged output is byte-identical to the unpackaged binary's"
else
    fail "packaged and unpackaged outputs differ"
fi
check_wordcount "packaged job vs the oracle" "$D/out-pk" "$D/in"
n_pk=$(grep -c "^REPORT" "$D/logs/pk-mapper.log" "$D/logs/pk-reducer.log" | awk -F: '{s+=$2} END {print s+0}')
[ "$n_pk" -ge 5 ] && pass "$n_pk REPORT lines from the packaged functions" || fail "only $n_pk packaged REPORT lines"
grep -q "^REPORT" "$D/logs/pk-coordinator.log" 2>/dev/null && pass "the job was coordinated by the packaged pk-coordinator in the chroot" \
    || fail "no REPORT line from pk-coordinator: $(tail -5 "$D/logs/pk-coordinator.log" 2>/dev/null)"
init_ms() { grep -ho "Init Duration: [0-9.]*" "$@" | awk '{printf "%s ", $3}'; }
echo "#    cold starts (Init Duration, ms): packaged $(init_ms "$D"/logs/pk-*.log)| unpackaged $(init_ms "$D"/logs/un-*.log)"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort) | grep -v '^./tmp/' | cmp -s - "$D/expect.list" \
    && pass "the functions left the package untouched (only /tmp may change)" || fail "the root changed outside /tmp"
finish
