#!/usr/bin/env bash
# tests/tools/lmr_s3server, the in-memory S3-compatible server the scaling benchmark puts behind
# the shaping proxy (moto is too slow per request for that): what lambdamr's S3 store and the
# AWS CLI use, checked with both as clients. Signatures are checked (a wrong secret is refused),
# conditional writes are enforced (create-only, If-Match, and among concurrent writers exactly
# one wins), ranges, multipart ETags, listings over several pages, batched deletes, and a word
# count job through it equals the oracle.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/moto.sh" # lmr_on_exit
source "$(dirname "$0")/lib/s3server.sh"
s3_test_init s3server
T="$LMR_BIN_DIR/lmr_storetool"

aws s3 mb s3://srv-a > /dev/null && aws s3api head-bucket --bucket srv-a && pass "CreateBucket and HeadBucket" ||
    fail "CreateBucket/HeadBucket failed"

# A wrong secret is refused with SignatureDoesNotMatch; an unknown key with InvalidAccessKeyId.
if AWS_SECRET_ACCESS_KEY=wrong-secret aws s3 ls s3://srv-a 2> "$D/badsig.txt"; then
    fail "a request signed with a wrong secret was accepted"
elif grep -q SignatureDoesNotMatch "$D/badsig.txt"; then
    pass "a wrong secret is refused (SignatureDoesNotMatch)"
else
    fail "unexpected answer to a wrong secret: $(cat "$D/badsig.txt")"
fi
AWS_ACCESS_KEY_ID=AKIANOBODY aws s3 ls s3://srv-a 2> "$D/badkey.txt" && fail "an unknown access key was accepted" ||
    { grep -q InvalidAccessKeyId "$D/badkey.txt" && pass "an unknown access key is refused (InvalidAccessKeyId)" ||
        fail "unexpected answer to an unknown key: $(cat "$D/badkey.txt")"; }
if curl -s -o "$D/anon.txt" -w '%{http_code}' "$S3SERVER_URL/srv-a?list-type=2" | grep -q 403; then
    pass "an unsigned request is refused (403)"
else
    fail "an unsigned request was not refused: $(cat "$D/anon.txt")"
fi

# Objects through the AWS CLI: put, ranged get, head, delete.
head -c 300000 /dev/urandom > "$D/obj.bin"
aws s3api put-object --bucket srv-a --key "dir/a b+c.bin" --body "$D/obj.bin" > /dev/null
aws s3api get-object --bucket srv-a --key "dir/a b+c.bin" --range bytes=1000-1999 "$D/r1" > /dev/null
aws s3api get-object --bucket srv-a --key "dir/a b+c.bin" --range bytes=-500 "$D/r2" > /dev/null
if cmp -s "$D/r1" <(tail -c +1001 "$D/obj.bin" | head -c 1000) && cmp -s "$D/r2" <(tail -c 500 "$D/obj.bin"); then
    pass "ranged GETs (bytes=A-B and bytes=-N) of a key with a space and '+'"
else
    fail "ranged GETs returned the wrong bytes"
fi
etag=$(aws s3api head-object --bucket srv-a --key "dir/a b+c.bin" --query ETag --output text)
[ "$etag" = "\"$(md5sum < "$D/obj.bin" | cut -d' ' -f1)\"" ] && pass "HeadObject's ETag is the MD5 ($etag)" ||
    fail "ETag $etag is not the MD5 of the bytes"
if aws s3api get-object --bucket srv-a --key "dir/a b+c.bin" --range bytes=300000-300010 "$D/r3" 2> "$D/r3.err" > /dev/null; then
    fail "a range past the end was answered"
else
    grep -q InvalidRange "$D/r3.err" && pass "a range past the end is 416 InvalidRange" ||
        fail "a range past the end: $(cat "$D/r3.err")"
fi

# Conditional writes through lambdamr's store: create-only, If-Match (exit 2 = lost, 3 = not found).
echo one | "$T" put --create-only s3://srv-a/c/k && rc=0 || rc=$?
echo two | "$T" put --create-only s3://srv-a/c/k 2> "$D/c2.err" && rc2=0 || rc2=$?
[ "$rc" = 0 ] && [ "$rc2" = 2 ] && [ "$("$T" get s3://srv-a/c/k)" = one ] &&
    pass "create-only: the first commit wins, the second gets 412 (exit 2) and changes nothing" ||
    fail "create-only: exits $rc, $rc2, content '$("$T" get s3://srv-a/c/k)'"
etag=$("$T" get-etag s3://srv-a/c/k | head -1)
echo three | "$T" put-if-match s3://srv-a/c/k "$etag" && rc=0 || rc=$?
echo four | "$T" put-if-match s3://srv-a/c/k "$etag" 2> /dev/null && rc2=0 || rc2=$?
echo five | "$T" put-if-match s3://srv-a/c/none "$etag" 2> /dev/null && rc3=0 || rc3=$?
[ "$rc" = 0 ] && [ "$rc2" = 2 ] && [ "$rc3" = 3 ] && [ "$("$T" get s3://srv-a/c/k)" = three ] &&
    pass "If-Match: the current ETag replaces, a stale one gets 412, a missing key 404" ||
    fail "If-Match: exits $rc, $rc2, $rc3, content '$("$T" get s3://srv-a/c/k)'"

# Eight writers race to create one key: exactly one wins and its bytes are the object.
pids=()
for i in 1 2 3 4 5 6 7 8; do
    (echo "writer $i" | "$T" put --create-only s3://srv-a/race/k 2> /dev/null && rc=0 || rc=$?; echo $rc > "$D/race.$i") &
    pids+=($!)
done
wait "${pids[@]}" || true
wins=$(grep -l '^0$' "$D"/race.* | wc -l)
lost=$(grep -l '^2$' "$D"/race.* | wc -l)
winner=$(grep -l '^0$' "$D"/race.* | head -1 | sed 's/.*race\.//')
[ "$wins" = 1 ] && [ "$lost" = 7 ] && [ "$("$T" get s3://srv-a/race/k)" = "writer $winner" ] &&
    pass "8 concurrent create-only writers: 1 wins (writer $winner), 7 get 412" ||
    fail "concurrent create-only: $wins won, $lost lost"

# Multipart: 12 MiB in 5 MiB parts; the ETag is S3's md5-of-md5s with the part count.
head -c $((12 << 20)) /dev/urandom > "$D/big.bin"
LMR_S3_PART_BYTES=5M "$T" put s3://srv-a/big.bin "$D/big.bin"
"$T" get s3://srv-a/big.bin > "$D/big.got"
etag=$(aws s3api head-object --bucket srv-a --key big.bin --query ETag --output text)
want=$(python3 -c "
import hashlib,sys
d=open(sys.argv[1],'rb').read(); p=5<<20
print('\"%s-%d\"' % (hashlib.md5(b''.join(hashlib.md5(d[i:i+p]).digest() for i in range(0,len(d),p))).hexdigest(), (len(d)+p-1)//p))" "$D/big.bin")
cmp -s "$D/big.bin" "$D/big.got" && [ "$etag" = "$want" ] && pass "multipart upload of 12 MiB (ETag $etag)" ||
    fail "multipart: bytes equal? $(cmp -s "$D/big.bin" "$D/big.got" && echo yes || echo no); ETag $etag, want $want"

# Listing over pages (1,000 keys each) and batched deletes.
"$T" put-many s3://srv-a/many/k 2100
n=$("$T" ls s3://srv-a/many/ | wc -l)
n_cli=$(aws s3 ls s3://srv-a/many/ | wc -l)
[ "$n" = 2100 ] && [ "$n_cli" = 2100 ] && pass "ListObjectsV2 over 3 pages: 2100 keys (lambdamr and the CLI)" ||
    fail "listing: lambdamr $n, CLI $n_cli keys (want 2100)"
top=$(aws s3 ls s3://srv-a/ | awk '{print $NF}' | LC_ALL=C sort | tr '\n' ' ')
[ "$top" = "big.bin c/ dir/ many/ race/ " ] &&
    pass "a delimiter listing rolls keys up into common prefixes" || fail "delimiter listing: '$top'"
"$T" rm-prefix s3://srv-a/many/
n=$("$T" ls s3://srv-a/many/ | wc -l)
[ "$n" = 0 ] && pass "DeleteObjects in batches emptied the prefix" || fail "$n keys left after rm-prefix"

# A job through it: word count with s3:// input and output equals the oracle.
aws s3 mb s3://srv-out > /dev/null
mkdir -p "$D/in"
python3 - "$D/in" <<'PY'
import os, random, sys
r = random.Random(5)
words = ['w%d' % i for i in range(3000)] + ['Zeta', 'naïve']
for i in range(6):
    with open(os.path.join(sys.argv[1], 'part-%d.txt' % i), 'w') as f:
        for _ in range(4000):
            f.write(' '.join(r.choice(words) for _ in range(r.randint(1, 12))) + '\n')
PY
aws s3 cp --recursive --quiet "$D/in" s3://srv-a/in/
if timeout 300 "$LAMBDAMR" run wordcount --input s3://srv-a/in/ --output s3://srv-out/wc/ --mappers 6 --reducers 3 \
    > /dev/null 2> "$D/job.err"; then
    mkdir -p "$D/out"
    aws s3 cp --recursive --quiet s3://srv-out/wc/ "$D/out/" --exclude '_lambdamr/*'
    check_wordcount "word count through lmr_s3server vs the oracle" "$D/out" "$D/in"
else
    fail "word count through lmr_s3server failed: $(tail -c 1500 "$D/job.err")"
fi
stats=$(curl -s "$S3SERVER_URL/__lmr_s3server/stats")
python3 -c "import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s['precondition_failed'] >= 9 and s['denied'] >= 3 else 1)" "$stats" &&
    pass "the server counted its 412s and refusals: $stats" || fail "server counters: $stats"
finish
