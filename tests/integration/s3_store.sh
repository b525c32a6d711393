#!/usr/bin/env bash
# The S3 store back-end against moto_server with signature checking on, through lmr_storetool,
# with the aws CLI and boto3 as independent readers and writers.
set -euo pipefail
: "${LMR_BIN_DIR:?}" "${LMR_SOURCE_DIR:?}"
source "$LMR_SOURCE_DIR/tests/integration/lib/moto.sh"
T="$LMR_BIN_DIR/lmr_storetool"
tmp=$(mktemp -d)
lmr_on_exit 'rm -rf "$tmp"'
moto_start
step() { echo "== $* ($SECONDS s)"; }
die() { echo "FAIL: $*" >&2; exit 1; }
B=lmr-test-bucket
aws s3api create-bucket --bucket "$B" >/dev/null

step "more than 1,000 objects, listed with continuation tokens"
"$T" put-many "s3://$B/many/part-" 1001
echo "not under the prefix" | "$T" put "s3://$B/manyother"
"$T" --stats ls "s3://$B/many/" >"$tmp/ls.txt" 2>"$tmp/ls.err"
[ "$(wc -l <"$tmp/ls.txt")" = 1001 ] || die "listed $(wc -l <"$tmp/ls.txt") objects, expected 1001"
python3 - "$B" >"$tmp/ls.want" <<'EOF'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_URL"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix="many/"):
    for o in page.get("Contents", []):
        print(f"{o['Size']}\t{o['Key']}")
EOF
cmp "$tmp/ls.txt" "$tmp/ls.want" || die "listing differs from boto3's"
grep -q 'list=2 ' "$tmp/ls.err" || die "expected 2 ListObjectsV2 pages: $(cat "$tmp/ls.err")"

step "objects written by boto3 and listed and read by lmr_storetool"
python3 - "$B" <<'EOF'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["MOTO_URL"])
for i in range(5):
    s3.put_object(Bucket=sys.argv[1], Key=f"sdk/obj-{i}", Body=f"written by boto3 {i}\n".encode() * (i + 1))
EOF
[ "$("$T" ls "s3://$B/sdk/" | cut -f2 | tr '\n' ' ')" = "sdk/obj-0 sdk/obj-1 sdk/obj-2 sdk/obj-3 sdk/obj-4 " ] ||
    die "boto3's objects not listed"
for i in 0 4; do
    aws s3 cp "s3://$B/sdk/obj-$i" "$tmp/sdk.want" >/dev/null
    "$T" get "s3://$B/sdk/obj-$i" | cmp - "$tmp/sdk.want" || die "sdk/obj-$i differs"
done

step "ranged reads of an object the aws CLI wrote"
head -c 3000000 /dev/urandom >"$tmp/r.bin"
aws s3 cp "$tmp/r.bin" "s3://$B/dir/r.bin" >/dev/null
for range in "0 1" "0 3000000" "1 100" "2999999 1" "1048576 1048577" "2999000 5000" "3000000 10" "5000000 1" "123 0"; do
    set -- $range
    "$T" get "s3://$B/dir/r.bin" "$1" "$2" >"$tmp/got"
    tail -c +$(($1 + 1)) "$tmp/r.bin" | head -c "$2" >"$tmp/want" || true
    cmp "$tmp/got" "$tmp/want" || die "range $1+$2 differs"
done
# Several ranged GETs in flight: 1 MiB parts, 4 at a time.
LMR_S3_READ_PART_BYTES=1M LMR_S3_READ_AHEAD=4 "$T" --stats get "s3://$B/dir/r.bin" >"$tmp/got" 2>"$tmp/get.err"
cmp "$tmp/got" "$tmp/r.bin" || die "pipelined read differs"
grep -q 'get=3 ' "$tmp/get.err" || die "expected 3 ranged GETs: $(cat "$tmp/get.err")"

step "multipart upload of a large object, read back by the aws CLI"
head -c $((20 * 1024 * 1024 + 12345)) /dev/urandom >"$tmp/big.bin"
"$T" --stats put "s3://$B/out/big.bin" "$tmp/big.bin" 2>"$tmp/put.err"
# CreateMultipartUpload + 3 parts of 8 MiB + CompleteMultipartUpload
grep -q 'put=5 ' "$tmp/put.err" || die "expected a 3-part multipart upload: $(cat "$tmp/put.err")"
etag=$(aws s3api head-object --bucket "$B" --key out/big.bin --query ETag --output text)
case "$etag" in *-3*) ;; *) die "ETag $etag is not the ETag of a 3-part upload" ;; esac
aws s3 cp "s3://$B/out/big.bin" "$tmp/big.back" >/dev/null
cmp "$tmp/big.bin" "$tmp/big.back" || die "aws CLI read back different bytes"
"$T" get "s3://$B/out/big.bin" | cmp - "$tmp/big.bin" || die "lmr_storetool read back different bytes"

step "create-only commits: the first wins, single PUT and multipart"
echo first | "$T" put --create-only "s3://$B/commit/_SUCCESS"
rc=0; echo second | "$T" put --create-only "s3://$B/commit/_SUCCESS" 2>"$tmp/co.err" || rc=$?
[ "$rc" = 2 ] || die "second create-only PUT exited $rc, expected 2"
grep -q 'already exists' "$tmp/co.err" || die "unclear message: $(cat "$tmp/co.err")"
[ "$(aws s3 cp "s3://$B/commit/_SUCCESS" -)" = first ] || die "the losing commit replaced the object"
rc=0; "$T" put --create-only "s3://$B/out/big.bin" "$tmp/r.bin" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || die "create-only single PUT over an existing object exited $rc"
head -c $((9 * 1024 * 1024)) /dev/urandom >"$tmp/mid.bin"
"$T" put --create-only "s3://$B/out/mid.bin" "$tmp/mid.bin"
rc=0; "$T" put --create-only "s3://$B/out/mid.bin" "$tmp/big.bin" 2>"$tmp/co.err" || rc=$?
[ "$rc" = 2 ] || die "create-only multipart over an existing object exited $rc: $(cat "$tmp/co.err")"
"$T" get "s3://$B/out/mid.bin" | cmp - "$tmp/mid.bin" || die "losing multipart commit changed the object"
uploads=$(aws s3api list-multipart-uploads --bucket "$B" --query 'length(Uploads || `[]`)' --output text)
[ "$uploads" = 0 ] || die "$uploads multipart uploads left behind"

step "an aborted writer leaves nothing behind (multipart upload aborted)"
"$T" --stats put --abort "s3://$B/out/aborted.bin" "$tmp/big.bin" 2>"$tmp/ab.err"
grep -q 'put=3 ' "$tmp/ab.err" || die "expected 2 parts uploaded before the abort: $(cat "$tmp/ab.err")"
grep -q 'delete=1 ' "$tmp/ab.err" || die "expected an AbortMultipartUpload: $(cat "$tmp/ab.err")"
[ -z "$("$T" ls "s3://$B/out/aborted")" ] || die "an aborted object is visible"
uploads=$(aws s3api list-multipart-uploads --bucket "$B" --query 'length(Uploads || `[]`)' --output text)
[ "$uploads" = 0 ] || die "$uploads multipart uploads left behind after abort"

step "copies between the file and s3 back-ends"
"$T" cp "s3://$B/dir/r.bin" "$tmp/copy.bin"
cmp "$tmp/copy.bin" "$tmp/r.bin"
"$T" cp "$tmp/copy.bin" "s3://$B/dir/copy.bin"
aws s3 cp "s3://$B/dir/copy.bin" - | cmp - "$tmp/r.bin"

step "batch delete of 1,001 objects (2 DeleteObjects requests)"
"$T" --stats rm-prefix "s3://$B/many/" 2>"$tmp/rm.err"
grep -q 'delete=2 ' "$tmp/rm.err" || die "expected 2 DeleteObjects batches: $(cat "$tmp/rm.err")"
[ -z "$("$T" ls "s3://$B/many/")" ] || die "objects left after delete"
[ "$(aws s3 cp "s3://$B/manyother" -)" = "not under the prefix" ] || die "delete went beyond the prefix"
"$T" rm "s3://$B/dir/copy.bin" "s3://$B/dir/does-not-exist"

step "errors: wrong secret, missing bucket, missing key, no credentials, unreachable endpoint"
rc=0; echo x | AWS_SECRET_ACCESS_KEY=wrong "$T" put "s3://$B/bad/x" 2>"$tmp/e.txt" || rc=$?
[ "$rc" != 0 ] || die "a wrong secret key succeeded"
grep -q SignatureDoesNotMatch "$tmp/e.txt" && grep -q "$AWS_ACCESS_KEY_ID" "$tmp/e.txt" || die "unclear: $(cat "$tmp/e.txt")"
grep -q wrong "$tmp/e.txt" && die "the secret appears in the message"
[ -z "$("$T" ls "s3://$B/bad/")" ] || die "something was written with a wrong secret"
rc=0; "$T" ls "s3://no-such-bucket-x/in/" 2>"$tmp/e.txt" || rc=$?
[ "$rc" = 3 ] && grep -q "NoSuchBucket" "$tmp/e.txt" && grep -q "no-such-bucket-x" "$tmp/e.txt" ||
    die "missing bucket: rc=$rc $(cat "$tmp/e.txt")"
rc=0; "$T" get "s3://$B/no/such/key" 2>"$tmp/e.txt" || rc=$?
[ "$rc" = 3 ] && grep -q "NoSuchKey" "$tmp/e.txt" && grep -q "s3://$B/no/such/key" "$tmp/e.txt" ||
    die "missing key: rc=$rc $(cat "$tmp/e.txt")"
rc=0; env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_PROFILE= "$T" ls "s3://$B/" 2>"$tmp/e.txt" || rc=$?
[ "$rc" != 0 ] && grep -q "no AWS credentials" "$tmp/e.txt" || die "no credentials: rc=$rc $(cat "$tmp/e.txt")"
rc=0; AWS_ENDPOINT_URL=http://127.0.0.1:1 "$T" ls "s3://$B/" 2>"$tmp/e.txt" || rc=$?
[ "$rc" != 0 ] && grep -q "cannot reach S3 at http://127.0.0.1:1" "$tmp/e.txt" || die "unreachable: $(cat "$tmp/e.txt")"

step "AccessDenied for a user whose policy only allows reading"
read -r ro_key ro_secret < <(python3 - <<'EOF'
import json, os, boto3
iam = boto3.client("iam", endpoint_url=os.environ["MOTO_URL"])
iam.create_user(UserName="read-only")
k = iam.create_access_key(UserName="read-only")["AccessKey"]
iam.put_user_policy(UserName="read-only", PolicyName="read", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                                             "Resource": "*"}]}))
print(k["AccessKeyId"], k["SecretAccessKey"])
EOF
)
AWS_ACCESS_KEY_ID=$ro_key AWS_SECRET_ACCESS_KEY=$ro_secret "$T" get "s3://$B/commit/_SUCCESS" | grep -qx first ||
    die "the read-only user cannot read"
rc=0; echo x | AWS_ACCESS_KEY_ID=$ro_key AWS_SECRET_ACCESS_KEY=$ro_secret "$T" put "s3://$B/ro/x" 2>"$tmp/e.txt" || rc=$?
[ "$rc" = 1 ] && grep -q "AccessDenied" "$tmp/e.txt" && grep -q "$ro_key" "$tmp/e.txt" && grep -q "s3://$B/ro/x" "$tmp/e.txt" ||
    die "access denied: rc=$rc $(cat "$tmp/e.txt")"

step "credentials from a profile in a shared credentials file"
printf '[research]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AWS_ACCESS_KEY_ID" \
    "$AWS_SECRET_ACCESS_KEY" >"$tmp/credentials"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_PROFILE=research AWS_SHARED_CREDENTIALS_FILE="$tmp/credentials" \
    "$T" get "s3://$B/commit/_SUCCESS" | grep -qx first || die "profile credentials did not work"

step "read throughput against moto (20 MiB object, 1 MiB parts)"
for ahead in 1 4; do
    best=$(for k in 1 2 3; do LMR_S3_READ_PART_BYTES=1M LMR_S3_READ_AHEAD=$ahead "$T" bench "s3://$B/out/big.bin"; done |
        awk '{print $(NF-1)}' | sort -n | tail -1)
    echo "read-ahead $ahead: $best MB/s"
done
echo "PASS"
