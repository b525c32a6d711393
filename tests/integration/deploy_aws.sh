#!/usr/bin/env bash
# lambdamr deploy / undeploy against moto_server (IAM, CloudWatch Logs, Lambda, Kinesis, SQS,
# CloudFormation; SigV4 checking on). Every check reads the result with the AWS CLI, never with
# lambdamr's own clients: the role and its policy, one function per role with its runtime,
# handler, memory, timeout, architecture and environment, the log groups and their retention;
# a second deploy is a no-op; a changed zip updates the code; --stream creates the event source
# mapping with the fields given; undeploy leaves nothing of the deployment and everything else;
# bad input is refused with the AWS error type and leaves nothing; a failing step rolls back;
# the --template stack on moto's CloudFormation holds the same functions, role and log groups.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh"
lmr_on_exit cleanup_tmp
moto_start
D=$TEST_TMP
MKZIP="python3 $LMR_SOURCE_DIR/tests/integration/lib/make_test_zip.py"
# The real function package (lambdamr package), and a second one that differs by one shipped file.
"$LAMBDAMR" package --out "$D/a.zip" > /dev/null || { fail "lambdamr package failed"; finish; }
echo 'echo hello' > "$D/hello.sh"
"$LAMBDAMR" package --out "$D/b.zip" --file "$D/hello.sh" > /dev/null || { fail "lambdamr package --file failed"; finish; }
$MKZIP "$D/small.zip" good
ACCOUNT=123456789012

# Resources that are not the deployment's, which nothing below may touch (boto3: the AWS CLI's SDK,
# one process for several calls; each CLI start costs a second on a loaded machine).
python3 - "$D/small.zip" "$ACCOUNT" > "$D/arns" <<'PY'
import boto3, json, sys
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}
boto3.client('iam').create_role(RoleName='other-role', AssumeRolePolicyDocument=json.dumps(trust))
lam = boto3.client('lambda')
for name in ('other-fn', 'dx-mapper'):
    lam.create_function(FunctionName=name, Runtime='provided.al2023', Handler='x', Code={'ZipFile': open(sys.argv[1], 'rb').read()},
                        Role=f'arn:aws:iam::{sys.argv[2]}:role/other-role')
boto3.client('logs').create_log_group(logGroupName='/aws/lambda/other-fn')
s3 = boto3.client('s3')
for b in ('lmr-data', 'lmr-code'):
    s3.create_bucket(Bucket=b)
s3.upload_file(sys.argv[1].replace('small.zip', 'a.zip'), 'lmr-code', 'pkg/lambdamr-function.zip')
kin = boto3.client('kinesis')
kin.create_stream(StreamName='events', ShardCount=2)
sqs = boto3.client('sqs')
url = sqs.create_queue(QueueName='dt-dlq')['QueueUrl']
print(kin.describe_stream_summary(StreamName='events')['StreamDescriptionSummary']['StreamARN'],
      sqs.get_queue_attributes(QueueUrl=url, AttributeNames=['QueueArn'])['Attributes']['QueueArn'])
PY
read -r stream_arn dlq_arn < "$D/arns"

# state: a sorted listing of every function, role, log group and event source mapping (boto3, one process)
state() {
    python3 - <<'PY'
import boto3
lam, iam, logs = boto3.client('lambda'), boto3.client('iam'), boto3.client('logs')
out = [f['FunctionName'] for f in lam.list_functions()['Functions']]
out += ['role ' + r['RoleName'] for r in iam.list_roles()['Roles']]
out += ['policy %s %s' % (r['RoleName'], p) for r in iam.list_roles()['Roles']
        for p in iam.list_role_policies(RoleName=r['RoleName'])['PolicyNames']]
out += ['group ' + g['logGroupName'] for g in logs.describe_log_groups()['logGroups']]
out += ['esm ' + m['UUID'] for m in lam.list_event_source_mappings()['EventSourceMappings']]
print('\n'.join(sorted(out)))
PY
}
state > "$D/state0"
grep -qx other-fn "$D/state0" && grep -qx dx-mapper "$D/state0" && grep -qx "role other-role" "$D/state0" || fail "the unrelated resources are missing: $(cat "$D/state0")"

# ---- bad input: refused with the AWS error type, nothing created ----------------------------------------------
$MKZIP "$D/nobootstrap.zip" nobootstrap
$MKZIP "$D/noexec.zip" noexec
$MKZIP "$D/big.zip" big
$MKZIP "$D/huge.zip" hugeunzipped
printf 'not a zip' > "$D/notzip.zip"
long=$(printf 'p%.0s' $(seq 53))
refuse() { # refuse NAME PATTERN ARGS...: deploy must fail, print PATTERN, and leave the state as it was
    local name=$1 pat=$2 rc=0; shift 2
    "$LAMBDAMR" deploy "$@" > "$D/out" 2> "$D/err" || rc=$?
    if [ "$rc" = 0 ]; then
        fail "$name: deploy succeeded"
    elif ! grep -q -- "$pat" "$D/err"; then
        fail "$name: no '$pat' in: $(cat "$D/err")"
    elif [ -n "${CHECK_STATE:-}" ]; then
        state > "$D/state-now"
        cmp -s "$D/state0" "$D/state-now" && pass "$name refused, nothing left: $(head -c 140 "$D/err")" \
            || fail "$name left resources behind: $(diff "$D/state0" "$D/state-now")"
    else
        pass "$name refused: $(head -c 140 "$D/err")"
    fi
}
refuse "zip without bootstrap" "Runtime.InvalidEntrypoint" --function-prefix bad --zip "$D/nobootstrap.zip"
refuse "bootstrap not executable" "Runtime.InvalidEntrypoint" --function-prefix bad --zip "$D/noexec.zip"
refuse "zip over 50 MB" "RequestEntityTooLargeException" --function-prefix bad --zip "$D/big.zip"
refuse "over 250 MB unzipped" "InvalidParameterValueException: .* unpacks to" --function-prefix bad --zip "$D/huge.zip"
refuse "not a zip" "InvalidParameterValueException: .*not a zip" --function-prefix bad --zip "$D/notzip.zip"
refuse "function name over 64 characters" "ValidationException: .*over Lambda's 64; use a prefix of at most 52" \
    --function-prefix "$long" --zip "$D/a.zip"
refuse "bad characters in the name" "ValidationException: .*only letters, digits" --function-prefix 'bad.name' --zip "$D/a.zip"
refuse "memory under 128 MB" "ValidationException: --memory 64 is outside Lambda's 128-10240 MB" \
    --function-prefix bad --zip "$D/a.zip" --memory 64
refuse "memory over 10,240 MB" "ValidationException: --memory 10241" --function-prefix bad --zip "$D/a.zip" --memory 10241
state > "$D/state-now"
cmp -s "$D/state0" "$D/state-now" && pass "the refusals above left nothing behind" \
    || fail "refused deploys left resources behind: $(diff "$D/state0" "$D/state-now")"
CHECK_STATE=1 refuse "a role that does not exist" "InvalidParameterValueException: --role .* does not exist (IAM NoSuchEntity)" \
    --function-prefix bad --zip "$D/a.zip" --role "arn:aws:iam::$ACCOUNT:role/no-such-role"
refuse "bad log retention" "InvalidParameterException: --log-retention-days 8" --function-prefix bad --zip "$D/a.zip" \
    --log-retention-days 8
refuse "stream settings without --stream" "give --stream ARN" --function-prefix bad --zip "$D/a.zip" --window 30
# A step that fails after others succeeded: the event source mapping of a stream that does not exist.
CHECK_STATE=1 refuse "failure at the event source mapping (rolled back)" "ResourceNotFoundException" --function-prefix bad \
    --zip "$D/small.zip" --stream "arn:aws:kinesis:us-east-1:$ACCOUNT:stream/no-such-stream"
grep -q "rolled back: IAM role bad-role" "$D/out" && grep -q "rolled back: function bad-mapper" "$D/out" \
    && pass "the failed deploy said what it rolled back" || fail "no rollback report: $(cat "$D/out")"

# ---- deploy ------------------------------------------------------------------------------------------------------
"$LAMBDAMR" deploy --function-prefix dt --zip "$D/a.zip" --bucket lmr-data --bucket lmr-out --memory 512 --timeout 120 \
    --log-retention-days 14 > "$D/deploy1.out" 2>&1 || { cat "$D/deploy1.out"; fail "deploy failed"; finish; }
pass "deploy: $(tail -1 "$D/deploy1.out")"
"$LAMBDAMR" deploy --function-prefix dt --print-policy --bucket lmr-data --bucket lmr-out > "$D/printed.json" \
    || fail "--print-policy failed"
python3 - "$D" <<'PY'
import boto3, json, sys
d = sys.argv[1]
iam, lam, logs = boto3.client('iam'), boto3.client('lambda'), boto3.client('logs')
json.dump(iam.get_role(RoleName='dt-role'), open(f'{d}/role.json', 'w'), default=str)
json.dump(iam.get_role_policy(RoleName='dt-role', PolicyName='lambdamr'), open(f'{d}/policy.json', 'w'), default=str)
for r in ('mapper', 'reducer', 'stream', 'coordinator'):
    json.dump(lam.get_function(FunctionName=f'dt-{r}'), open(f'{d}/fn-{r}.json', 'w'), default=str)
json.dump(logs.describe_log_groups(logGroupNamePrefix='/aws/lambda/dt-'), open(f'{d}/groups.json', 'w'), default=str)
PY
python3 - "$D/role.json" "$D/policy.json" "$D/printed.json" "$ACCOUNT" <<'PY' && pass "IAM role dt-role: trust policy for lambda.amazonaws.com, least-privilege policy as --print-policy shows, tagged" || fail "IAM role or policy"
import json, sys
role = json.load(open(sys.argv[1]))['Role']
trust = role['AssumeRolePolicyDocument']
if isinstance(trust, str):
    trust = json.loads(trust)
st = trust['Statement']
assert len(st) == 1 and st[0]['Principal'] == {'Service': 'lambda.amazonaws.com'} and st[0]['Action'] == 'sts:AssumeRole', trust
assert {'Key': 'lambdamr:deployment', 'Value': 'dt'} in role['Tags'], role.get('Tags')
doc = json.load(open(sys.argv[2]))['PolicyDocument']
if isinstance(doc, str):
    doc = json.loads(doc)
acct = sys.argv[4]
by = {s['Sid']: s for s in doc['Statement']}
assert set(by) == {'DataObjects', 'DataBuckets', 'InvokeDeployment', 'FunctionLogs'}, by.keys()
assert all(s['Effect'] == 'Allow' for s in by.values())
assert by['DataObjects']['Resource'] == ['arn:aws:s3:::lmr-data/*', 'arn:aws:s3:::lmr-out/*']
assert set(by['DataObjects']['Action']) == {'s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'}
assert by['DataBuckets'] == {'Sid': 'DataBuckets', 'Effect': 'Allow', 'Action': ['s3:ListBucket'],
                             'Resource': ['arn:aws:s3:::lmr-data', 'arn:aws:s3:::lmr-out']}
assert by['InvokeDeployment']['Action'] == ['lambda:InvokeFunction']
assert by['InvokeDeployment']['Resource'] == [f'arn:aws:lambda:us-east-1:{acct}:function:dt-*']
assert by['FunctionLogs']['Resource'] == [f'arn:aws:logs:us-east-1:{acct}:log-group:/aws/lambda/dt-{r}:*'
                                          for r in ('mapper', 'reducer', 'stream', 'coordinator')]
assert not any('*' == a or a.endswith(':*') and a.count(':') == 1 for s in by.values() for a in s['Action'])
# --print-policy prints the same document, with the account left as '*' (deploy fills it in)
printed = json.dumps(json.load(open(sys.argv[3])), sort_keys=True).replace(':*:function', f':{acct}:function') \
    .replace(':*:log-group', f':{acct}:log-group')
assert printed == json.dumps(doc, sort_keys=True), (printed, doc)
PY
python3 - "$D" "$ACCOUNT" <<'PY' && pass "four functions: provided.al2023, handler = role, 512 MB, 120 s, x86_64, environment, role, tags" || fail "function configuration"
import json, sys
d, acct = sys.argv[1], sys.argv[2]
for role in ('mapper', 'reducer', 'stream', 'coordinator'):
    f = json.load(open(f'{d}/fn-{role}.json'))
    c = f['Configuration']
    want = {'FunctionName': f'dt-{role}', 'Runtime': 'provided.al2023', 'Handler': role, 'MemorySize': 512,
            'Timeout': 120, 'Architectures': ['x86_64'], 'Role': f'arn:aws:iam::{acct}:role/dt-role',
            'Environment': {'Variables': {'LMR_FUNCTION_PREFIX': 'dt'}}, 'PackageType': 'Zip'}
    for k, v in want.items():
        assert c.get(k) == v, (role, k, c.get(k), v)
    assert f['Tags'].get('lambdamr:deployment') == 'dt', f['Tags']
PY
python3 - "$D/groups.json" <<'PY' && pass "four log groups /aws/lambda/dt-ROLE with 14-day retention" || fail "log groups"
import json, sys
g = {x['logGroupName']: x.get('retentionInDays') for x in json.load(open(sys.argv[1]))['logGroups']}
assert g == {f'/aws/lambda/dt-{r}': 14 for r in ('mapper', 'reducer', 'stream', 'coordinator')}, g
PY
[ "$(grep -c ': created' "$D/deploy1.out")" = 9 ] || fail "deploy did not report 9 creations: $(cat "$D/deploy1.out")"

# ---- a second deploy changes nothing, and says so -------------------------------------------------------------
stamp() { python3 -c '
import boto3
lam = boto3.client("lambda")
for r in ("mapper", "reducer", "stream", "coordinator"):
    c = lam.get_function_configuration(FunctionName="dt-" + r)
    print(c["LastModified"], c["CodeSha256"], c["MemorySize"], c.get("LastUpdateStatus"))
print(boto3.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/dt-mapper")["logGroups"][0].get("retentionInDays"))'
}
stamp > "$D/stamp1"
"$LAMBDAMR" deploy --function-prefix dt --zip "$D/a.zip" --bucket lmr-data --bucket lmr-out --memory 512 --timeout 120 \
    --log-retention-days 14 > "$D/deploy2.out" 2>&1 || fail "second deploy failed: $(cat "$D/deploy2.out")"
stamp > "$D/stamp2"
if grep -q "is up to date: nothing changed" "$D/deploy2.out" && cmp -s "$D/stamp1" "$D/stamp2" &&
    [ "$(grep -c unchanged "$D/deploy2.out")" = 9 ]; then
    pass "second deploy is a no-op (LastModified unchanged) and says so"
else
    fail "second deploy: $(cat "$D/deploy2.out"); $(diff "$D/stamp1" "$D/stamp2")"
fi

# ---- a changed zip updates the code; a changed memory the configuration ---------------------------------------
"$LAMBDAMR" deploy --function-prefix dt --zip "$D/b.zip" --bucket lmr-data --bucket lmr-out --memory 1024 --timeout 120 \
    --log-retention-days 30 > "$D/deploy3.out" 2>&1 || fail "update deploy failed: $(cat "$D/deploy3.out")"
want_sha=$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1],"rb").read()).digest()).decode())' "$D/b.zip")
stamp > "$D/stamp3"
if [ "$(grep -c "$want_sha 1024 Successful" "$D/stamp3")" = 4 ] && [ "$(tail -1 "$D/stamp3")" = 30 ] &&
    [ "$(grep -c 'code updated' "$D/deploy3.out")" = 4 ] && [ "$(grep -c 'configuration updated' "$D/deploy3.out")" = 4 ]; then
    pass "changed zip, memory and retention: code (CodeSha256), configuration and retention updated"
else
    fail "update: $(cat "$D/deploy3.out") $(cat "$D/stamp3")"
fi

# ---- --stream: the event source mapping of dt-stream -------------------------------------------------------------
stream_flags=(--stream "$stream_arn" --window 30 --batch-size 500 --parallelization-factor 2 --max-retry-attempts 3
    --on-failure "$dlq_arn")
"$LAMBDAMR" deploy --function-prefix dt --zip "$D/b.zip" --bucket lmr-data --bucket lmr-out --memory 1024 --timeout 120 \
    --log-retention-days 30 "${stream_flags[@]}" > "$D/deploy4.out" 2>&1 || fail "deploy --stream failed: $(cat "$D/deploy4.out")"
python3 - "$D" <<'PY'
import boto3, json, sys
d = sys.argv[1]
json.dump(boto3.client('lambda').list_event_source_mappings(FunctionName='dt-stream'), open(f'{d}/esm.json', 'w'), default=str)
json.dump(boto3.client('iam').get_role_policy(RoleName='dt-role', PolicyName='lambdamr'), open(f'{d}/policy2.json', 'w'), default=str)
PY
python3 - "$D/esm.json" "$stream_arn" "$dlq_arn" "$D/policy2.json" <<'PY' && pass "--stream: mapping with window 30, batch 500, parallelization 2, retries 3, bisect, ReportBatchItemFailures, on-failure SQS; policy reads the stream and sends to the queue" || fail "event source mapping"
import json, sys
m = json.load(open(sys.argv[1]))['EventSourceMappings']
assert len(m) == 1, m
m = m[0]
want = {'EventSourceArn': sys.argv[2], 'TumblingWindowInSeconds': 30, 'BatchSize': 500, 'ParallelizationFactor': 2,
        'MaximumRetryAttempts': 3, 'BisectBatchOnFunctionError': True, 'FunctionResponseTypes': ['ReportBatchItemFailures'],
        'DestinationConfig': {'OnFailure': {'Destination': sys.argv[3]}}, 'StartingPosition': 'TRIM_HORIZON'}
for k, v in want.items():
    assert m.get(k) == v, (k, m.get(k), v)
assert m['FunctionArn'].endswith(':function:dt-stream'), m['FunctionArn']
doc = json.load(open(sys.argv[4]))['PolicyDocument']
doc = json.loads(doc) if isinstance(doc, str) else doc
by = {s['Sid']: s for s in doc['Statement']}
assert by['ReadStream']['Resource'] == [sys.argv[2]] and 'kinesis:GetRecords' in by['ReadStream']['Action']
assert by['OnFailureDestination'] == {'Sid': 'OnFailureDestination', 'Effect': 'Allow', 'Action': ['sqs:SendMessage'],
                                      'Resource': [sys.argv[3]]}
PY
"$LAMBDAMR" deploy --function-prefix dt --zip "$D/b.zip" --bucket lmr-data --bucket lmr-out --memory 1024 --timeout 120 \
    --log-retention-days 30 "${stream_flags[@]}" > "$D/deploy5.out" 2>&1
grep -q "nothing changed" "$D/deploy5.out" && [ "$(python3 -c 'import boto3
print(len(boto3.client("lambda").list_event_source_mappings(FunctionName="dt-stream")["EventSourceMappings"]))')" = 1 ] && pass "deploy --stream again: no-op, still one mapping" \
    || fail "deploy --stream again: $(cat "$D/deploy5.out")"

# ---- undeploy: nothing of dt left, everything else untouched --------------------------------------------------------
"$LAMBDAMR" undeploy --function-prefix dt > "$D/undeploy.out" 2>&1 || fail "undeploy failed: $(cat "$D/undeploy.out")"
state > "$D/state-after"
if cmp -s "$D/state0" "$D/state-after"; then
    pass "undeploy: functions, mapping, log groups and role of dt gone; other-fn, other-role and their log group untouched ($(tail -1 "$D/undeploy.out"))"
else
    fail "undeploy left a difference: $(diff "$D/state0" "$D/state-after")"
fi
"$LAMBDAMR" undeploy --function-prefix dt > "$D/undeploy2.out" 2>&1 && grep -q "nothing to remove" "$D/undeploy2.out" \
    && pass "undeploy again: nothing to remove" || fail "second undeploy: $(cat "$D/undeploy2.out")"
# A function named like a deployment (dx-mapper, created above) but not by deploy is neither updated nor removed.
rc=0; "$LAMBDAMR" deploy --function-prefix dx --zip "$D/a.zip" --role "arn:aws:iam::$ACCOUNT:role/other-role" > "$D/out" 2> "$D/err" || rc=$?
[ "$rc" != 0 ] && grep -q "ResourceConflictException: Lambda function 'dx-mapper' exists and is not one lambdamr deploy created" "$D/err" \
    && pass "a foreign dx-mapper: deploy refuses to take it over" || fail "foreign function: rc=$rc $(cat "$D/err")"
"$LAMBDAMR" undeploy --function-prefix dx > "$D/out" 2>&1
python3 -c 'import boto3; boto3.client("lambda").get_function(FunctionName="dx-mapper"); boto3.client("iam").get_role(RoleName="other-role")' \
    && grep -q "left as it is" "$D/out" && pass "undeploy dx leaves the foreign dx-mapper and the given role" \
    || fail "undeploy dx: $(cat "$D/out")"

# ---- --template: the same deployment through CloudFormation ---------------------------------------------------------
"$LAMBDAMR" deploy --function-prefix cf --template "$D/template.json" --bucket lmr-data --memory 768 --timeout 60 \
    --stream "$stream_arn" --window 20 --batch-size 200 > "$D/tpl.out" 2>&1 || fail "--template failed: $(cat "$D/tpl.out")"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$D/template.json" && pass "--template wrote valid JSON" \
    || fail "template is not JSON"
python3 - "$D" <<'PY' || fail "create-stack refused the template"
import boto3, json, sys, time
d = sys.argv[1]
cf = boto3.client('cloudformation')
cf.create_stack(StackName='cf', TemplateBody=open(f'{d}/template.json').read(), Capabilities=['CAPABILITY_NAMED_IAM'],
                Parameters=[{'ParameterKey': 'CodeBucket', 'ParameterValue': 'lmr-code'},
                            {'ParameterKey': 'CodeKey', 'ParameterValue': 'pkg/lambdamr-function.zip'},
                            {'ParameterKey': 'BucketName', 'ParameterValue': 'cf-data'}])
for _ in range(50):
    st = cf.describe_stacks(StackName='cf')['Stacks'][0]['StackStatus']
    if st != 'CREATE_IN_PROGRESS':
        break
    time.sleep(0.2)
open(f'{d}/stack-status', 'w').write(st)
json.dump(cf.list_stack_resources(StackName='cf'), open(f'{d}/resources.json', 'w'), default=str)
lam = boto3.client('lambda')
json.dump(lam.get_function_configuration(FunctionName='cf-reducer'), open(f'{d}/cf-reducer.json', 'w'), default=str)
json.dump(lam.list_event_source_mappings(FunctionName='cf-stream'), open(f'{d}/cf-esm.json', 'w'), default=str)
json.dump(boto3.client('iam').get_role_policy(RoleName='cf-role', PolicyName='lambdamr'), open(f'{d}/cf-policy.json', 'w'),
          default=str)
PY
st=$(cat "$D/stack-status" 2>/dev/null || true)
python3 - "$D/resources.json" "$D/cf-reducer.json" "$st" "$D/cf-esm.json" "$D/cf-policy.json" <<'PY' && pass "CloudFormation stack: the four functions, the role, the four log groups, the bucket and the mapping; cf-reducer has 768 MB, 60 s; the policy covers both buckets" || fail "stack resources"
import json, sys
assert sys.argv[3] == 'CREATE_COMPLETE', sys.argv[3]
res = {(r['ResourceType'], r['PhysicalResourceId']) for r in json.load(open(sys.argv[1]))['StackResourceSummaries']
       if r['ResourceStatus'] == 'CREATE_COMPLETE'}
roles = ('mapper', 'reducer', 'stream', 'coordinator')
want = {('AWS::Lambda::Function', f'cf-{r}') for r in roles} | {('AWS::Logs::LogGroup', f'/aws/lambda/cf-{r}') for r in roles} \
    | {('AWS::IAM::Role', 'cf-role')}
assert want <= res, (want - res, res)
assert ('AWS::S3::Bucket', 'cf-data') in res, res
assert any(t == 'AWS::Lambda::EventSourceMapping' for t, _ in res), res
c = json.load(open(sys.argv[2]))
assert (c['Runtime'], c['Handler'], c['MemorySize'], c['Timeout']) == ('provided.al2023', 'reducer', 768, 60), c
m = json.load(open(sys.argv[4]))['EventSourceMappings']
assert len(m) == 1 and m[0]['TumblingWindowInSeconds'] == 20 and m[0]['BatchSize'] == 200, m
doc = json.load(open(sys.argv[5]))['PolicyDocument']
if isinstance(doc, str):  # moto's CloudFormation keeps the document as Python's repr
    import ast
    doc = ast.literal_eval(doc) if doc.startswith("{'") else json.loads(doc)
objs = {s['Sid']: s for s in doc['Statement']}['DataObjects']['Resource']
assert objs == ['arn:aws:s3:::lmr-data/*', 'arn:aws:s3:::cf-data/*'], objs
PY
finish
