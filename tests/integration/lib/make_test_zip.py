"""Write a small function package for deploy tests (not a working function: deploy only uploads it).

    python3 make_test_zip.py OUT KIND [SALT]

KIND: good (an executable bootstrap at the root and bin/lambdamr-function), nobootstrap,
noexec (bootstrap without execute bits), big (over Lambda's 50 MB direct upload: 51 MiB
of random bytes stored), hugeunzipped (small zip, over 250 MB unpacked). SALT changes the
contents (and so the CodeSha256) of a good zip. Entries carry fixed dates: same input, same bytes.
"""
import sys, zipfile, os
# mkzip.py OUT KIND [SALT]: KIND = good | nobootstrap | noexec | big | hugeunzipped
out, kind = sys.argv[1], sys.argv[2]
salt = sys.argv[3] if len(sys.argv) > 3 else ""
def add(z, name, data, mode=0o644, compress=zipfile.ZIP_DEFLATED):
    zi = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    zi.external_attr = (0o100000 | mode) << 16
    zi.create_system = 3
    zi.compress_type = compress
    z.writestr(zi, data)
with zipfile.ZipFile(out, "w") as z:
    if kind != "nobootstrap":
        add(z, "bootstrap", "#!/bin/sh\nexec \"$LAMBDA_TASK_ROOT/bin/lambdamr-function\" \"$@\"\n",
            0o644 if kind == "noexec" else 0o755)
    add(z, "bin/lambdamr-function", "not a real binary " + salt, 0o755)
    if kind == "big":
        add(z, "files/blob", os.urandom(51 * 1024 * 1024), compress=zipfile.ZIP_STORED)
    if kind == "hugeunzipped":
        zi = zipfile.ZipInfo("files/zeros", date_time=(2026, 1, 1, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_DEFLATED
        with z.open(zi, "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(251):
                f.write(block)
