/*
 * lmr_s3server: a small S3-compatible server that keeps objects in memory, for benchmarks (the
 * upstream behind tests/tools/s3_fault_proxy.py's shaping, where moto is too slow per request)
 * and tests. It speaks exactly what lambdamr's S3 store and the AWS CLI's basic commands use,
 * path-style, with SigV4 checked on every request:
 *
 *   buckets:  CreateBucket (PUT /b), HeadBucket, DeleteBucket (empty only), ListBuckets (GET /),
 *             GetBucketLocation, ListObjectsV2 (prefix, delimiter, start-after, max-keys,
 *             continuation-token, encoding-type=url), DeleteObjects (POST /b?delete, Content-MD5
 *             checked when sent)
 *   objects:  PutObject, GetObject (Range: bytes=A-B, A-, -N; 206/416 as S3 answers), HeadObject,
 *             DeleteObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload (parts
 *             checked: known, ETags equal, ascending, all but the last >= 5 MiB; ETag
 *             md5-of-md5s-N), AbortMultipartUpload
 *   writes:   If-None-Match: * (create-only) and If-Match: ETAG on PutObject and
 *             CompleteMultipartUpload, evaluated atomically with the write (one lock): 412
 *             PreconditionFailed, or 404 NoSuchKey for If-Match on a missing key, as S3 does.
 *
 * Signatures: Authorization: AWS4-HMAC-SHA256 with the access key and secret given (default
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else "testing"/"testing" as moto.sh uses), the
 * request time within 15 minutes, x-amz-content-sha256 equal to the body's SHA-256 (or
 * UNSIGNED-PAYLOAD); streaming (aws-chunked) payloads and presigned URLs are refused with 501.
 * The signature is recomputed with lambdamr's signer (common/aws/sigv4.c, tested against AWS's
 * SigV4 suite), so headers that signer never signs (User-Agent, Expect) must not be signed.
 *
 *   lmr_s3server [--port N] [--port-file F] [--bucket NAME]... [--region R]
 *                [--access-key K --secret-key S] [--max-bytes SIZE] [--threads N] [--log]
 *
 * --port 0 (default) picks a free port; --port-file receives it once listening. Objects, parts
 * of unfinished uploads and request bodies together never hold more than --max-bytes (default
 * 4G): past it a write answers 507 InsufficientStorage naming the limit. It listens on
 * 127.0.0.1 only and runs until SIGTERM/SIGINT. --log prints one line per request to stderr.
 * GET /__lmr_s3server/stats (unsigned) answers request and byte counters as JSON.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strptime, timegm */
#endif
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "aws/sigv4.h"
#include "aws/xml.h"
#include "util/buf.h"
#include "util/misc.h"

#define MIB ((uint64_t)1 << 20)
#define MAX_KEY_BYTES 1024
#define MAX_PARTS 10000
#define MIN_PART_BYTES (5 * MIB)
#define MAX_OBJECT_BYTES (5ull << 30)
#define MAX_XML_BODY_BYTES (4 * MIB) /* DeleteObjects and CompleteMultipartUpload bodies */
#define MAX_RESPONSE_XML_BYTES (16 * MIB)
#define MAX_SKEW_S (15 * 60)
#define STATS_PATH "/__lmr_s3server/stats"

/* ---- the store ------------------------------------------------------------------------------------------ */

/* Immutable bytes shared by an object and the responses still sending them. */
struct blob {
    atomic_int refs;
    size_t len;
    char data[];
};

struct object {
    char *key;
    struct blob *blob;
    char etag[48]; /* with quotes, as S3 sends it */
    time_t mtime;
};

struct bucket {
    char *name;
    struct object *objs; /* sorted by key (bytewise, as S3 lists) */
    size_t n, cap;
};

struct part {
    unsigned number;
    struct blob *blob;
    unsigned char md5[16];
};

struct upload {
    char id[33];
    char *bucket, *key;
    struct part *parts;
    size_t n;
};

struct server {
    pthread_mutex_t mu;
    struct bucket *buckets;
    size_t n_buckets;
    struct upload *uploads;
    size_t n_uploads;
    uint64_t held_bytes; /* objects + parts + bodies being received */
    uint64_t max_bytes;
    struct lmr_aws_credentials creds;
    char region[64];
    bool log;
    atomic_uint_fast64_t requests, bytes_in, bytes_out, denied, precondition_failed;
};

static struct server S;

static struct blob *blob_new(const void *data, size_t len)
{
    struct blob *b = malloc(sizeof *b + (len ? len : 1));
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

static void blob_unref(struct blob *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

static void blob_unref_cb(void *cls)
{
    blob_unref(cls);
}

/* Reserve n bytes of the memory budget; false when it would pass --max-bytes. */
static bool budget_take(uint64_t n)
{
    pthread_mutex_lock(&S.mu);
    bool ok = S.held_bytes + n <= S.max_bytes;
    if (ok)
        S.held_bytes += n;
    pthread_mutex_unlock(&S.mu);
    return ok;
}

static void budget_give_locked(uint64_t n)
{
    S.held_bytes -= n < S.held_bytes ? n : S.held_bytes;
}

static struct bucket *bucket_find(const char *name)
{
    for (size_t i = 0; i < S.n_buckets; i++)
        if (!strcmp(S.buckets[i].name, name))
            return &S.buckets[i];
    return NULL;
}

static int key_cmp(const char *a, const char *b)
{
    return strcmp(a, b); /* bytewise on unsigned char, as S3's UTF-8 binary order */
}

/* Index of the first object with key >= key. */
static size_t lower_bound(const struct bucket *b, const char *key)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(b->objs[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct object *object_find(struct bucket *b, const char *key)
{
    size_t i = lower_bound(b, key);
    return i < b->n && !key_cmp(b->objs[i].key, key) ? &b->objs[i] : NULL;
}

/* Put blob (reference taken over) under key; replaces an existing object. Locked. */
static bool object_put_locked(struct bucket *b, const char *key, struct blob *blob, const char *etag)
{
    size_t i = lower_bound(b, key);
    if (i < b->n && !key_cmp(b->objs[i].key, key)) {
        budget_give_locked(b->objs[i].blob->len);
        blob_unref(b->objs[i].blob);
        b->objs[i].blob = blob;
    } else {
        if (b->n == b->cap) {
            size_t nc = b->cap ? b->cap * 2 : 64;
            struct object *no = realloc(b->objs, nc * sizeof *no);
            if (!no)
                return false;
            b->objs = no;
            b->cap = nc;
        }
        char *k = strdup(key);
        if (!k)
            return false;
        memmove(&b->objs[i + 1], &b->objs[i], (b->n - i) * sizeof *b->objs);
        b->n++;
        b->objs[i].key = k;
        b->objs[i].blob = blob;
    }
    snprintf(b->objs[i].etag, sizeof b->objs[i].etag, "%s", etag);
    b->objs[i].mtime = time(NULL);
    return true;
}

static bool object_delete_locked(struct bucket *b, const char *key)
{
    size_t i = lower_bound(b, key);
    if (i >= b->n || key_cmp(b->objs[i].key, key))
        return false;
    budget_give_locked(b->objs[i].blob->len);
    blob_unref(b->objs[i].blob);
    free(b->objs[i].key);
    memmove(&b->objs[i], &b->objs[i + 1], (b->n - i - 1) * sizeof *b->objs);
    b->n--;
    return true;
}

static struct upload *upload_find(const char *id)
{
    for (size_t i = 0; i < S.n_uploads; i++)
        if (!strcmp(S.uploads[i].id, id))
            return &S.uploads[i];
    return NULL;
}

static void upload_remove_locked(struct upload *u)
{
    for (size_t i = 0; i < u->n; i++) {
        budget_give_locked(u->parts[i].blob->len);
        blob_unref(u->parts[i].blob);
    }
    free(u->parts);
    free(u->bucket);
    free(u->key);
    size_t i = (size_t)(u - S.uploads);
    memmove(&S.uploads[i], &S.uploads[i + 1], (S.n_uploads - i - 1) * sizeof *S.uploads);
    S.n_uploads--;
}

/* ---- helpers ---------------------------------------------------------------------------------------------- */

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void md5_of(const void *data, size_t len, unsigned char out[16])
{
    unsigned n = 16;
    EVP_Digest(data, len, out, &n, EVP_md5(), NULL);
}

/* `"hex"` of an MD5. */
static void etag_of_md5(const unsigned char md5[16], char out[48])
{
    char hex[33];
    hex_of(md5, 16, hex);
    snprintf(out, 48, "\"%s\"", hex);
}

/* Compare ETags ignoring the quotes around either. */
static bool etag_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= 2 && a[0] == '"' && a[la - 1] == '"')
        a++, la -= 2;
    if (lb >= 2 && b[0] == '"' && b[lb - 1] == '"')
        b++, lb -= 2;
    return la == lb && !strncmp(a, b, la);
}

static void iso_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

static void http_time(time_t t, char out[40])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* The no-op unescaper: path and query reach the handler as sent (SigV4 signs them so). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* ---- one request ------------------------------------------------------------------------------------------ */

struct request {
    struct lmr_buf body;
    uint64_t reserved; /* budget taken for the body */
    bool too_large, over_budget;
    char *query; /* raw query rebuilt "k=v&k2=v2" (as sent) */
};

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct lmr_buf *b = cls;
    if (b->len)
        lmr_buf_append(b, "&", 1);
    lmr_buf_append_str(b, key);
    lmr_buf_append(b, "=", 1);
    if (value)
        lmr_buf_append_str(b, value);
    return MHD_YES;
}

/* The decoded value of query parameter name (NULL if absent); caller frees. */
static char *query_arg(struct MHD_Connection *c, const char *name, bool *present)
{
    const char *raw = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    bool here = raw != NULL;
    if (!here) {
        /* a bare "?uploads" or "?delete" has a NULL value: look for the key itself */
        const char *dummy = NULL;
        here = MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, name, strlen(name), &dummy, NULL) == MHD_YES;
    }
    if (present)
        *present = here;
    if (!raw)
        return here ? strdup("") : NULL;
    struct lmr_buf b;
    lmr_buf_init(&b, 64 * 1024);
    if (lmr_aws_uri_decode(&b, raw, strlen(raw))) {
        lmr_buf_clean_up(&b);
        return NULL;
    }
    char *s = lmr_buf_detach(&b, NULL);
    return s ? s : strdup("");
}

static enum MHD_Result send_response(struct MHD_Connection *c, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Server", "lmr_s3server");
    MHD_add_response_header(resp, "x-amz-request-id", "lmr");
    enum MHD_Result r = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_xml(struct MHD_Connection *c, unsigned status, struct lmr_buf *xml)
{
    size_t len = 0;
    char *data = lmr_buf_detach(xml, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data ? data : (char *)"",
                                                                data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (resp)
        MHD_add_response_header(resp, "Content-Type", "application/xml");
    atomic_fetch_add(&S.bytes_out, len);
    return send_response(c, status, resp);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *code, const char *resource,
                                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *code, const char *resource,
                                  const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (S.log)
        fprintf(stderr, "lmr_s3server: %u %s %s: %s\n", status, code, resource ? resource : "", msg);
    if (status == 403)
        atomic_fetch_add(&S.denied, 1);
    if (status == 412)
        atomic_fetch_add(&S.precondition_failed, 1);
    struct lmr_buf x;
    lmr_buf_init(&x, 64 * 1024);
    lmr_buf_printf(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>", code);
    lmr_aws_xml_escape(&x, msg);
    lmr_buf_append_str(&x, "</Message><Resource>");
    lmr_aws_xml_escape(&x, resource ? resource : "");
    lmr_buf_append_str(&x, "</Resource><RequestId>lmr</RequestId></Error>");
    return send_xml(c, status, &x);
}

static enum MHD_Result send_empty(struct MHD_Connection *c, unsigned status)
{
    return send_response(c, status, MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT));
}

/* ---- SigV4 ------------------------------------------------------------------------------------------------ */

static bool is_hex64(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return false;
    return n == 64;
}

/* Copy the text after "name=" up to a ',' (or the end) into out. */
static bool auth_field(const char *auth, const char *name, char *out, size_t cap)
{
    const char *p = strstr(auth, name);
    if (!p)
        return false;
    p += strlen(name);
    size_t n = strcspn(p, ", ");
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/*
 * Check the request's signature. On failure it has answered the request (403/400/501) and
 * returns false with *answered set to the MHD result.
 */
static bool check_signature(struct MHD_Connection *c, const char *method, const char *url, struct request *rq,
                            const char *resource, enum MHD_Result *answered)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth) {
        if (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "X-Amz-Signature"))
            *answered = send_error(c, 501, "NotImplemented", resource, "lmr_s3server does not take presigned URLs");
        else
            *answered =
                send_error(c, 403, "AccessDenied", resource, "the request is not signed (no Authorization header)");
        return false;
    }
    char cred[512], signed_hdrs[2048], sig[80];
    if (strncmp(auth, "AWS4-HMAC-SHA256 ", 17) || !auth_field(auth, "Credential=", cred, sizeof cred) ||
        !auth_field(auth, "SignedHeaders=", signed_hdrs, sizeof signed_hdrs) ||
        !auth_field(auth, "Signature=", sig, sizeof sig)) {
        *answered = send_error(c, 400, "AuthorizationHeaderMalformed", resource,
                               "the Authorization header is not AWS4-HMAC-SHA256 with Credential, SignedHeaders "
                               "and Signature");
        return false;
    }
    /* Credential = AK/DATE/REGION/SERVICE/aws4_request */
    char *parts[5] = {0};
    char *save = NULL, *tok = strtok_r(cred, "/", &save);
    int np = 0;
    for (; tok && np < 5; tok = strtok_r(NULL, "/", &save))
        parts[np++] = tok;
    if (np != 5 || strcmp(parts[4], "aws4_request") || strcmp(parts[3], "s3")) {
        *answered = send_error(c, 400, "AuthorizationHeaderMalformed", resource,
                               "the credential scope is not ACCESS_KEY/DATE/REGION/s3/aws4_request");
        return false;
    }
    if (strcmp(parts[0], S.creds.access_key_id)) {
        *answered = send_error(c, 403, "InvalidAccessKeyId", resource,
                               "the access key id '%s' is not this server's (--access-key)", parts[0]);
        return false;
    }
    if (S.region[0] && strcmp(parts[2], S.region)) {
        *answered = send_error(c, 400, "AuthorizationHeaderMalformed", resource,
                               "the request is signed for region '%s', this server is '%s'", parts[2], S.region);
        return false;
    }
    const char *amz_date = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-amz-date");
    struct tm tm = {0};
    const char *end = amz_date ? strptime(amz_date, "%Y%m%dT%H%M%SZ", &tm) : NULL;
    if (!end || *end) {
        *answered = send_error(c, 403, "AccessDenied", resource, "no valid X-Amz-Date header (YYYYMMDDTHHMMSSZ)");
        return false;
    }
    time_t t = timegm(&tm), now = time(NULL);
    if (t < now - MAX_SKEW_S || t > now + MAX_SKEW_S) {
        *answered = send_error(c, 403, "RequestTimeTooSkewed", resource,
                               "the request time %s is more than 15 minutes from the server's", amz_date);
        return false;
    }
    const char *payload = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-amz-content-sha256");
    if (!payload) {
        *answered = send_error(c, 400, "InvalidRequest", resource, "missing x-amz-content-sha256 header");
        return false;
    }
    if (is_hex64(payload)) {
        char got[65];
        lmr_sha256_hex(rq->body.data ? rq->body.data : "", rq->body.len, got);
        if (strcasecmp(got, payload)) {
            *answered = send_error(c, 400, "XAmzContentSHA256Mismatch", resource,
                                   "the body's SHA-256 is %s, x-amz-content-sha256 says %s", got, payload);
            return false;
        }
    } else if (strcmp(payload, LMR_SIGV4_UNSIGNED_PAYLOAD)) {
        *answered = send_error(c, 501, "NotImplemented", resource,
                               "x-amz-content-sha256 '%s': lmr_s3server takes a hex SHA-256 or UNSIGNED-PAYLOAD, "
                               "not streaming (aws-chunked) payloads",
                               payload);
        return false;
    }
    /* Rebuild the signed headers (all but X-Amz-Date, which the signer adds from the time). */
    struct lmr_aws_header hs[64];
    size_t nh = 0;
    save = NULL;
    for (tok = strtok_r(signed_hdrs, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        if (!strcasecmp(tok, "x-amz-date"))
            continue;
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, tok);
        if (!v || nh == sizeof hs / sizeof *hs) {
            *answered = send_error(c, 403, "AccessDenied", resource, "signed header '%s' is not in the request", tok);
            return false;
        }
        hs[nh++] = (struct lmr_aws_header){tok, v};
    }
    struct lmr_sigv4_params p = {
        .creds = &S.creds, .region = parts[2], .service = "s3", .signing_time = t, .flags = LMR_SIGV4_S3};
    struct lmr_sigv4_request req = {.method = method,
                                    .path = url,
                                    .query = rq->query,
                                    .headers = hs,
                                    .n_headers = nh,
                                    .payload_sha256_hex = payload};
    struct lmr_sigv4_signed out;
    lmr_sigv4_signed_init(&out);
    struct lmr_err err = {0};
    bool ok = !lmr_sigv4_sign(&p, &req, &out, &err) && strlen(sig) == 64 && !CRYPTO_memcmp(out.signature, sig, 64);
    lmr_sigv4_signed_clean_up(&out);
    if (!ok)
        *answered = send_error(c, 403, "SignatureDoesNotMatch", resource,
                               "the request signature we calculated does not match the signature you provided%s%s",
                               err.msg[0] ? ": " : "", err.msg);
    return ok;
}

/* ---- bucket operations ------------------------------------------------------------------------------------ */

static void append_key(struct lmr_buf *x, const char *s, bool url)
{
    if (!url) {
        lmr_aws_xml_escape(x, s);
        return;
    }
    struct lmr_buf e;
    lmr_buf_init(&e, 16 * 1024);
    lmr_aws_uri_encode(&e, s, strlen(s), true);
    lmr_aws_xml_escape(x, e.data ? e.data : "");
    lmr_buf_clean_up(&e);
}

static enum MHD_Result list_objects_v2(struct MHD_Connection *c, const char *bname, const char *resource)
{
    char *prefix = query_arg(c, "prefix", NULL), *delim = query_arg(c, "delimiter", NULL);
    char *token = query_arg(c, "continuation-token", NULL), *after = query_arg(c, "start-after", NULL);
    char *maxk = query_arg(c, "max-keys", NULL), *enc = query_arg(c, "encoding-type", NULL);
    const char *pre = prefix ? prefix : "";
    bool url = enc && !strcmp(enc, "url");
    uint64_t max_keys = 1000;
    enum MHD_Result res;
    char from[2 * MAX_KEY_BYTES + 8] = "";
    if (maxk && lmr_parse_u64(maxk, 0, UINT64_MAX, &max_keys)) {
        res = send_error(c, 400, "InvalidArgument", resource, "max-keys '%s' is not a whole number", maxk);
        goto out;
    }
    if (max_keys > 1000)
        max_keys = 1000;
    if (token) {
        /* our tokens are the hex of the last key (or common prefix) returned */
        size_t tl = strlen(token);
        bool ok = tl % 2 == 0 && tl / 2 <= MAX_KEY_BYTES;
        for (size_t i = 0; ok && i < tl / 2; i++) {
            unsigned v = 0;
            ok = isxdigit((unsigned char)token[2 * i]) && isxdigit((unsigned char)token[2 * i + 1]) &&
                 sscanf(token + 2 * i, "%2x", &v) == 1;
            from[i] = (char)v;
        }
        if (!ok) {
            res = send_error(c, 400, "InvalidArgument", resource, "the continuation token provided is incorrect");
            goto out;
        }
        from[tl / 2] = '\0';
    } else if (after) {
        snprintf(from, sizeof from, "%s", after);
    }
    struct lmr_buf x;
    lmr_buf_init(&x, MAX_RESPONSE_XML_BYTES);
    pthread_mutex_lock(&S.mu);
    struct bucket *b = bucket_find(bname);
    if (!b) {
        pthread_mutex_unlock(&S.mu);
        lmr_buf_clean_up(&x);
        res = send_error(c, 404, "NoSuchBucket", resource, "the bucket '%s' does not exist", bname);
        goto out;
    }
    bool after_from = from[0] && key_cmp(from, pre) >= 0;
    size_t i = lower_bound(b, after_from ? from : pre);
    if (after_from && i < b->n && !key_cmp(b->objs[i].key, from))
        i++;
    size_t dl = delim ? strlen(delim) : 0, pl = strlen(pre);
    struct lmr_buf body, last;
    lmr_buf_init(&body, MAX_RESPONSE_XML_BYTES);
    lmr_buf_init(&last, MAX_KEY_BYTES + 1);
    lmr_buf_append_str(&last, from);
    uint64_t count = 0;
    bool truncated = false;
    for (; i < b->n; i++) {
        const char *k = b->objs[i].key;
        if (strncmp(k, pre, pl))
            break; /* sorted: past the prefix */
        if (dl && last.len && last.len >= dl && !memcmp(last.data + last.len - dl, delim, dl) &&
            !strncmp(k, last.data, last.len))
            continue; /* inside the common prefix already returned */
        if (count == max_keys) {
            truncated = true;
            break;
        }
        const char *d = dl ? strstr(k + pl, delim) : NULL;
        lmr_buf_reset(&last);
        if (d) {
            lmr_buf_append(&last, k, (size_t)(d - k) + dl);
            lmr_buf_append_str(&body, "<CommonPrefixes><Prefix>");
            append_key(&body, last.data, url);
            lmr_buf_append_str(&body, "</Prefix></CommonPrefixes>");
        } else {
            char iso[32];
            iso_time(b->objs[i].mtime, iso);
            lmr_buf_append_str(&last, k);
            lmr_buf_append_str(&body, "<Contents><Key>");
            append_key(&body, k, url);
            lmr_buf_printf(&body,
                           "</Key><LastModified>%s</LastModified><ETag>&quot;%.*s&quot;</ETag><Size>%zu</Size>"
                           "<StorageClass>STANDARD</StorageClass></Contents>",
                           iso, (int)strlen(b->objs[i].etag) - 2, b->objs[i].etag + 1, b->objs[i].blob->len);
        }
        count++;
    }
    pthread_mutex_unlock(&S.mu);
    lmr_buf_append_str(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>");
    lmr_aws_xml_escape(&x, bname);
    lmr_buf_append_str(&x, "</Name><Prefix>");
    append_key(&x, pre, url);
    lmr_buf_append_str(&x, "</Prefix>");
    if (delim) {
        lmr_buf_append_str(&x, "<Delimiter>");
        append_key(&x, delim, url);
        lmr_buf_append_str(&x, "</Delimiter>");
    }
    if (url)
        lmr_buf_append_str(&x, "<EncodingType>url</EncodingType>");
    lmr_buf_printf(&x, "<KeyCount>%" PRIu64 "</KeyCount><MaxKeys>%" PRIu64 "</MaxKeys><IsTruncated>%s</IsTruncated>",
                   count, max_keys, truncated ? "true" : "false");
    if (token) {
        lmr_buf_append_str(&x, "<ContinuationToken>");
        lmr_aws_xml_escape(&x, token);
        lmr_buf_append_str(&x, "</ContinuationToken>");
    }
    if (truncated) {
        char hex[2 * MAX_KEY_BYTES + 8];
        hex_of((const unsigned char *)last.data, last.len, hex);
        lmr_buf_printf(&x, "<NextContinuationToken>%s</NextContinuationToken>", hex);
    }
    if (body.len)
        lmr_buf_append(&x, body.data, body.len);
    lmr_buf_append_str(&x, "</ListBucketResult>");
    lmr_buf_clean_up(&body);
    lmr_buf_clean_up(&last);
    res = x.len && x.data && strstr(x.data, "</ListBucketResult>")
              ? send_xml(c, 200, &x)
              : send_error(c, 500, "InternalError", resource, "the listing is larger than this server's response cap");
    lmr_buf_clean_up(&x);
out:
    free(prefix), free(delim), free(token), free(after), free(maxk), free(enc);
    return res;
}

struct delete_parse {
    char **keys;
    size_t n, cap;
    bool quiet, bad;
};

static enum lmr_result delete_xml(void *ud, const char *path, const char *text, size_t len)
{
    struct delete_parse *d = ud;
    if (!strcmp(path, "Delete/Quiet"))
        d->quiet = len == 4 && !strncasecmp(text, "true", 4);
    else if (!strcmp(path, "Delete/Object/Key")) {
        if (d->n == 1000 || len > MAX_KEY_BYTES) {
            d->bad = true;
            return LMR_ERR_TOO_LARGE;
        }
        if (d->n == d->cap) {
            size_t nc = d->cap ? d->cap * 2 : 64;
            char **nk = realloc(d->keys, nc * sizeof *nk);
            if (!nk)
                return LMR_ERR_NOMEM;
            d->keys = nk;
            d->cap = nc;
        }
        if (!(d->keys[d->n] = strndup(text, len)))
            return LMR_ERR_NOMEM;
        d->n++;
    }
    return LMR_OK;
}

static enum MHD_Result delete_objects(struct MHD_Connection *c, const char *bname, struct request *rq,
                                      const char *resource)
{
    const char *md5h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-MD5");
    if (md5h) {
        unsigned char md5[16];
        char b64[32];
        md5_of(rq->body.data ? rq->body.data : "", rq->body.len, md5);
        EVP_EncodeBlock((unsigned char *)b64, md5, 16);
        if (strcmp(b64, md5h))
            return send_error(c, 400, "BadDigest", resource,
                              "the Content-MD5 you specified did not match what we received");
    }
    struct delete_parse d = {0};
    struct lmr_err err = {0};
    enum lmr_result r = lmr_aws_xml_parse(rq->body.data ? rq->body.data : "", rq->body.len, delete_xml, &d, &err);
    enum MHD_Result res;
    if (r || d.n == 0) {
        res = send_error(c, 400, "MalformedXML", resource,
                         d.bad ? "more than 1,000 keys, or a key longer than 1,024 bytes"
                               : "the DeleteObjects body is not a <Delete> with 1 to 1,000 <Object><Key>s");
        goto out;
    }
    struct lmr_buf x;
    lmr_buf_init(&x, MAX_RESPONSE_XML_BYTES);
    lmr_buf_append_str(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    pthread_mutex_lock(&S.mu);
    struct bucket *b = bucket_find(bname);
    for (size_t i = 0; b && i < d.n; i++) {
        object_delete_locked(b, d.keys[i]);
        if (!d.quiet) {
            lmr_buf_append_str(&x, "<Deleted><Key>");
            lmr_aws_xml_escape(&x, d.keys[i]);
            lmr_buf_append_str(&x, "</Key></Deleted>");
        }
    }
    pthread_mutex_unlock(&S.mu);
    lmr_buf_append_str(&x, "</DeleteResult>");
    res = b ? send_xml(c, 200, &x)
            : send_error(c, 404, "NoSuchBucket", resource, "the bucket '%s' does not exist", bname);
    lmr_buf_clean_up(&x);
out:
    for (size_t i = 0; i < d.n; i++)
        free(d.keys[i]);
    free(d.keys);
    return res;
}

static enum MHD_Result bucket_op(struct MHD_Connection *c, const char *method, const char *bname, struct request *rq,
                                 const char *resource)
{
    bool has_delete = false, has_location = false, has_list2 = false;
    free(query_arg(c, "delete", &has_delete));
    free(query_arg(c, "location", &has_location));
    char *lt = query_arg(c, "list-type", &has_list2);
    has_list2 = lt && !strcmp(lt, "2");
    free(lt);
    if (!strcmp(method, "PUT")) {
        pthread_mutex_lock(&S.mu);
        bool ok = true;
        if (!bucket_find(bname)) {
            struct bucket *nb = realloc(S.buckets, (S.n_buckets + 1) * sizeof *nb);
            char *name = strdup(bname);
            ok = nb && name;
            if (nb)
                S.buckets = nb;
            if (ok)
                S.buckets[S.n_buckets++] = (struct bucket){.name = name};
            else
                free(name);
        }
        pthread_mutex_unlock(&S.mu);
        return ok ? send_empty(c, 200) : send_error(c, 500, "InternalError", resource, "out of memory");
    }
    pthread_mutex_lock(&S.mu);
    struct bucket *b = bucket_find(bname);
    size_t n = b ? b->n : 0;
    if (b && !strcmp(method, "DELETE") && n == 0) {
        free(b->name);
        free(b->objs);
        size_t i = (size_t)(b - S.buckets);
        memmove(&S.buckets[i], &S.buckets[i + 1], (S.n_buckets - i - 1) * sizeof *S.buckets);
        S.n_buckets--;
    }
    pthread_mutex_unlock(&S.mu);
    if (!b)
        return send_error(c, 404, "NoSuchBucket", resource, "the bucket '%s' does not exist", bname);
    if (!strcmp(method, "HEAD"))
        return send_empty(c, 200);
    if (!strcmp(method, "DELETE"))
        return n ? send_error(c, 409, "BucketNotEmpty", resource, "the bucket '%s' is not empty", bname)
                 : send_empty(c, 204);
    if (!strcmp(method, "POST") && has_delete)
        return delete_objects(c, bname, rq, resource);
    if (!strcmp(method, "GET") && has_location) {
        struct lmr_buf x;
        lmr_buf_init(&x, 4096);
        lmr_buf_printf(&x,
                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint "
                       "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">%s</LocationConstraint>",
                       strcmp(S.region, "us-east-1") ? S.region : "");
        return send_xml(c, 200, &x);
    }
    if (!strcmp(method, "GET") && has_list2)
        return list_objects_v2(c, bname, resource);
    return send_error(
        c, 501, "NotImplemented", resource,
        "lmr_s3server does not implement %s on a bucket with this query (ListObjectsV2 needs list-type=2)", method);
}

static enum MHD_Result list_buckets(struct MHD_Connection *c)
{
    struct lmr_buf x;
    lmr_buf_init(&x, MAX_RESPONSE_XML_BYTES);
    lmr_buf_append_str(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>lmr</ID></Owner><Buckets>");
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.n_buckets; i++) {
        lmr_buf_append_str(&x, "<Bucket><Name>");
        lmr_aws_xml_escape(&x, S.buckets[i].name);
        lmr_buf_append_str(&x, "</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket>");
    }
    pthread_mutex_unlock(&S.mu);
    lmr_buf_append_str(&x, "</Buckets></ListAllMyBucketsResult>");
    return send_xml(c, 200, &x);
}

/* ---- object operations ------------------------------------------------------------------------------------ */

/*
 * The write preconditions of PUT and CompleteMultipartUpload against the current object (or
 * NULL). Locked. Returns 0 to go ahead, else the HTTP status to answer (412 or 404).
 */
static unsigned precondition(struct MHD_Connection *c, const struct object *cur, const char **code)
{
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    const char *im = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Match");
    if (inm && cur) {
        *code = "PreconditionFailed";
        return 412;
    }
    if (im && !cur) {
        *code = "NoSuchKey";
        return 404;
    }
    if (im && strcmp(im, "*") && !etag_equal(im, cur->etag)) {
        *code = "PreconditionFailed";
        return 412;
    }
    return 0;
}

/* Store blob under bname/key if the preconditions hold; answers the request. Takes the blob's reference. */
static enum MHD_Result commit_object(struct MHD_Connection *c, const char *bname, const char *key, struct blob *blob,
                                     const char *etag, const char *resource)
{
    const char *code = NULL;
    unsigned status = 0;
    bool oom = false;
    pthread_mutex_lock(&S.mu);
    struct bucket *b = bucket_find(bname);
    if (b && !(status = precondition(c, object_find(b, key), &code)))
        oom = !object_put_locked(b, key, blob, etag);
    if (!b || status || oom)
        budget_give_locked(blob->len);
    pthread_mutex_unlock(&S.mu);
    if (!b || status || oom)
        blob_unref(blob);
    if (!b)
        return send_error(c, 404, "NoSuchBucket", resource, "the bucket '%s' does not exist", bname);
    if (status == 404)
        return send_error(c, 404, "NoSuchKey", resource, "If-Match was given but the key does not exist");
    if (status)
        return send_error(c, status, code, resource, "at least one of the pre-conditions you specified did not hold");
    if (oom)
        return send_error(c, 500, "InternalError", resource, "out of memory");
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
    if (resp)
        MHD_add_response_header(resp, "ETag", etag);
    return send_response(c, 200, resp);
}

/* Parse "bytes=A-B" / "A-" / "-N" against size. 1 = range set, 0 = whole object, -1 = unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (!h || strncmp(h, "bytes=", 6) || strchr(h, ','))
        return 0;
    const char *p = h + 6;
    char *e;
    if (*p == '-') {
        if (!isdigit((unsigned char)p[1]))
            return 0;
        uint64_t n = strtoull(p + 1, &e, 10);
        if (*e)
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    if (!isdigit((unsigned char)*p))
        return 0;
    uint64_t a = strtoull(p, &e, 10);
    if (*e != '-')
        return 0;
    uint64_t b = UINT64_MAX;
    if (e[1]) {
        if (!isdigit((unsigned char)e[1]))
            return 0;
        b = strtoull(e + 1, &e, 10);
        if (*e)
            return 0;
        if (b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *from = a;
    *to = b >= size ? size - 1 : b;
    return 1;
}

static enum MHD_Result get_object(struct MHD_Connection *c, const char *method, const char *bname, const char *key,
                                  const char *resource)
{
    pthread_mutex_lock(&S.mu);
    struct bucket *b = bucket_find(bname);
    struct object *o = b ? object_find(b, key) : NULL;
    struct blob *blob = o ? o->blob : NULL;
    char etag[48] = "";
    time_t mtime = 0;
    if (o) {
        atomic_fetch_add(&blob->refs, 1);
        memcpy(etag, o->etag, sizeof etag);
        mtime = o->mtime;
    }
    pthread_mutex_unlock(&S.mu);
    if (!b)
        return send_error(c, 404, "NoSuchBucket", resource, "the bucket '%s' does not exist", bname);
    if (!o)
        return send_error(c, 404, "NoSuchKey", resource, "the specified key does not exist");
    uint64_t from = 0, to = blob->len ? blob->len - 1 : 0;
    int rng = parse_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range"), blob->len, &from, &to);
    char lm[40], cr[96];
    http_time(mtime, lm);
    if (rng < 0) {
        size_t size = blob->len;
        blob_unref(blob);
        struct lmr_buf x;
        lmr_buf_init(&x, 4096);
        lmr_buf_printf(&x,
                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidRange</Code><Message>The "
                       "requested range is not satisfiable</Message><ActualObjectSize>%zu</ActualObjectSize>"
                       "</Error>",
                       size);
        size_t len = 0;
        char *data = lmr_buf_detach(&x, &len);
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        snprintf(cr, sizeof cr, "bytes */%zu", size);
        if (resp) {
            MHD_add_response_header(resp, "Content-Range", cr);
            MHD_add_response_header(resp, "Content-Type", "application/xml");
        }
        return send_response(c, 416, resp);
    }
    size_t len = blob->len ? (size_t)(to - from + 1) : 0;
    /* No copy: the response holds a reference. For HEAD, MHD sends the headers only (the size still
       sets Content-Length). */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, blob->data + from, blob_unref_cb, blob);
    if (strcmp(method, "HEAD"))
        atomic_fetch_add(&S.bytes_out, len);
    if (!resp) {
        blob_unref(blob);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "Last-Modified", lm);
    MHD_add_response_header(resp, "Accept-Ranges", "bytes");
    MHD_add_response_header(resp, "Content-Type", "binary/octet-stream");
    if (rng > 0) {
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%zu", from, to, blob->len);
        MHD_add_response_header(resp, "Content-Range", cr);
    }
    return send_response(c, rng > 0 ? 206 : 200, resp);
}

struct complete_parse {
    unsigned numbers[MAX_PARTS];
    char etags[MAX_PARTS][48];
    size_t n;
    bool bad;
};

static enum lmr_result complete_xml(void *ud, const char *path, const char *text, size_t len)
{
    struct complete_parse *p = ud;
    if (!strcmp(path, "CompleteMultipartUpload/Part/PartNumber")) {
        uint64_t v;
        char tmp[16];
        if (p->n == MAX_PARTS || len >= sizeof tmp)
            return (p->bad = true), LMR_ERR_TOO_LARGE;
        memcpy(tmp, text, len);
        tmp[len] = '\0';
        if (lmr_parse_u64(tmp, 1, MAX_PARTS, &v))
            return (p->bad = true), LMR_ERR_FORMAT;
        p->numbers[p->n] = (unsigned)v;
    } else if (!strcmp(path, "CompleteMultipartUpload/Part/ETag")) {
        if (p->n == MAX_PARTS || len >= sizeof p->etags[0])
            return (p->bad = true), LMR_ERR_TOO_LARGE;
        memcpy(p->etags[p->n], text, len);
        p->etags[p->n][len] = '\0';
    } else if (!strcmp(path, "CompleteMultipartUpload/Part")) {
        if (!p->numbers[p->n] || !p->etags[p->n][0])
            return (p->bad = true), LMR_ERR_FORMAT;
        p->n++;
    }
    return LMR_OK;
}

static enum MHD_Result complete_upload(struct MHD_Connection *c, const char *bname, const char *key, const char *id,
                                       struct request *rq, const char *resource)
{
    struct complete_parse *cp = calloc(1, sizeof *cp);
    if (!cp)
        return send_error(c, 500, "InternalError", resource, "out of memory");
    struct lmr_err err = {0};
    enum MHD_Result res;
    if (lmr_aws_xml_parse(rq->body.data ? rq->body.data : "", rq->body.len, complete_xml, cp, &err) || !cp->n) {
        free(cp);
        return send_error(c, 400, "MalformedXML", resource,
                          "the CompleteMultipartUpload body is not a list of <Part> with PartNumber and ETag");
    }
    /* Assemble under the lock: parts are immutable blobs, the copy is the object. */
    const char *code = NULL;
    unsigned status = 0;
    char msg[256] = "";
    struct blob *whole = NULL;
    char etag[48] = "";
    pthread_mutex_lock(&S.mu);
    struct upload *u = upload_find(id);
    struct bucket *b = bucket_find(bname);
    if (!u || strcmp(u->bucket, bname) || strcmp(u->key, key)) {
        status = 404, code = "NoSuchUpload";
        snprintf(msg, sizeof msg, "the upload '%s' does not exist (completed or aborted)", id);
    } else if (!b) {
        status = 404, code = "NoSuchBucket";
        snprintf(msg, sizeof msg, "the bucket '%s' does not exist", bname);
    }
    uint64_t total = 0;
    struct part **use = status ? NULL : calloc(cp->n, sizeof *use);
    if (!status && !use)
        status = 500, code = "InternalError", snprintf(msg, sizeof msg, "out of memory");
    for (size_t i = 0; !status && i < cp->n; i++) {
        struct part *p = NULL;
        for (size_t j = 0; j < u->n; j++)
            if (u->parts[j].number == cp->numbers[i])
                p = &u->parts[j];
        char want[48];
        if (p)
            etag_of_md5(p->md5, want);
        if (!p || !etag_equal(want, cp->etags[i])) {
            status = 400, code = "InvalidPart";
            snprintf(msg, sizeof msg, "part %u was not uploaded or its ETag is not %s", cp->numbers[i], cp->etags[i]);
        } else if (i && cp->numbers[i] <= cp->numbers[i - 1]) {
            status = 400, code = "InvalidPartOrder";
            snprintf(msg, sizeof msg, "the list of parts was not in ascending order");
        } else if (i + 1 < cp->n && p->blob->len < MIN_PART_BYTES) {
            status = 400, code = "EntityTooSmall";
            snprintf(msg, sizeof msg, "part %u is %zu bytes; every part but the last must be at least 5 MiB", p->number,
                     p->blob->len);
        } else {
            use[i] = p;
            total += p->blob->len;
        }
    }
    if (!status && !(status = precondition(c, object_find(b, key), &code))) {
        if (!(whole = malloc(sizeof *whole + (total ? total : 1)))) {
            status = 500, code = "InternalError", snprintf(msg, sizeof msg, "out of memory");
        } else {
            atomic_init(&whole->refs, 1);
            whole->len = total;
            EVP_MD_CTX *ctx = EVP_MD_CTX_new();
            EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
            size_t off = 0;
            for (size_t i = 0; i < cp->n; i++) {
                memcpy(whole->data + off, use[i]->blob->data, use[i]->blob->len);
                off += use[i]->blob->len;
                EVP_DigestUpdate(ctx, use[i]->md5, 16);
            }
            unsigned char md5[16];
            unsigned mn = 16;
            EVP_DigestFinal_ex(ctx, md5, &mn);
            EVP_MD_CTX_free(ctx);
            char hex[33];
            hex_of(md5, 16, hex);
            snprintf(etag, sizeof etag, "\"%s-%zu\"", hex, cp->n);
            /* the parts' bytes move to the object: the budget counts them once */
            S.held_bytes += total;
            upload_remove_locked(u);
            if (!object_put_locked(b, key, whole, etag)) {
                budget_give_locked(total);
                blob_unref(whole);
                status = 500, code = "InternalError", snprintf(msg, sizeof msg, "out of memory");
            }
        }
    }
    pthread_mutex_unlock(&S.mu);
    free(use);
    free(cp);
    if (status == 412)
        return send_error(c, 412, code, resource, "at least one of the pre-conditions you specified did not hold");
    if (status == 404 && !msg[0])
        return send_error(c, 404, "NoSuchKey", resource, "If-Match was given but the key does not exist");
    if (status)
        return send_error(c, status, code, resource, "%s", msg);
    struct lmr_buf x;
    lmr_buf_init(&x, 64 * 1024);
    lmr_buf_append_str(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>");
    lmr_aws_xml_escape(&x, bname);
    lmr_buf_append_str(&x, "</Bucket><Key>");
    lmr_aws_xml_escape(&x, key);
    lmr_buf_append_str(&x, "</Key><ETag>");
    lmr_aws_xml_escape(&x, etag);
    lmr_buf_append_str(&x, "</ETag></CompleteMultipartUploadResult>");
    res = send_xml(c, 200, &x);
    return res;
}

static enum MHD_Result object_op(struct MHD_Connection *c, const char *method, const char *bname, const char *key,
                                 struct request *rq, const char *resource)
{
    bool has_uploads = false, has_upload_id = false, has_part = false;
    free(query_arg(c, "uploads", &has_uploads));
    char *id = query_arg(c, "uploadId", &has_upload_id);
    char *pn = query_arg(c, "partNumber", &has_part);
    enum MHD_Result res;
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
        res = get_object(c, method, bname, key, resource);
    } else if (!strcmp(method, "PUT") && has_part && has_upload_id) {
        uint64_t number = 0;
        if (lmr_parse_u64(pn, 1, MAX_PARTS, &number)) {
            res = send_error(c, 400, "InvalidArgument", resource, "partNumber must be 1 to 10,000, not '%s'", pn);
            goto out;
        }
        unsigned char md5[16];
        md5_of(rq->body.data ? rq->body.data : "", rq->body.len, md5);
        struct blob *blob = blob_new(rq->body.data, rq->body.len);
        if (!blob) {
            res = send_error(c, 500, "InternalError", resource, "out of memory");
            goto out;
        }
        bool found = false, oom = false;
        pthread_mutex_lock(&S.mu);
        struct upload *u = upload_find(id);
        if (u && !strcmp(u->bucket, bname) && !strcmp(u->key, key)) {
            found = true;
            struct part *p = NULL;
            for (size_t j = 0; j < u->n; j++)
                if (u->parts[j].number == number)
                    p = &u->parts[j];
            if (!p) {
                struct part *np = realloc(u->parts, (u->n + 1) * sizeof *np);
                if (np) {
                    u->parts = np;
                    p = &u->parts[u->n++];
                    p->blob = NULL;
                } else
                    oom = true;
            }
            if (p) {
                if (p->blob) {
                    budget_give_locked(p->blob->len);
                    blob_unref(p->blob);
                }
                p->number = (unsigned)number;
                p->blob = blob;
                memcpy(p->md5, md5, 16);
                S.held_bytes += blob->len; /* the body's reservation is released below */
            }
        }
        pthread_mutex_unlock(&S.mu);
        if (!found || oom) {
            blob_unref(blob);
            res = oom ? send_error(c, 500, "InternalError", resource, "out of memory")
                      : send_error(c, 404, "NoSuchUpload", resource, "the upload '%s' does not exist", id);
            goto out;
        }
        char etag[48];
        etag_of_md5(md5, etag);
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, "ETag", etag);
        res = send_response(c, 200, resp);
    } else if (!strcmp(method, "PUT")) {
        const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
        if (inm && strcmp(inm, "*")) {
            res = send_error(c, 501, "NotImplemented", resource, "If-None-Match on PUT takes only '*'");
            goto out;
        }
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-amz-copy-source")) {
            res = send_error(c, 501, "NotImplemented", resource, "lmr_s3server does not implement CopyObject");
            goto out;
        }
        unsigned char md5[16];
        char etag[48];
        md5_of(rq->body.data ? rq->body.data : "", rq->body.len, md5);
        etag_of_md5(md5, etag);
        struct blob *blob = blob_new(rq->body.data, rq->body.len);
        if (!blob) {
            res = send_error(c, 500, "InternalError", resource, "out of memory");
            goto out;
        }
        /* the object keeps the body's bytes: take them into the budget as the object's */
        pthread_mutex_lock(&S.mu);
        S.held_bytes += blob->len;
        pthread_mutex_unlock(&S.mu);
        res = commit_object(c, bname, key, blob, etag, resource);
    } else if (!strcmp(method, "POST") && has_uploads) {
        pthread_mutex_lock(&S.mu);
        bool ok = bucket_find(bname) != NULL;
        struct upload *nu = ok ? realloc(S.uploads, (S.n_uploads + 1) * sizeof *nu) : NULL;
        char idv[33];
        lmr_random_hex(idv, 16);
        if (nu) {
            S.uploads = nu;
            struct upload *u = &S.uploads[S.n_uploads];
            *u = (struct upload){0};
            memcpy(u->id, idv, sizeof idv);
            u->bucket = strdup(bname);
            u->key = strdup(key);
            if (u->bucket && u->key)
                S.n_uploads++;
            else
                free(u->bucket), free(u->key), nu = NULL;
        }
        pthread_mutex_unlock(&S.mu);
        if (!ok) {
            res = send_error(c, 404, "NoSuchBucket", resource, "the bucket '%s' does not exist", bname);
            goto out;
        }
        if (!nu) {
            res = send_error(c, 500, "InternalError", resource, "out of memory");
            goto out;
        }
        struct lmr_buf x;
        lmr_buf_init(&x, 64 * 1024);
        lmr_buf_append_str(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
                               "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>");
        lmr_aws_xml_escape(&x, bname);
        lmr_buf_append_str(&x, "</Bucket><Key>");
        lmr_aws_xml_escape(&x, key);
        lmr_buf_printf(&x, "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>", idv);
        res = send_xml(c, 200, &x);
    } else if (!strcmp(method, "POST") && has_upload_id) {
        res = complete_upload(c, bname, key, id, rq, resource);
    } else if (!strcmp(method, "DELETE") && has_upload_id) {
        pthread_mutex_lock(&S.mu);
        struct upload *u = upload_find(id);
        bool found = u && !strcmp(u->bucket, bname) && !strcmp(u->key, key);
        if (found)
            upload_remove_locked(u);
        pthread_mutex_unlock(&S.mu);
        res = found ? send_empty(c, 204)
                    : send_error(c, 404, "NoSuchUpload", resource, "the upload '%s' does not exist", id);
    } else if (!strcmp(method, "DELETE")) {
        pthread_mutex_lock(&S.mu);
        struct bucket *b = bucket_find(bname);
        if (b)
            object_delete_locked(b, key);
        pthread_mutex_unlock(&S.mu);
        res = b ? send_empty(c, 204)
                : send_error(c, 404, "NoSuchBucket", resource, "the bucket '%s' does not exist", bname);
    } else {
        res = send_error(c, 501, "NotImplemented", resource, "lmr_s3server does not implement %s on an object here",
                         method);
    }
out:
    free(id);
    free(pn);
    return res;
}

static enum MHD_Result stats(struct MHD_Connection *c)
{
    struct lmr_buf x;
    lmr_buf_init(&x, 4096);
    pthread_mutex_lock(&S.mu);
    uint64_t held = S.held_bytes;
    pthread_mutex_unlock(&S.mu);
    lmr_buf_printf(&x,
                   "{\"requests\":%" PRIuFAST64 ",\"bytes_in\":%" PRIuFAST64 ",\"bytes_out\":%" PRIuFAST64
                   ",\"denied\":%" PRIuFAST64 ",\"precondition_failed\":%" PRIuFAST64 ",\"held_bytes\":%" PRIu64 "}\n",
                   atomic_load(&S.requests), atomic_load(&S.bytes_in), atomic_load(&S.bytes_out),
                   atomic_load(&S.denied), atomic_load(&S.precondition_failed), held);
    size_t len = 0;
    char *data = lmr_buf_detach(&x, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (resp)
        MHD_add_response_header(resp, "Content-Type", "application/json");
    return send_response(c, 200, resp);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct request *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        uint64_t want = cl ? strtoull(cl, NULL, 10) : 0;
        if (want > MAX_OBJECT_BYTES)
            rq->too_large = true;
        else if (want && !budget_take(want))
            rq->over_budget = true;
        else
            rq->reserved = want;
        lmr_buf_init(&rq->body, rq->too_large || rq->over_budget ? 0 : (size_t)MAX_OBJECT_BYTES);
        if (rq->reserved)
            lmr_buf_reserve(&rq->body, (size_t)rq->reserved);
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        atomic_fetch_add(&S.bytes_in, *upload_data_size);
        if (!rq->too_large && !rq->over_budget) {
            size_t extra =
                rq->body.len + *upload_data_size > rq->reserved ? rq->body.len + *upload_data_size - rq->reserved : 0;
            if (extra && !budget_take(extra))
                rq->over_budget = true;
            else {
                rq->reserved += extra;
                if (lmr_buf_append(&rq->body, upload_data, *upload_data_size))
                    rq->too_large = true;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&S.requests, 1);
    if (S.log)
        fprintf(stderr, "lmr_s3server: %s %s\n", method, url);
    if (!strcmp(url, STATS_PATH))
        return stats(c);
    /* the raw query, rebuilt as sent, for the signature */
    struct lmr_buf q;
    lmr_buf_init(&q, 64 * 1024);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_query, &q);
    rq->query = lmr_buf_detach(&q, NULL);
    /* path-style: /bucket[/key] */
    const char *p = url[0] == '/' ? url + 1 : url;
    size_t bl = strcspn(p, "/");
    char bname[256];
    if (bl >= sizeof bname) {
        return send_error(c, 400, "InvalidBucketName", url, "the bucket name is longer than 63 bytes");
    }
    memcpy(bname, p, bl);
    bname[bl] = '\0';
    struct lmr_buf kb;
    lmr_buf_init(&kb, 3 * MAX_KEY_BYTES + 1);
    const char *kraw = p[bl] == '/' ? p + bl + 1 : "";
    enum MHD_Result res;
    if (lmr_aws_uri_decode(&kb, kraw, strlen(kraw)) || kb.len > MAX_KEY_BYTES) {
        res = send_error(c, 400, "KeyTooLongError", url, "the key is longer than 1,024 bytes or badly escaped");
        goto out;
    }
    const char *key = kb.data ? kb.data : "";
    char resource[MAX_KEY_BYTES + 300];
    snprintf(resource, sizeof resource, "/%s%s%s", bname, *key ? "/" : "", key);
    if (rq->too_large) {
        res = send_error(c, 400, "EntityTooLarge", resource, "the body is larger than 5 GiB");
        goto out;
    }
    if (rq->over_budget) {
        char lim[32];
        res = send_error(c, 507, "InsufficientStorage", resource,
                         "lmr_s3server holds at most %s (--max-bytes) in objects, parts and bodies; this write "
                         "would pass it: restart it with a larger --max-bytes or delete objects",
                         lmr_format_bytes((double)S.max_bytes, lim, sizeof lim));
        goto out;
    }
    if (!check_signature(c, method, url, rq, resource, &res))
        goto out;
    if (!bname[0])
        res = !strcmp(method, "GET") ? list_buckets(c)
                                     : send_error(c, 501, "NotImplemented", "/", "only GET (ListBuckets) on /");
    else if (!*key)
        res = bucket_op(c, method, bname, rq, resource);
    else
        res = object_op(c, method, bname, key, rq, resource);
out:
    lmr_buf_clean_up(&kb);
    return res;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct request *rq = *con_cls;
    if (!rq)
        return;
    pthread_mutex_lock(&S.mu);
    budget_give_locked(rq->reserved);
    pthread_mutex_unlock(&S.mu);
    lmr_buf_clean_up(&rq->body);
    free(rq->query);
    free(rq);
    *con_cls = NULL;
}

/* ---- main ------------------------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: lmr_s3server [--port N] [--port-file F] [--bucket NAME]... [--region R]\n"
                    "                    [--access-key K --secret-key S] [--max-bytes SIZE] [--threads N] [--log]\n");
}

int main(int argc, char **argv)
{
    uint64_t port = 0, threads = 2;
    const char *port_file = NULL, *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *region = getenv("AWS_REGION") ? getenv("AWS_REGION") : getenv("AWS_DEFAULT_REGION");
    const char *buckets[64];
    size_t nb = 0;
    S.max_bytes = 4ull << 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "--log"))
            S.log = true;
        else if (!v)
            ok = false;
        else if (!strcmp(a, "--port"))
            ok = !lmr_parse_u64(v, 0, 65535, &port), i++;
        else if (!strcmp(a, "--port-file"))
            port_file = v, i++;
        else if (!strcmp(a, "--bucket"))
            ok = nb < 64, buckets[nb < 64 ? nb++ : 0] = v, i++;
        else if (!strcmp(a, "--region"))
            region = v, i++;
        else if (!strcmp(a, "--access-key"))
            ak = v, i++;
        else if (!strcmp(a, "--secret-key"))
            sk = v, i++;
        else if (!strcmp(a, "--max-bytes"))
            ok = !lmr_parse_size(v, &S.max_bytes), i++;
        else if (!strcmp(a, "--threads"))
            ok = !lmr_parse_u64(v, 1, 64, &threads), i++;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "lmr_s3server: bad or unknown argument '%s'%s%s\n", a, v ? " " : "", v ? v : "");
            usage();
            return 2;
        }
    }
    snprintf(S.creds.access_key_id, sizeof S.creds.access_key_id, "%s", ak && *ak ? ak : "testing");
    snprintf(S.creds.secret_access_key, sizeof S.creds.secret_access_key, "%s", sk && *sk ? sk : "testing");
    snprintf(S.region, sizeof S.region, "%s", region && *region ? region : "us-east-1");
    pthread_mutex_init(&S.mu, NULL);
    for (size_t i = 0; i < nb; i++) {
        S.buckets = realloc(S.buckets, (S.n_buckets + 1) * sizeof *S.buckets);
        if (!S.buckets)
            return 1;
        S.buckets[S.n_buckets++] = (struct bucket){.name = strdup(buckets[i])};
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the daemon's threads inherit the mask; main waits below */
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, handle, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                         MHD_OPTION_CONNECTION_LIMIT, 4000u, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
                         MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "lmr_s3server: cannot listen on 127.0.0.1:%" PRIu64 " (%s); pick another --port\n", port,
                strerror(errno));
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : (unsigned)port;
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", bound) < 0 || fclose(f) || rename(tmp, port_file)) {
            fprintf(stderr, "lmr_s3server: cannot write the port to %s: %s\n", port_file, strerror(errno));
            MHD_stop_daemon(d);
            return 1;
        }
    }
    fprintf(stderr, "lmr_s3server: listening on http://127.0.0.1:%u (region %s, %" PRIu64 " threads)\n", bound,
            S.region, threads);
    int sig = 0;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
