#!/usr/bin/env bash
# `lambdamr package`: the zip's layout and modes, its libraries against ldd's list, the same
# bytes from two runs (another time zone, another directory), plugins and files with the
# libraries they need, Lambda's size limits, and bad input (clear error, nothing written).
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
BOOT=$LMR_BIN_DIR/bootstrap

"$LAMBDAMR" package --out "$D/a.zip" > "$D/a.out" 2> "$D/a.err" || { cat "$D/a.err"; fail "package failed"; finish; exit 1; }
mkdir "$D/elsewhere"
(cd "$D/elsewhere" && TZ=Asia/Tokyo "$LAMBDAMR" package --out b.zip > /dev/null 2>&1) || fail "second package failed"
cmp -s "$D/a.zip" "$D/elsewhere/b.zip" && pass "two runs give byte-identical zips ($(stat -c %s "$D/a.zip") bytes)" \
    || fail "two runs differ"

# Layout, modes, timestamps; lib/ is exactly what ldd lists (plus the loader), byte for byte,
# and libcurl.so.4, which the function opens at run time (common/aws/curl_api.h), with its own.
CURL_SO=$(dirname "$(ldd "$BOOT" | awk '$1 == "libc.so.6" {print $3}')")/libcurl.so.4
{ ldd "$BOOT"; echo "libcurl.so.4 => $CURL_SO"; ldd "$CURL_SO"; } |
    awk '/=>/ {print $1} !/=>/ && $1 ~ /^\// {n=split($1, p, "/"); print p[n]}' | LC_ALL=C sort -u > "$D/ldd.list"
python3 - "$D/a.zip" "$D/ldd.list" "$BOOT" <<'PY' && pass "layout: bootstrap, bin/lambdamr-function, lib/ = ldd's list; sorted, 1980 timestamps, modes" || fail "layout"
import os, stat, subprocess, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
infos = z.infolist()
names = [i.filename for i in infos]
assert names == sorted(names), names
assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
modes = {i.filename: i.external_attr >> 16 for i in infos}
assert all(stat.S_ISREG(m) for m in modes.values()), modes
assert modes['bootstrap'] & 0o777 == 0o755 and modes['bin/lambdamr-function'] & 0o777 == 0o755
libs = sorted(n[4:] for n in names if n.startswith('lib/'))
want = open(sys.argv[2]).read().split()
assert libs == sorted(want), (libs, want)
assert set(names) == {'bootstrap', 'bin/lambdamr-function'} | {'lib/' + l for l in libs}, names
assert z.read('bin/lambdamr-function') == open(sys.argv[3], 'rb').read()
ldd = subprocess.run(['ldd', sys.argv[3]], capture_output=True, text=True).stdout
for line in ldd.splitlines():
    parts = line.split()
    path = parts[2] if '=>' in parts else parts[0]
    if path.startswith('/'):
        assert z.read('lib/' + os.path.basename(parts[0])) == open(path, 'rb').read(), path
script = z.read('bootstrap').decode()
assert script.startswith('#!/bin/sh\n'), script
assert '--inhibit-cache' in script and '--library-path "$root/lib"' in script, script
assert '/usr/' not in script.replace('/usr/lib64 is used', '') and 'x86_64-linux-gnu' not in script, script
loader = [l for l in libs if l.startswith('ld-linux')]
assert len(loader) == 1 and ('$root/lib/%s' % loader[0]) in script, (loader, script)
PY
glibc=$(ldd --version 2>/dev/null | awk 'NR == 1 {print $NF}') # awk reads it all: no SIGPIPE under pipefail
case $(uname -m) in x86_64) arch=x86_64 ;; aarch64) arch=arm64 ;; *) arch=unknown ;; esac
grep -q "architecture $arch, glibc $glibc" "$D/a.out" && pass "prints architecture $arch and glibc $glibc" \
    || fail "summary line: $(head -1 "$D/a.out")"
n_listed=$(grep -cE '^ +[0-9]+  ' "$D/a.out")
[ "$n_listed" -eq "$(zipinfo -1 "$D/a.zip" | wc -l)" ] && pass "prints every entry with its size" || fail "listed $n_listed"
grep -q "bytes unzipped .* bytes zipped" "$D/a.out" && grep -q "within Lambda's limits" "$D/a.out" \
    && pass "prints the sizes: $(grep 'bytes unzipped' "$D/a.out")" || fail "size lines"

# A plugin that needs a library the function does not (libbz2), a script and a data file.
printf '#include <bzlib.h>\nconst char *myjob_version(void) { return BZ2_bzlibVersion(); }\n' > "$D/myjob.c"
cc -shared -fPIC -o "$D/myjob.so" "$D/myjob.c" -l:libbz2.so.1.0 || fail "cannot build the test plugin"
printf '#!/bin/sh\necho hi\n' > "$D/run.sh"; chmod 755 "$D/run.sh"
echo data > "$D/table.txt"; chmod 640 "$D/table.txt"
"$LAMBDAMR" package --out "$D/p.zip" --plugin "$D/myjob.so" --file "$D/run.sh" --file "$D/table.txt" > "$D/p.out" 2>&1 \
    || { cat "$D/p.out"; fail "package with extras failed"; }
python3 - "$D/p.zip" "$D/a.zip" <<'PY' && pass "plugins/myjob.so with lib/libbz2.so.1.0; files/run.sh 0755, files/table.txt 0644" || fail "extras"
import sys, zipfile
z, base = zipfile.ZipFile(sys.argv[1]), zipfile.ZipFile(sys.argv[2])
m = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
extra = sorted(set(m) - set(base.namelist()))
assert extra == ['files/run.sh', 'files/table.txt', 'lib/libbz2.so.1.0', 'plugins/myjob.so'], extra
assert m['files/run.sh'] == 0o755 and m['files/table.txt'] == 0o644 and m['plugins/myjob.so'] == 0o755, m
assert z.read('files/table.txt') == b'data\n'
PY

# A dynamically linked executable given with --file brings its libraries into lib/ as well.
printf '#include <bzlib.h>\n#include <stdio.h>\nint main(void) { puts(BZ2_bzlibVersion()); return 0; }\n' > "$D/tool.c"
cc -o "$D/tool" "$D/tool.c" -l:libbz2.so.1.0 || fail "cannot build the test executable"
"$LAMBDAMR" package --out "$D/t.zip" --file "$D/tool" > "$D/t.out" 2>&1 || { cat "$D/t.out"; fail "package with an executable failed"; }
python3 - "$D/t.zip" "$D/a.zip" <<'PY' && pass "--file of an ELF executable: files/tool 0755 and lib/libbz2.so.1.0" || fail "ELF --file"
import sys, zipfile
z, base = zipfile.ZipFile(sys.argv[1]), zipfile.ZipFile(sys.argv[2])
extra = sorted(set(z.namelist()) - set(base.namelist()))
assert extra == ['files/tool', 'lib/libbz2.so.1.0'], extra
assert (z.getinfo('files/tool').external_attr >> 16) & 0o777 == 0o755
PY

# Bad input: a clear error, a non-zero exit, nothing written (an existing zip stays as it was).
cp "$D/a.zip" "$D/keep.zip"
expect_error() { # NAME PATTERN ARGS...: lambdamr package ARGS fails with PATTERN and keep.zip is unchanged
    local name=$1 pat=$2; shift 2
    if "$LAMBDAMR" package "$@" > "$D/e.out" 2> "$D/e.err"; then
        fail "$name: succeeded"
    elif grep -q -- "$pat" "$D/e.err" && cmp -s "$D/keep.zip" "$D/a.zip"; then
        pass "$name: $(head -c 160 "$D/e.err")"
    else
        fail "$name: $(cat "$D/e.err")"
    fi
}
expect_error "no --out" "give --out"
expect_error "missing plugin" "$D/nope.so" --out "$D/keep.zip" --plugin "$D/nope.so"
echo "not elf" > "$D/fake.so"
expect_error "plugin that is not ELF" "not an ELF file" --out "$D/keep.zip" --plugin "$D/fake.so"
expect_error "plugin not named .so" "NAME.so" --out "$D/keep.zip" --plugin "$D/run.sh"
mkdir -p "$D/other"; cp "$D/run.sh" "$D/other/run.sh"
expect_error "two files with one name" "also named run.sh" --out "$D/keep.zip" --file "$D/run.sh" --file "$D/other/run.sh"
expect_error "a directory as a file" "not a regular file" --out "$D/keep.zip" --file "$D/other"
truncate -s 251M "$D/huge.bin"
expect_error "over 250 MiB unzipped" "over Lambda's limit" --out "$D/keep.zip" --file "$D/huge.bin"
LMR_BOOTSTRAP=$D/none expect_error "missing function binary" "LMR_BOOTSTRAP" --out "$D/keep.zip"
LMR_BOOTSTRAP=$(command -v busybox || echo /bin/true) expect_error "static function binary" "no dynamic loader" --out "$D/keep.zip"
LMR_BOOTSTRAP=$D/run.sh expect_error "a script as function binary" "not an ELF file" --out "$D/keep.zip"
"$LAMBDAMR" package --out "$D/no/such/dir/x.zip" > /dev/null 2> "$D/e.err" && fail "wrote into a missing directory" \
    || { [ ! -e "$D/no" ] && grep -q "cannot write the package" "$D/e.err" && pass "missing output directory: $(head -c 140 "$D/e.err")" || fail "missing dir: $(cat "$D/e.err")"; }
ls "$D"/keep.zip.* "$D"/*.zip.* > /dev/null 2>&1 && fail "temporary files left beside the zip" || pass "no temporary files left"

# Over the 50 MiB direct-upload limit (50 MiB of random bytes and the function): written,
# since a deploy from S3 takes it, with a clear warning.
head -c 50M /dev/urandom > "$D/random.bin"
"$LAMBDAMR" package --out "$D/big.zip" --file "$D/random.bin" > "$D/big.out" 2>&1 || fail "big package failed"
grep -q "OVER LAMBDA'S LIMIT.*S3" "$D/big.out" && pass "over 50 MiB zipped: $(grep -o "OVER.*directly" "$D/big.out")" \
    || fail "no warning: $(tail -2 "$D/big.out")"
finish
