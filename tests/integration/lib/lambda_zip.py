#!/usr/bin/env python3
"""Write the Lambda deployment packages the control-plane tests upload.

usage: lambda_zip.py KIND OUT.zip [ARG]
  shell V        a bash custom runtime (curl on the Runtime API) that answers every event with
                 a JSON report of its environment: cwd, LAMBDA_TASK_ROOT, _HANDLER, GREETING, the
                 memory size, the content of data/msg.txt (a file of the zip), and the version V
  exec BINARY    bootstrap is a /bin/sh script that execs BINARY (the real function binary)
  nobootstrap    a valid zip without a bootstrap
  slip           an entry ../evil next to a bootstrap (zip-slip)
  absolute PATH  an entry with the absolute name PATH
  symlink        an entry that is a symbolic link to ..
  unzipped-big   one file of 262144001 zero bytes (a few hundred KB deflated)
  random N       a stored (incompressible) zip of N random bytes plus a bootstrap
"""
import os
import sys
import zipfile

SHELL_RUNTIME = r'''#!/bin/bash
set -euo pipefail
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
while true; do
    event=$(curl -sS -D "$headers" "$api/invocation/next")
    rid=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$headers" | tr -d '[:space:]' | cut -d: -f2)
    printf '{"cwd":"%s","root":"%s","handler":"%s","greeting":"%s","memory":"%s","msg":"%s","version":"@V@"}' \
        "$PWD" "$LAMBDA_TASK_ROOT" "$_HANDLER" "${GREETING:-}" "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" \
        "$(cat data/msg.txt)" | curl -sS -o /dev/null -X POST --data-binary @- "$api/invocation/$rid/response"
done
'''


def add(z, name, data, mode=0o100644, compress=zipfile.ZIP_DEFLATED):
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.create_system = 3  # Unix
    info.compress_type = compress
    z.writestr(info, data)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    with zipfile.ZipFile(out, 'w', compresslevel=1) as z:
        if kind == 'shell':
            add(z, 'bootstrap', SHELL_RUNTIME.replace('@V@', arg), 0o100755)
            add(z, 'data/msg.txt', 'hello from the zip')
        elif kind == 'exec':
            add(z, 'bootstrap', "#!/bin/sh\nexec '%s' \"$@\"\n" % arg, 0o100755)
        elif kind == 'nobootstrap':
            add(z, 'main.sh', 'echo not a bootstrap\n', 0o100755)
        elif kind == 'slip':
            add(z, 'bootstrap', '#!/bin/sh\n', 0o100755)
            add(z, '../evil', 'escaped\n')
        elif kind == 'absolute':
            add(z, 'bootstrap', '#!/bin/sh\n', 0o100755)
            add(z, arg, 'escaped\n')
        elif kind == 'symlink':
            add(z, 'bootstrap', '#!/bin/sh\n', 0o100755)
            add(z, 'up', '..', 0o120777)
        elif kind == 'unzipped-big':
            add(z, 'bootstrap', '#!/bin/sh\n', 0o100755)
            info = zipfile.ZipInfo('big.bin', date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, 'w', force_zip64=True) as f:
                block = bytes(1 << 20)
                left = 262144001
                while left:
                    n = min(left, len(block))
                    f.write(block[:n])
                    left -= n
        elif kind == 'random':
            add(z, 'bootstrap', '#!/bin/sh\n', 0o100755)
            add(z, 'random.bin', os.urandom(int(arg)), compress=zipfile.ZIP_STORED)
        else:
            sys.exit('unknown kind ' + kind)


if __name__ == '__main__':
    main()
