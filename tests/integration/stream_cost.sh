#!/usr/bin/env bash
# A stream run reports what it would cost on AWS: every invocation billed (Init included) at
# its memory, with the prices named; the invocation count is the run's own.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
python3 -c 'import random; r=random.Random(5); print("\n".join(" ".join(r.choice(["a","b","c","d"]) for _ in range(5)) for _ in range(3000)))' > "$D/in.txt"
if "$LAMBDAMR" stream wordcount --source - --window 2 --output "$D/out" < "$D/in.txt" > "$D/out.log" 2> "$D/err.log"; then
    pass "stream run"
else
    cat "$D/err.log"
    fail "stream run"
fi
if python3 - "$D/err.log" <<'PY'; then
import re, sys
log = open(sys.argv[1]).read()
inv = int(re.search(r'(\d+) invocations in', log).group(1))
m = re.search(r'billing (\d+) invocations, ([0-9.]+) GB-s \(Init included\) -> est\. \$([0-9.]+) \(Lambda \$([0-9.]+)'
              r'.* at (\S+) (x86_64|arm64) prices of (\d{4}-\d\d-\d\d)', log)
assert m, log
billed, gbs, total, lam = int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4))
assert billed == inv and inv > 0, (billed, inv)
assert gbs > 0 and lam > 0 and total >= lam, m.groups()
# Lambda's part is at least the requests' price and at most GB-s x the highest price in the table + requests.
assert lam >= inv * 0.20 / 1e6 - 1e-12 and lam <= gbs * 0.0000166667 + inv * 0.20 / 1e6 + 1e-6, m.groups()
PY
    pass "billing line: the run's invocations, GB-s with Init, prices named"
else
    fail "billing line"
fi
finish
