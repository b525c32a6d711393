#!/usr/bin/env bash
# The join job against Python: reduce-side (secondary sort) and broadcast give the inner join's
# rows; three sides; per-side key/value fields and a between filter; a join group far larger
# than the reducer's buffer (--arg join-buffer=4K) completes through its temporary file (the
# join_spilled_rows counter) with the right rows; --side/--input misuse is refused.
set -euo pipefail
BIN="${LMR_BIN_DIR:?LMR_BIN_DIR must point at build/bin}"
LMR="$BIN/lambdamr"
work="$(mktemp -d /tmp/lmr-join.XXXXXX)"
trap 'rm -rf "$work"' EXIT
pass() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    exit 1
}
# users: id,name,country   orders: orderid,userid,amount,day   notes: userid|note (3rd side)
python3 - "$work" <<'PY'
import os, random, sys
w = sys.argv[1]
rnd = random.Random(17)
for d in ('users', 'orders', 'notes'):
    os.makedirs(os.path.join(w, 'dt=2026-11-30', d))
base = os.path.join(w, 'dt=2026-11-30')
with open(base + '/users/part-0', 'w') as f:
    for i in range(3000):
        f.write('u%d,name%d,%s\n' % (i, i, rnd.choice(['DE', 'FR', 'US'])))
    f.write('u17,dup17,XX\n')  # a key with two rows on the buffered side
    for i in range(2000):  # a key with 2000 rows (~30 KB) on the buffered side
        f.write('u1,many%d,ZZ\n' % i)
for k in range(3):
    with open(base + '/orders/part-%d' % k, 'w') as f:
        for i in range(20000):
            u = 'u0' if rnd.random() < 0.3 else 'u%d' % rnd.randint(0, 3500)  # u0: a huge group
            f.write('o%d-%d,%s,%d.%02d,%02d\n' % (k, i, u, rnd.randint(0, 999), rnd.randint(0, 99), rnd.randint(1, 28)))
        f.write('broken-row\n')
with open(base + '/notes/part-0', 'w') as f:
    for i in range(0, 3000, 7):
        f.write('u%d,note%d\n' % (i, i))
PY
d="$work/dt=2026-11-30"
expect() { # python expression over users/orders/notes -> sorted lines into $1
    python3 - "$d" "$1" "$2" <<'PY'
import collections, sys
d, out, kind = sys.argv[1:]
def rows(side):
    import glob
    for p in sorted(glob.glob(d + '/' + side + '/part-*')):
        for l in open(p):
            r = l.rstrip('\n').split(',')
            yield r
users = collections.defaultdict(list)
for r in rows('users'):
    users[r[0]].append(r[1] + ',' + r[2])
notes = collections.defaultdict(list)
for r in rows('notes'):
    notes[r[0]].append(r[1])
lines = []
for r in rows('orders'):
    if len(r) < 4:
        continue
    if kind == 'between' and not ('05' <= r[3] <= '09'):
        continue
    for u in users.get(r[1], []):
        if kind == 'three':
            for n in notes.get(r[1], []):
                lines.append('%s\t%s\t%s\t%s' % (r[1], u, r[0] + ',' + r[2], n))
        else:
            lines.append('%s\t%s\t%s' % (r[1], u, r[0] + ',' + r[2]))
with open(out, 'w') as f:
    f.write(''.join(l + '\n' for l in sorted(lines)))
PY
}
check() { # OUTDIR EXPECTED NAME
    cmp <(cat "$1"/part-* | LC_ALL=C sort) <(LC_ALL=C sort "$2") && pass "$3" || fail "$3: rows differ from Python's join"
}
run() { # NAME ARGS...
    local name="$1"
    shift
    "$LMR" run join "$@" --output "$work/out-$name" > "$work/$name.log" 2>&1 || {
        cat "$work/$name.log"
        fail "$name: lambdamr run join exited non-zero"
    }
}
sides=(--side "users=$d/users" --side "orders=$d/orders" --arg key.users=1 --arg value.users=2,3 --arg key.orders=2
    --arg value.orders=1,3)
expect "$work/two.txt" two
run reduce "${sides[@]}" --join reduce --reducers 3 --arg join-buffer=4K
check "$work/out-reduce" "$work/two.txt" "reduce-side join = Python's (inputs under a path with '=')"
grep -q "join strategy: reduce" "$work/reduce.log" || fail "strategy not reported"
python3 - "$work/out-reduce/_lambdamr/report.json" <<'PY' && pass "a join group past the 4K buffer spilled and completed" || fail "no spill counted"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['counters'].get('join_spilled_rows', 0) > 0, r['counters']
PY
run broadcast "${sides[@]}" --join broadcast
check "$work/out-broadcast" "$work/two.txt" "broadcast join = Python's"
run auto "${sides[@]}"
grep -q "join strategy: broadcast" "$work/auto.log" && pass "auto picks broadcast for a small side" || fail "auto"

expect "$work/between.txt" between
run between "${sides[@]}" --arg between.orders=4,05,09 --join reduce
check "$work/out-between" "$work/between.txt" "between filter on a side"

expect "$work/three.txt" three
three=(--side "users=$d/users" --side "orders=$d/orders" --side "notes=$d/notes" --arg key.users=1
    --arg value.users=2,3 --arg key.orders=2 --arg value.orders=1,3 --arg key.notes=1 --arg value.notes=2)
run three-r "${three[@]}" --join reduce --reducers 2
# the reduce-side join emits sides in --side order; with notes last, the notes column is last
check "$work/out-three-r" "$work/three.txt" "three sides, reduce-side"
run three-b "${three[@]}" --join broadcast
check "$work/out-three-b" "$work/three.txt" "three sides, broadcast"

# misuse
for bad in "--input $d/users --side users=$d/users --side orders=$d/orders" "--side users=$d/users" "--side =x --side y=z"; do
    # shellcheck disable=SC2086
    if "$LMR" run join $bad --output "$work/bad" > "$work/bad.log" 2>&1; then
        fail "join $bad succeeded"
    fi
    grep -qi "side" "$work/bad.log" || fail "unclear error for '$bad': $(cat "$work/bad.log")"
done
if "$LMR" run wordcount --side "a=$d/users" --input "$d/users" --output "$work/bad" > "$work/bad.log" 2>&1; then
    fail "--side with wordcount succeeded"
fi
! ls "$work/bad"/part-* > /dev/null 2>&1 || fail "misuse left part files"
pass "--side misuse refused"
