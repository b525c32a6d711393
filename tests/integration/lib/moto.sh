# Sourceable helper: an emulated AWS (moto_server) on a free loopback port, with SigV4
# signature checking ON, and an IAM user whose credentials are exported for the test.
#
#   source "$LMR_SOURCE_DIR/tests/integration/lib/moto.sh"
#   moto_start            # exports AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
#                         # AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, MOTO_URL, MOTO_PORT, MOTO_LOG
#   ... aws --endpoint-url "$MOTO_URL" s3 ls ...   (the aws CLI honours the exported env too)
#   lmr_on_exit 'rm -rf "$tmp"'   # chain your own clean-up; moto is killed on exit anyway
#
# How moto decides when to check signatures: with INITIAL_NO_AUTH_ACTION_COUNT=N every
# authorizable action (each S3/IAM/Kinesis/... API call, not /moto-api/ calls) is counted,
# and the first N run without authentication; from action N+1 on, every request must be
# signed with the secret of an IAM access key that exists in moto and be allowed by that
# user's policies. moto_start spends exactly the first 3 actions on CreateUser,
# CreateAccessKey and PutUserPolicy (allow "*" on "*") and then proves that checking is on:
# a request signed with a wrong secret must fail with SignatureDoesNotMatch.
#
# moto runs through moto_server.py beside this file: moto_server itself plus fixes (its
# signature check sees the request URI as sent, moto issue #5948; Kinesis puts after a reshard go
# to open shards; see that file).

MOTO_NO_AUTH_ACTIONS=3
MOTO_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
declare -a LMR_EXIT_HOOKS=()

# Run "$@" (a shell snippet) when the test script exits, after hooks registered earlier.
lmr_on_exit() {
    LMR_EXIT_HOOKS+=("$1")
    trap 'for _h in "${LMR_EXIT_HOOKS[@]}"; do eval "$_h" || true; done' EXIT
}

# free_port: print a TCP port on 127.0.0.1 that nothing listens on now (for a server whose port
# must be known before it starts, e.g. a serve whose functions inherit AWS_ENDPOINT_URL_LAMBDA).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

moto_stop() {
    if [ -n "${MOTO_PID:-}" ]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=
    fi
}

# Start moto and create the IAM user. Fails (return 1, message on stderr) if moto does not come up.
moto_start() {
    local attempt
    MOTO_LOG=$(mktemp "${TMPDIR:-/tmp}/moto.XXXXXX.log")
    lmr_on_exit 'moto_stop; rm -f "$MOTO_LOG"'
    for attempt in 1 2 3; do
        MOTO_PORT=$(free_port)
        INITIAL_NO_AUTH_ACTION_COUNT=$MOTO_NO_AUTH_ACTIONS \
            python3 "$MOTO_LIB_DIR/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
        MOTO_PID=$!
        local i
        for i in $(seq 1 100); do
            if curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/data.json"; then
                break
            fi
            kill -0 "$MOTO_PID" 2>/dev/null || break
            sleep 0.1
        done
        if curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/data.json"; then
            break
        fi
        moto_stop
        if [ "$attempt" = 3 ]; then
            echo "moto_server did not start; its log:" >&2
            cat "$MOTO_LOG" >&2
            return 1
        fi
    done
    MOTO_URL="http://127.0.0.1:$MOTO_PORT"
    export MOTO_URL MOTO_PORT MOTO_LOG

    # The first three actions run unauthenticated: create the user, its key and its policy.
    # Then prove that signatures are checked: the right secret works, a wrong one is refused.
    local creds
    creds=$(MOTO_URL=$MOTO_URL python3 - <<'EOF'
import json, os, sys, boto3, botocore.exceptions
url = os.environ["MOTO_URL"]
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="lambdamr-test")
key = iam.create_access_key(UserName="lambdamr-test")["AccessKey"]
iam.put_user_policy(UserName="lambdamr-test", PolicyName="allow-all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
def s3(secret):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=secret)
try:
    s3(key["SecretAccessKey"]).list_buckets()
except botocore.exceptions.ClientError as e:
    sys.exit(f"moto refused the test user's own credentials: {e}")
try:
    s3("wrong-secret").list_buckets()
    sys.exit("moto accepted a request signed with a wrong secret: signature checking is off")
except botocore.exceptions.ClientError as e:
    if e.response["Error"]["Code"] != "SignatureDoesNotMatch":
        sys.exit(f"unexpected answer to a wrongly signed request: {e}")
print(key["AccessKeyId"], key["SecretAccessKey"])
EOF
    ) || { echo "could not set up the IAM user in moto; its log:" >&2; cat "$MOTO_LOG" >&2; return 1; }
    read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY <<<"$creds"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL=$MOTO_URL
    unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL_LAMBDA AWS_ENDPOINT_URL_KINESIS \
        AWS_ENDPOINT_URL_IAM AWS_ENDPOINT_URL_LOGS AWS_ENDPOINT_URL_CLOUDFORMATION
    # Keep the aws CLI away from any real configuration of this machine.
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
}

# moto_words_bucket DIR BUCKET FILES LINES SEED VOCAB NAME_FMT: FILES text files in DIR (created),
# named NAME_FMT % i (e.g. p%02d.txt), of LINES lines of six words w0..wVOCAB (random.Random(SEED)),
# uploaded to s3://BUCKET/in/ (the bucket is made first).
moto_words_bucket() {
    python3 - "$@" <<'PY'
import os, random, sys
d, files, lines, seed, vocab, fmt = sys.argv[1], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
os.makedirs(d)
r = random.Random(seed)
for i in range(files):
    with open(os.path.join(d, fmt % i), "w") as f:
        for _ in range(lines):
            f.write(" ".join("w%d" % r.randint(0, vocab) for _ in range(6)) + "\n")
PY
    aws s3 mb "s3://$2" > /dev/null
    aws s3 cp --recursive --quiet "$1" "s3://$2/in/"
}
