#!/usr/bin/env bash
# Lambda's control plane in `lambdamr serve`, driven by the AWS CLI (and boto3) as against AWS:
# create-function with a zip (a bash custom runtime, and the real function binary), invoke from
# the unpacked task root, get-function(-configuration) fields, list-functions paging, updates in
# their InProgress window (a second update is refused until `aws lambda wait function-updated`),
# delete, concurrency, and every error case with the error type AWS gives. Also: it listens on
# loopback only, refused zips leave nothing behind, the state dir is removed at exit.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh" # for lmr_on_exit
source "$(dirname "$0")/lib/serve.sh"
D=$TEST_TMP
ZIP="python3 $LMR_SOURCE_DIR/tests/integration/lib/lambda_zip.py"
serve_pid=
lmr_on_exit '[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; wait 2>/dev/null; cleanup_tmp'

WINDOW_MS=2500 # the Pending / InProgress window: long enough for two CLI calls in a row
mkdir -p "$D/tmp"
TMPDIR=$D/tmp "$LAMBDAMR" serve --port 0 --log-dir "$D/logs" --state-dir "$D/state" --update-delay-ms $WINDOW_MS \
    --function "cli-echo=$LMR_BIN_DIR/bootstrap,handler=echo,timeout=10" > "$D/serve.out" 2> "$D/serve.err" &
serve_pid=$!
port=$(serve_port "$D/serve.out")
[ -n "$port" ] || { cat "$D/serve.err"; fail "lambdamr serve did not start"; finish; exit 1; }

export AWS_ACCESS_KEY_ID=AKIDCONTROLTEST AWS_SECRET_ACCESS_KEY=control-test-secret AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1 AWS_PAGER= AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_ENDPOINT_URL_LAMBDA
EP="http://127.0.0.1:$port"
L=(timeout 60 aws --endpoint-url "$EP" lambda)
ROLE=arn:aws:iam::123456789012:role/lambdamr-test
binfmt=()
aws --version 2>&1 | grep -q '^aws-cli/1\.' || binfmt=(--cli-binary-format raw-in-base64-out)

# expect_error NAME TYPE CMD...: CMD must fail and its stderr name the error type TYPE.
expect_error() {
    local name=$1 type=$2
    shift 2
    if "$@" > "$D/err.out" 2> "$D/err.txt"; then
        fail "$name: succeeded, expected $type"
    elif grep -q "($type)" "$D/err.txt"; then
        pass "$name: $type"
    else
        fail "$name: expected $type, got: $(head -c 300 "$D/err.txt")"
    fi
}
# json_check FILE PYTHON-EXPRESSION (j is the parsed file): the expression must hold.
json_check() {
    python3 -c 'import json, re, sys; j = json.load(open(sys.argv[1])); assert eval(sys.argv[2]), j' "$1" "$2" \
        2> "$D/check.err"
}

# ---- loopback only ---------------------------------------------------------------------------
if ss -ltn 2> /dev/null | awk '{print $4}' | grep -q ":$port\$"; then
    addrs=$(ss -ltn | awk '{print $4}' | grep ":$port\$" | sort -u | tr '\n' ' ')
    [ "$addrs" = "127.0.0.1:$port " ] && pass "listens on 127.0.0.1:$port only" || fail "listens on: $addrs"
fi
other=$(hostname -I 2> /dev/null | tr ' ' '\n' | grep -v '^127\.' | grep -v ':' | head -1 || true)
if [ -n "$other" ]; then
    if curl -s -m 3 -o /dev/null "http://$other:$port/2015-03-31/functions"; then
        fail "the control plane answers on $other"
    else
        pass "not reachable on this host's address $other"
    fi
fi

# ---- packages ---------------------------------------------------------------------------------
$ZIP shell "$D/v1.zip" 1
$ZIP shell "$D/v2.zip" 2
# The real function: the packaged zip once `lambdamr package` exists, else a sh bootstrap that execs
# the function binary of this build.
if "$LAMBDAMR" package --help > /dev/null 2>&1; then
    "$LAMBDAMR" package --out "$D/real.zip" > "$D/package.log" 2>&1 || { cat "$D/package.log"; fail "lambdamr package"; }
else
    python3 "$LMR_SOURCE_DIR/tests/integration/lib/lambda_zip.py" exec "$D/real.zip" "$LMR_BIN_DIR/bootstrap"
fi
$ZIP nobootstrap "$D/nobootstrap.zip"
$ZIP slip "$D/slip.zip"
$ZIP absolute "$D/absolute.zip" "$D/evil"
$ZIP symlink "$D/symlink.zip"
$ZIP unzipped-big "$D/big.zip"

# ---- create, invoke from the task root, configuration -----------------------------------------
"${L[@]}" create-function --function-name sh-fn --runtime provided.al2023 --handler my.handler --role "$ROLE" \
    --zip-file "fileb://$D/v1.zip" --memory-size 256 --timeout 10 --environment 'Variables={GREETING=hello}' \
    > "$D/create.json" 2> "$D/create.err" || fail "create-function: $(cat "$D/create.err")"
json_check "$D/create.json" 'j["State"] == "Pending" and j["LastUpdateStatus"] == "InProgress"' \
    && pass "create-function answers State Pending, LastUpdateStatus InProgress" || fail "create: $(cat "$D/check.err")"
"${L[@]}" wait function-active-v2 --function-name sh-fn && pass "wait function-active-v2" || fail "wait function-active-v2"
"${L[@]}" invoke --function-name sh-fn "${binfmt[@]}" --payload '{}' "$D/out1.json" > "$D/meta1.json" \
    || fail "invoke sh-fn"
root=$(ls -d "$D"/state/functions/sh-fn-*/task 2> /dev/null | head -1)
[ -n "$root" ] && pass "the zip is unpacked into its own task root under the state dir" || fail "no task root"
python3 - "$D/out1.json" "$root" <<'PY' && pass "bootstrap runs in its task root: cwd, LAMBDA_TASK_ROOT, _HANDLER, variables, memory, files" || fail "environment: $(cat "$D/out1.json")"
import json, os, sys
j = json.load(open(sys.argv[1])); root = os.path.realpath(sys.argv[2])
assert os.path.realpath(j["cwd"]) == root and os.path.realpath(j["root"]) == root, (j, root)
assert j["handler"] == "my.handler" and j["greeting"] == "hello" and j["memory"] == "256", j
assert j["msg"] == "hello from the zip" and j["version"] == "1", j
PY

"${L[@]}" get-function-configuration --function-name sh-fn > "$D/conf.json" || fail "get-function-configuration"
python3 - "$D/conf.json" "$D/v1.zip" <<'PY' && pass "get-function-configuration: ARN, CodeSha256, CodeSize, runtime, role, handler, memory, timeout, environment, state" || fail "configuration fields"
import base64, hashlib, json, re, sys
j = json.load(open(sys.argv[1])); z = open(sys.argv[2], "rb").read()
want = {"FunctionName": "sh-fn", "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:sh-fn",
        "Runtime": "provided.al2023", "Role": "arn:aws:iam::123456789012:role/lambdamr-test",
        "Handler": "my.handler", "MemorySize": 256, "Timeout": 10, "Version": "$LATEST", "State": "Active",
        "LastUpdateStatus": "Successful", "PackageType": "Zip", "Architectures": ["x86_64"],
        "CodeSize": len(z), "CodeSha256": base64.b64encode(hashlib.sha256(z).digest()).decode(),
        "Environment": {"Variables": {"GREETING": "hello"}}}
for k, v in want.items():
    assert j.get(k) == v, (k, j.get(k), v)
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", j["LastModified"]), j["LastModified"]
assert re.fullmatch(r"[0-9a-f-]{36}", j["RevisionId"]), j
PY
"${L[@]}" get-function --function-name sh-fn > "$D/getfn.json" || fail "get-function"
loc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Code"]["Location"])' "$D/getfn.json" 2> /dev/null)
curl -sf -o "$D/downloaded.zip" "$loc" && cmp -s "$D/downloaded.zip" "$D/v1.zip" \
    && pass "get-function: Code.Location serves the uploaded zip" || fail "Code.Location $loc"

# The real function binary behind a sh bootstrap.
"${L[@]}" create-function --function-name real-fn --runtime provided.al2023 --handler echo --role "$ROLE" \
    --zip-file "fileb://$D/real.zip" --timeout 10 > /dev/null 2> "$D/err.txt" || fail "create real-fn: $(cat "$D/err.txt")"
"${L[@]}" wait function-active-v2 --function-name real-fn
"${L[@]}" invoke --function-name real-fn "${binfmt[@]}" --payload '{"n":42}' "$D/out2.json" > /dev/null \
    && [ "$(cat "$D/out2.json")" = '{"n":42}' ] && pass "the function binary answers from a created function" \
    || fail "real-fn answered $(cat "$D/out2.json" 2> /dev/null)"

# A zip without bootstrap is accepted; invoking it fails with Runtime.InvalidEntrypoint.
"${L[@]}" create-function --function-name noboot-fn --runtime provided.al2023 --handler h --role "$ROLE" \
    --zip-file "fileb://$D/nobootstrap.zip" > /dev/null 2> "$D/err.txt" && pass "a zip without bootstrap is accepted" \
    || fail "create noboot-fn: $(cat "$D/err.txt")"

# ---- list-functions paging --------------------------------------------------------------------
"${L[@]}" list-functions --page-size 1 > "$D/list.json" || fail "list-functions"
json_check "$D/list.json" 'sorted(f["FunctionName"] for f in j["Functions"]) == ["cli-echo", "noboot-fn", "real-fn", "sh-fn"]' \
    && pass "list-functions pages of 1 (Marker) give every function once, --function ones too" \
    || fail "list-functions: $(cat "$D/list.json")"
python3 - "$EP" <<'PY' && pass "ListFunctions MaxItems=3 then NextMarker" || fail "ListFunctions paging by hand"
import boto3, sys
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1")
p1 = c.list_functions(MaxItems=3)
assert len(p1["Functions"]) == 3 and "NextMarker" in p1, p1
p2 = c.list_functions(MaxItems=3, Marker=p1["NextMarker"])
assert len(p2["Functions"]) == 1 and "NextMarker" not in p2, p2
names = [f["FunctionName"] for f in p1["Functions"] + p2["Functions"]]
assert names == sorted(set(names)) and len(names) == 4, names
assert "State" not in p1["Functions"][0], p1  # as on AWS, ListFunctions leaves the state fields out
PY

# ---- updates and their InProgress window ----------------------------------------------------
"${L[@]}" update-function-code --function-name sh-fn --zip-file "fileb://$D/v2.zip" > "$D/upd.json" \
    || fail "update-function-code"
json_check "$D/upd.json" 'j["LastUpdateStatus"] == "InProgress" and j["State"] == "Active"' \
    && pass "update-function-code answers LastUpdateStatus InProgress" || fail "update: $(cat "$D/check.err")"
# The second update goes out at once with curl (an AWS CLI start can outlast the window on a busy machine).
code=$(curl -s -D "$D/conflict.h" -o "$D/conflict.json" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
    -d '{"MemorySize":512}' "$EP/2015-03-31/functions/sh-fn/configuration")
if [ "$code" = 409 ] && grep -qi '^x-amzn-ErrorType: ResourceConflictException' "$D/conflict.h" &&
    grep -q "An update is in progress for resource: arn:aws:lambda:us-east-1:000000000000:function:sh-fn" "$D/conflict.json"; then
    pass "an immediate second update: 409 ResourceConflictException naming the function's ARN"
else
    fail "an immediate second update: HTTP $code $(cat "$D/conflict.h" "$D/conflict.json")"
fi
"${L[@]}" wait function-updated --function-name sh-fn && pass "wait function-updated" || fail "wait function-updated"
"${L[@]}" update-function-configuration --function-name sh-fn --memory-size 512 \
    --environment 'Variables={GREETING=bye}' > /dev/null || fail "update-function-configuration after the wait"
"${L[@]}" wait function-updated-v2 --function-name sh-fn
"${L[@]}" invoke --function-name sh-fn "${binfmt[@]}" --payload '{}' "$D/out3.json" > /dev/null || fail "invoke v2"
json_check "$D/out3.json" 'j["version"] == "2" and j["memory"] == "512" and j["greeting"] == "bye"' \
    && pass "after the updates: new code, memory and variables in a new environment" || fail "v2: $(cat "$D/out3.json")"
"${L[@]}" get-function-configuration --function-name sh-fn > "$D/conf2.json"
json_check "$D/conf2.json" 'j["MemorySize"] == 512 and j["LastUpdateStatus"] == "Successful"' \
    || fail "configuration after the updates: $(cat "$D/conf2.json")"
n=0
for _ in $(seq 50); do # the old task root goes once its environment is gone (checked on each API call)
    "${L[@]}" get-function-configuration --function-name sh-fn > /dev/null
    n=$(ls -d "$D"/state/functions/sh-fn-* | wc -l)
    [ "$n" -eq 1 ] && break
    sleep 0.2
done
[ "$n" -eq 1 ] && pass "the old code's task root is removed" || fail "$n task roots of sh-fn remain"

# ---- boto3: Pending, old code during the window, revision, limits, concurrency ------------------
$ZIP random "$D/toobig.zip" 52500000
python3 - "$EP" "$D" <<'PY' && pass "boto3: create+invoke, Pending, old code while InProgress, RevisionId, 413, concurrency" || fail "boto3 checks"
import boto3, sys
from botocore.config import Config
ep, d = sys.argv[1], sys.argv[2]
c = boto3.client("lambda", endpoint_url=ep, region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
raw = boto3.client("lambda", endpoint_url=ep, region_name="us-east-1",
                   config=Config(retries={"max_attempts": 1}, parameter_validation=False))
v1, v2 = open(d + "/v1.zip", "rb").read(), open(d + "/v2.zip", "rb").read()
role = "arn:aws:iam::123456789012:role/lambdamr-test"
def err(fn, **kw):
    try:
        fn(**kw)
    except Exception as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise SystemExit("no error from %s %s" % (fn.__name__, {k: v for k, v in kw.items() if k != "Code"}))
c.create_function(FunctionName="py-fn", Runtime="provided.al2023", Role=role, Handler="py.handler",
                  Code={"ZipFile": v1})
assert err(c.invoke, FunctionName="py-fn") == ("ResourceConflictException", 409)  # still Pending
c.get_waiter("function_active_v2").wait(FunctionName="py-fn", WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
r = c.invoke(FunctionName="py-fn", Payload=b"{}")
assert b'"version":"1"' in r["Payload"].read() and "FunctionError" not in r, r
rev = c.get_function(FunctionName="py-fn")["Configuration"]["RevisionId"]
assert err(c.update_function_code, FunctionName="py-fn", ZipFile=v2, RevisionId="0" * 36) == \
    ("PreconditionFailedException", 412)
c.update_function_code(FunctionName="py-fn", ZipFile=v2, RevisionId=rev)
r = c.invoke(FunctionName="py-fn", Payload=b"{}")  # InProgress: the previous code still answers
assert b'"version":"1"' in r["Payload"].read(), r
c.get_waiter("function_updated_v2").wait(FunctionName="py-fn", WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
assert b'"version":"2"' in c.invoke(FunctionName="py-fn", Payload=b"{}")["Payload"].read()
# Limits the CLI would check itself, sent anyway.
base = dict(FunctionName="bad-fn", Runtime="provided.al2023", Role=role, Handler="h", Code={"ZipFile": v1})
assert err(raw.create_function, **{**base, "MemorySize": 64}) == ("ValidationException", 400)
assert err(raw.create_function, **{**base, "Timeout": 0}) == ("ValidationException", 400)
assert err(raw.create_function, **{**base, "Code": {"ZipFile": open(d + "/toobig.zip", "rb").read()}}) == \
    ("RequestEntityTooLargeException", 413)
assert err(raw.create_function, **{**base, "Code": {"ZipFile": b"this is not a zip"}}) == \
    ("InvalidParameterValueException", 400)
# Reserved concurrency 0 throttles; deleting the reservation lifts it.
c.put_function_concurrency(FunctionName="py-fn", ReservedConcurrentExecutions=0)
assert err(c.invoke, FunctionName="py-fn") == ("TooManyRequestsException", 429)
assert c.get_function_concurrency(FunctionName="py-fn")["ReservedConcurrentExecutions"] == 0
assert c.get_function(FunctionName="py-fn")["Concurrency"] == {"ReservedConcurrentExecutions": 0}
assert err(c.put_function_concurrency, FunctionName="real-fn", ReservedConcurrentExecutions=901) == \
    ("InvalidParameterValueException", 400)
c.delete_function_concurrency(FunctionName="py-fn")
assert "ReservedConcurrentExecutions" not in c.get_function_concurrency(FunctionName="py-fn")
assert b'"version":"2"' in c.invoke(FunctionName="py-fn", Payload=b"{}")["Payload"].read()
c.delete_function(FunctionName="py-fn")
PY

# ---- error cases, each with AWS's error type --------------------------------------------------
create() { # NAME ZIP [extra args]: create-function with defaults
    local name=$1 zip=$2
    shift 2
    "${L[@]}" create-function --function-name "$name" --runtime provided.al2023 --handler h --role "$ROLE" \
        --zip-file "fileb://$zip" "$@"
}
before=$(ls "$D/state/functions" | sort)
# Refusals are independent of each other: they run at once, then each is checked.
BG_NAMES=() BG_TYPES=() BG_MSGS=() BG_PIDS=()
refused() { # NAME TYPE MESSAGE-PART CMD...: like expect_error, in the background
    local i=${#BG_NAMES[@]}
    BG_NAMES+=("$1") BG_TYPES+=("$2") BG_MSGS+=("$3")
    shift 3
    ( "$@" > /dev/null 2> "$D/bg-$i.err" && echo 0 > "$D/bg-$i.rc" || echo 1 > "$D/bg-$i.rc" ) &
    BG_PIDS+=($!)
}
refused "a name that exists" ResourceConflictException "Function already exist: sh-fn" create sh-fn "$D/v1.zip"
refused "a function that does not exist" ResourceNotFoundException "function:nope" \
    "${L[@]}" get-function --function-name nope
refused "invoking one that does not exist" ResourceNotFoundException "" "${L[@]}" invoke --function-name nope "$D/x.json"
refused "a name of 65 characters" ValidationException "less than or equal to 64" \
    create "$(printf 'n%.0s' $(seq 65))" "$D/v1.zip"
refused "a name with a bad character" ValidationException "regular expression" create "bad.name" "$D/v1.zip"
refused "memory over 10240 MB" ValidationException "10240" create m-fn "$D/v1.zip" --memory-size 10241
refused "timeout over 900 s" ValidationException "900" create t-fn "$D/v1.zip" --timeout 901
refused "a role that is not a role ARN" ValidationException "at 'role'" \
    "${L[@]}" create-function --function-name r-fn --runtime provided.al2023 --handler h --role not-a-role \
    --zip-file "fileb://$D/v1.zip"
refused "a runtime this service cannot run" InvalidParameterValueException "python3.12" \
    create p-fn "$D/v1.zip" --runtime python3.12
refused "a runtime that does not exist" ValidationException "enum value set" create q-fn "$D/v1.zip" --runtime cobol9
refused "no handler" InvalidParameterValueException "Runtime and Handler are mandatory" \
    "${L[@]}" create-function --function-name h-fn --runtime provided.al2023 --role "$ROLE" --zip-file "fileb://$D/v1.zip"
refused "a reserved variable" InvalidParameterValueException "AWS_REGION" create e-fn "$D/v1.zip" \
    --environment 'Variables={AWS_REGION=eu-west-1}'
refused "a zip-slip entry (../)" InvalidParameterValueException "outside the task root" create slip-fn "$D/slip.zip"
refused "an absolute entry" InvalidParameterValueException "absolute path" create abs-fn "$D/absolute.zip"
refused "a symbolic link entry" InvalidParameterValueException "symbolic link" create link-fn "$D/symlink.zip"
refused "over 250 MB unzipped" InvalidParameterValueException "Unzipped size must be smaller than 262144000 bytes" \
    create big-fn "$D/big.zip"
refused "an update of a function that does not exist" ResourceNotFoundException "" \
    "${L[@]}" update-function-configuration --function-name nope --timeout 5
wait "${BG_PIDS[@]}" || true
for i in "${!BG_NAMES[@]}"; do
    if [ "$(cat "$D/bg-$i.rc" 2> /dev/null)" != 1 ]; then
        fail "${BG_NAMES[$i]}: succeeded, expected ${BG_TYPES[$i]}"
    elif grep -q "(${BG_TYPES[$i]})" "$D/bg-$i.err" && grep -qF -- "${BG_MSGS[$i]}" "$D/bg-$i.err"; then
        pass "${BG_NAMES[$i]}: ${BG_TYPES[$i]}"
    else
        fail "${BG_NAMES[$i]}: expected ${BG_TYPES[$i]} (${BG_MSGS[$i]}), got: $(head -c 300 "$D/bg-$i.err")"
    fi
done
[ ! -e "$D/evil" ] && pass "nothing was written outside the state dir" || fail "$D/evil exists"
[ "$(ls "$D/state/functions" | sort)" = "$before" ] && pass "refused creates leave no task root behind" \
    || fail "state dir changed: $(ls "$D/state/functions")"
"${L[@]}" list-functions > "$D/list2.json"
json_check "$D/list2.json" 'len(j["Functions"]) == 4' && pass "refused creates registered nothing" \
    || fail "functions after the refusals: $(cat "$D/list2.json")"
"${L[@]}" invoke --function-name noboot-fn "$D/out4.json" > "$D/meta4.json" 2> /dev/null || true
json_check "$D/out4.json" 'j["errorType"] == "Runtime.InvalidEntrypoint"' \
    && grep -q '"FunctionError": "Unhandled"' "$D/meta4.json" \
    && pass "invoking a function without bootstrap: Runtime.InvalidEntrypoint" || fail "noboot invoke: $(cat "$D/out4.json")"

# ---- delete; --function functions still work --------------------------------------------------
# Environments of sh-fn: processes of serve whose cwd is one of its task roots.
sh_envs() { for p in $(pgrep -P "$serve_pid"); do readlink "/proc/$p/cwd" 2> /dev/null | grep -q '/sh-fn-' && echo "$p"; done; true; }
"${L[@]}" invoke --function-name sh-fn "$D/x.json" > /dev/null # a warm environment to stop
envs=$(sh_envs)
[ -n "$envs" ] || fail "no environment of sh-fn before the delete"
"${L[@]}" delete-function --function-name sh-fn && pass "delete-function" || fail "delete-function"
for _ in $(seq 50); do [ -z "$(sh_envs)" ] && break; sleep 0.1; done
[ -n "$envs" ] && [ -z "$(sh_envs)" ] && pass "delete-function stopped the function's environments" \
    || fail "environments of sh-fn after the delete: $(sh_envs)"
expect_error "a deleted function" ResourceNotFoundException "${L[@]}" get-function-configuration --function-name sh-fn
expect_error "invoking a deleted function" ResourceNotFoundException "${L[@]}" invoke --function-name sh-fn "$D/x.json"
ls -d "$D"/state/functions/sh-fn-* > /dev/null 2>&1 && fail "the deleted function's task root remains" \
    || pass "the deleted function's task root is removed"
"${L[@]}" invoke --function-name cli-echo "${binfmt[@]}" --payload '{"cli":1}' "$D/out5.json" > /dev/null \
    && [ "$(cat "$D/out5.json")" = '{"cli":1}' ] && pass "a --function function still answers" || fail "cli-echo"

# ---- stop: the given state dir stays; a temp one goes -----------------------------------------
kill "$serve_pid"
wait "$serve_pid" && pass "serve stops cleanly" || fail "serve exit status"
serve_pid=
ls -d "$D"/state/functions/real-fn-* > /dev/null 2>&1 && pass "--state-dir is kept at exit" || fail "--state-dir emptied"
TMPDIR=$D/tmp "$LAMBDAMR" serve --port 0 > "$D/serve2.out" 2> "$D/serve2.err" &
serve_pid=$!
port=$(serve_port "$D/serve2.out")
timeout 60 aws --endpoint-url "http://127.0.0.1:$port" lambda create-function --function-name tmp-fn \
    --runtime provided.al2023 --handler h --role "$ROLE" --zip-file "fileb://$D/v1.zip" > /dev/null || fail "create tmp-fn"
ls -d "$D"/tmp/lambdamr-state-* > /dev/null 2>&1 || fail "no temp state dir"
kill "$serve_pid"
wait "$serve_pid" || fail "serve 2 exit status"
serve_pid=
ls -d "$D"/tmp/lambdamr-state-* > /dev/null 2>&1 && fail "the temp state dir remains" \
    || pass "the temp state dir is removed at exit"
finish
