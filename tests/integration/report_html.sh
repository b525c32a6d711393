#!/usr/bin/env bash
# The HTML report of a real job (one map attempt killed and retried) opened in headless
# Chromium: the DOM has one timeline bar per invocation of report.json, the failed and the
# retried attempt are marked, the cost table is there with its total; the page logs no console
# error and requests nothing (its CSP, and no page-initiated request in Chromium's net log).
# A screenshot is kept in build/test-artifacts/report.png.
source "$(dirname "$0")/lib/common.sh"
D=$TEST_TMP
source "$(dirname "$0")/lib/chromium.sh"
chromium_find

"$LAMBDAMR" gen text --size 4M --out "$D/in" --quiet
# Map task 1's first attempt kills itself mid-input; the coordinator retries it.
if LMR_FAULT=map-kill:1:1 "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/out" --split-size 1M --reducers 2 \
    --html > "$D/run.log" 2>&1; then
    pass "job with a killed map attempt succeeded"
else
    cat "$D/run.log"
    fail "job with a killed map attempt"
    finish
fi
[ -s "$D/out/_lambdamr/report.html" ] && pass "run --html wrote _lambdamr/report.html" || fail "no report.html"
"$LAMBDAMR" report "$D/out" --html "$D/page.html" 2> /dev/null
cmp -s "$D/page.html" "$D/out/_lambdamr/report.html" && pass "lambdamr report --html writes the same page" ||
    fail "lambdamr report --html differs from run --html"

# --price-file: the coordinator function prices the job with the given table, and says so.
python3 - "$LMR_SOURCE_DIR/common/report/prices.json" "$D/prices.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t['date'] = '2030-01-02'
t['regions']['us-east-1']['lambda']['gb_second']['x86_64'] = 1.0
t['regions']['us-east-1']['lambda']['gb_second']['arm64'] = 1.0
json.dump(t, open(sys.argv[2], 'w'))
PY
if AWS_REGION=us-east-1 "$LAMBDAMR" run wordcount --input "$D/in" --output "$D/priced" --price-file "$D/prices.json" \
    > /dev/null 2> "$D/priced.err" && python3 - "$D/priced/_lambdamr/report.json" "$D/prices.json" <<'PY'; then
import json, sys
r = json.load(open(sys.argv[1]))
p, c = r['cost']['prices'], r['cost']
assert p['date'] == '2030-01-02' and p['source'] == sys.argv[2] and p['lambda_gb_second'] == 1.0, p
assert abs(c['lambda_compute_usd'] - c['gb_seconds'] * 1.0) < 1e-9, c
PY
    pass "--price-file prices the job (the coordinator function uses the driver's table)"
else
    cat "$D/priced.err"
    fail "--price-file"
fi

chromium_render "$D/page.html" report.png 1280,1600 --log-net-log="$D/netlog.json"

if python3 - "$D/dom.html" "$D/out/_lambdamr/report.json" <<'PY'; then
import html.parser, json, sys
dom, report = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.bars, self.ids, self.cost_rows, self.in_cost, self.csp = [], set(), 0, False, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if 'id' in a:
            self.ids.add(a['id'])
        cls = (a.get('class') or '').split()
        if tag == 'rect' and 'bar' in cls:
            self.bars.append((a.get('data-phase'), int(a['data-task']), int(a['data-attempt']), set(cls)))
        if tag == 'table' and a.get('id') == 'cost-table':
            self.in_cost = True
        if self.in_cost and tag == 'tr' and 'cost-item' in cls:
            self.cost_rows += 1
        if tag == 'meta' and a.get('http-equiv', '').lower() == 'content-security-policy':
            self.csp = a.get('content')
    def handle_endtag(self, tag):
        if tag == 'table':
            self.in_cost = False

p = Page()
p.feed(dom)
invs = report['invocations']
errors = []
want = sorted((i['phase'], i['task'], i['attempt']) for i in invs)
got = sorted(b[:3] for b in p.bars)
if got != want:
    errors.append('timeline bars %s != invocations %s' % (got, want))
failed = [b for b in p.bars if 'failed' in b[3]]
retried = [b for b in p.bars if 'retry' in b[3]]
if not any(b[:3] == ('map', 1, 1) for b in failed):
    errors.append('the killed attempt (map task 1 attempt 1) is not marked failed: %s' % failed)
if not any(b[:3] == ('map', 1, 2) for b in retried):
    errors.append('the retry (map task 1 attempt 2) is not marked: %s' % retried)
if not any('critical' in b[3] for b in p.bars):
    errors.append('no bar on the critical path')
if not any('cold' in b[3] for b in p.bars):
    errors.append('no cold start marked')
for needed in ('cost-table', 'cost-total', 'prices', 'timeline-svg', 'command', 'phases', 'stragglers', 'shuffle'):
    if needed not in p.ids:
        errors.append('no element #%s' % needed)
if p.cost_rows < 7:
    errors.append('cost table has %d rows, expected Lambda compute, requests and five S3 kinds' % p.cost_rows)
total = '$%.7f' % report['cost']['total_usd']
if total not in dom:
    errors.append('cost total %s not on the page' % total)
if not p.csp or "default-src 'none'" not in p.csp or 'script-src' in p.csp:
    errors.append('CSP missing or too loose: %r' % p.csp)
if '<script' in dom:
    errors.append('the page has a script')
if errors:
    print('\n'.join(errors))
    sys.exit(1)
print('%d bars for %d invocations' % (len(p.bars), len(invs)))
PY
    pass "DOM: one bar per invocation, failed/retried/cold/critical marked, cost table and total"
else
    fail "DOM checks"
fi

# No console message from the page (an error, a CSP violation) in Chromium's log.
chromium_console_clean

# Requests the page itself initiated, from Chromium's net log: those carry the page's file://
# origin in their network isolation key (Chromium's own background calls carry "not an
# origin"). A probe page with an image proves the check sees such a request.
page_requests() {
    python3 - "$1" <<'PY'
import json, sys
log = json.load(open(sys.argv[1]))
types = {v: k for k, v in log['constants']['logEventTypes'].items()}
for e in log['events']:
    p = e.get('params') or {}
    if types.get(e['type']) == 'URL_REQUEST_START_JOB' and (
            'file://' in p.get('network_isolation_key', '') or p.get('initiator') not in (None, 'not an origin')):
        print(p.get('url'))
PY
}
printf '<!doctype html><img src="http://probe.invalid/x.png"><script>console.error("probe")</script>' > "$D/probe.html"
chrome --dump-dom --log-net-log="$D/probe-net.json" "file://$D/probe.html" > /dev/null 2> "$D/probe.log" || true
grep -q 'CONSOLE' "$D/probe.log" && pass "the console check sees a console error (probe page)" ||
    fail "the console check missed the probe page's console.error"
if page_requests "$D/probe-net.json" | grep -q probe.invalid; then
    pass "the net-log check sees a page-initiated request (probe page)"
else
    fail "the net-log check missed the probe page's image request"
fi
reqs=$(page_requests "$D/netlog.json")
if [ -z "$reqs" ]; then
    pass "the report page initiated no request"
else
    fail "the report page requested: $reqs"
fi
finish
