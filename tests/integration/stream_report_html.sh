#!/usr/bin/env bash
# The stream report of a real run (records on standard input over several 1 s windows, through
# the embedded Lambda service): OUTPUT/_lambdamr/report.json ("kind": "stream") has every window
# with its start and end and every invocation with its times, slot, cold/warm, Init, billed
# duration, memory and the function's store figures; the windows' records add up to the input,
# the invocations to the run's count. `lambdamr report OUTPUT --html` renders it, and headless
# Chromium (no host reachable) shows one bar per invocation, one timeline per window, the cost
# table, no console message and no script. Screenshot: build/test-artifacts/stream-report.png.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
source "$(dirname "$0")/lib/chromium.sh"
chromium_find

python3 - "$D" <<'PY'
import random, sys
r = random.Random(3)
for c in range(3):
    with open('%s/chunk%d.txt' % (sys.argv[1], c), 'w') as f:
        for _ in range(700):
            f.write(' '.join(r.choice(['ant', 'bee', 'cat', 'dog', 'eel']) for _ in range(4)) + '\n')
PY
# Three chunks 1.2 s apart: at least two 1 s windows.
if { cat "$D/chunk0.txt"; sleep 1.2; cat "$D/chunk1.txt"; sleep 1.2; cat "$D/chunk2.txt"; } |
    "$LAMBDAMR" stream wordcount --source - --window 1 --batch-size 150 --output "$D/out" > /dev/null 2> "$D/err.log"; then
    pass "stream run"
else
    cat "$D/err.log"
    fail "stream run"
    finish
fi
if python3 - "$D/out/_lambdamr/report.json" "$D/err.log" <<'PY'; then
import json, re, sys
r = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read()
assert r['schema_version'] == 2 and r['kind'] == 'stream' and r['status'] == 'drained', (r['kind'], r['status'])
assert r['window_ms'] == 1000 and r['mapping']['batch_size'] == 150, r['mapping']
ws = r['windows']
assert len(ws) >= 2, len(ws)
t = r['totals']
assert t['records_read'] == 2100 and sum(w['records'] for w in ws) == 2100, [w['records'] for w in ws]
n_inv = int(re.search(r'(\d+) invocations in', log).group(1))
assert t['invocations'] == n_inv == sum(w['invocation_count'] for w in ws), (t['invocations'], n_inv)
for w in ws:
    assert w['end_ms'] - w['start_ms'] == 1000 and w['status'] == 'committed', w
    assert len(w['invocations']) == w['invocation_count'], w['invocation_count']
    assert w['final_invokes'] >= 1
    for i in w['invocations']:
        for k in ('start_ms', 'end_ms', 'slot', 'cold', 'init_duration_ms', 'billed_duration_ms', 'duration_ms',
                  'memory_size_mb', 'max_memory_used_mb', 'request_id', 'shard', 'lane'):
            assert k in i, (k, i)
        assert w['start_ms'] <= i['start_ms'] <= i['end_ms'], i
        assert i['memory_size_mb'] == 1024 and i['max_memory_used_mb'] > 0, i
        assert i['billed_duration_ms'] >= i['duration_ms'] + i['init_duration_ms'] - 1e-6, i
        assert i['cold'] == (i['init_duration_ms'] > 0), i
        st = i['store']
        if i['final']:
            assert st['put'] >= 1 and st['bytes_written'] > 0, i   # the final invoke writes its part
        else:
            assert st['put'] == 0 and st['get'] == 0, i             # a batch touches no store
assert sum(1 for w in ws for i in w['invocations'] if i['cold']) == t['cold_starts'] >= 1
assert abs(sum(w['gb_seconds'] for w in ws) - t['gb_seconds']) < 1e-9
fs = t['function_store']
assert fs['put'] == sum(i['store']['put'] for w in ws for i in w['invocations']) > 0, fs
assert r['cost']['invocations'] == n_inv and r['cost']['total_usd'] > 0
print('%d windows, %d invocations' % (len(ws), n_inv))
PY
    pass "report.json: every window and invocation with its figures; records and invocations add up"
else
    fail "report.json checks"
fi

"$LAMBDAMR" report "$D/out" > "$D/summary.txt" && grep -q "windows  .* closed" "$D/summary.txt" &&
    pass "lambdamr report OUTPUT prints the stream summary" || { cat "$D/summary.txt"; fail "stream summary"; }
"$LAMBDAMR" report "$D/out" --html "$D/page.html" 2> /dev/null && pass "lambdamr report --html" ||
    fail "lambdamr report --html"

chromium_render "$D/page.html" stream-report.png 1280,1400

if python3 - "$D/dom.html" "$D/out/_lambdamr/report.json" <<'PY'; then
import collections, html.parser, json, sys
dom, r = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.bars, self.sections, self.rows, self.ids, self.csp = [], [], [], set(), None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get('class') or '').split()
        if 'id' in a:
            self.ids.add(a['id'])
        if tag == 'rect' and 'bar' in cls:
            self.bars.append((int(a['data-window']), a.get('data-request'), set(cls)))
        if tag == 'section' and 'window-timeline' in cls:
            self.sections.append(int(a['data-window']))
        if tag == 'tr' and 'window' in cls:
            self.rows.append(int(a['data-window']))
        if tag == 'meta' and a.get('http-equiv', '').lower() == 'content-security-policy':
            self.csp = a.get('content')

p = Page()
p.feed(dom)
errors = []
ws = r['windows']
want = sorted((w['start_ms'], i['request_id']) for w in ws for i in w['invocations'])
got = sorted(b[:2] for b in p.bars)
if got != want:
    errors.append('bars %d != invocations %d' % (len(got), len(want)))
if sorted(p.sections) != sorted(w['start_ms'] for w in ws) or sorted(p.rows) != sorted(p.sections):
    errors.append('timelines %s / rows %s != windows %s' % (p.sections, p.rows, [w['start_ms'] for w in ws]))
finals = collections.Counter(b[0] for b in p.bars if 'final' in b[2])
if any(finals[w['start_ms']] != w['final_invokes'] for w in ws):
    errors.append('final invokes marked %s' % dict(finals))
if not any('cold' in b[2] for b in p.bars):
    errors.append('no cold start marked')
for needed in ('cost-table', 'cost-total', 'prices', 'windows-table', 'totals', 'command'):
    if needed not in p.ids:
        errors.append('no element #%s' % needed)
if ('$%.7f' % r['cost']['total_usd']) not in dom:
    errors.append('cost total not on the page')
if not p.csp or "default-src 'none'" not in p.csp or '<script' in dom:
    errors.append('CSP missing or a script on the page')
if errors:
    print('\n'.join(errors))
    sys.exit(1)
print('%d bars, %d window timelines' % (len(p.bars), len(p.sections)))
PY
    pass "DOM: one bar per invocation, one timeline and row per window, finals and cold starts marked, cost"
else
    fail "DOM checks"
fi
chromium_console_clean

# A run that goes on (a followed file): the report is rewritten while it runs (status "running", its
# closed windows in it; LMR_STREAM_REPORT_INTERVAL_MS shortens the 30 s between writes) and says
# "stopped" after SIGTERM.
cp "$D/chunk0.txt" "$D/follow.txt"
LMR_STREAM_REPORT_INTERVAL_MS=100 "$LAMBDAMR" stream wordcount --source "file://$D/follow.txt" --window 1 \
    --output "$D/out2" --quiet > /dev/null 2> "$D/follow.err" &
pid=$!
seen=
for _ in $(seq 100); do
    sleep 0.2
    seen=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["status"], r["windows"][0]["status"])' \
        "$D/out2/_lambdamr/report.json" 2> /dev/null) && break
done
kill -TERM "$pid"
wait "$pid" || true
[ "$seen" = "running committed" ] && pass "report written while the run goes on: $seen" ||
    { cat "$D/follow.err"; fail "no report while running (saw: '$seen')"; }
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["status"] == "stopped" and r["totals"]["records_read"] == 700, r["status"]' \
    "$D/out2/_lambdamr/report.json" && pass "after SIGTERM the report says stopped, with every record read" ||
    fail "report after SIGTERM"
finish
