/*
 * SigV4 signing. The steps follow the AWS documentation: canonical request -> string to sign
 * -> signing key (an HMAC chain over date, region, service) -> signature. Everything that
 * the request's text can grow lives in capped buffers.
 */
#include "aws/sigv4.h"
#include "util/misc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define SIGV4_TEXT_MAX_BYTES (1u << 20) /* canonical request, query: far above any real request */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const char hexdig[] = "0123456789abcdef";
static const char HEXDIG[] = "0123456789ABCDEF";

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void lmr_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    to_hex(md, sizeof md, out);
}

static void hmac256(const void *key, size_t key_len, const void *data, size_t len, unsigned char out[32])
{
    unsigned int out_len = 32;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len);
}

void lmr_aws_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

enum lmr_result lmr_aws_uri_encode(struct lmr_buf *out, const char *s, size_t len, bool keep_slash)
{
    enum lmr_result r = lmr_buf_reserve(out, len);
    for (size_t i = 0; !r && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            r = lmr_buf_append(out, &s[i], 1);
        } else {
            char esc[3] = {'%', HEXDIG[c >> 4], HEXDIG[c & 15]};
            r = lmr_buf_append(out, esc, 3);
        }
    }
    return r;
}

enum lmr_result lmr_aws_uri_decode(struct lmr_buf *out, const char *s, size_t len)
{
    enum lmr_result r = lmr_buf_reserve(out, len);
    for (size_t i = 0; !r && i < len; i++) {
        if (s[i] == '%' && i + 2 < len && lmr_hex_digit_value(s[i + 1]) >= 0 && lmr_hex_digit_value(s[i + 2]) >= 0) {
            char c = (char)(lmr_hex_digit_value(s[i + 1]) * 16 + lmr_hex_digit_value(s[i + 2]));
            r = lmr_buf_append(out, &c, 1);
            i += 2;
        } else {
            r = lmr_buf_append(out, &s[i], 1);
        }
    }
    return r;
}

/* ---- canonical URI ------------------------------------------------------------------------------------------ */

/* Remove "." and ".." segments and empty segments; keep a trailing '/'. */
static enum lmr_result normalize_path(const char *path, struct lmr_buf *out)
{
    size_t n = strlen(path);
    const char **segs = calloc(n + 1, sizeof *segs);
    size_t *lens = calloc(n + 1, sizeof *lens);
    size_t depth = 0;
    enum lmr_result r = LMR_OK;
    if (!segs || !lens) {
        free(segs);
        free(lens);
        return LMR_ERR_NOMEM;
    }
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            if (depth)
                depth--;
            continue;
        }
        segs[depth] = seg;
        lens[depth] = len;
        depth++;
    }
    bool trailing = n > 0 && path[n - 1] == '/';
    r = lmr_buf_append(out, "/", 1);
    for (size_t i = 0; !r && i < depth; i++) {
        r = lmr_buf_append(out, segs[i], lens[i]);
        if (!r && (i + 1 < depth || trailing))
            r = lmr_buf_append(out, "/", 1);
    }
    free(segs);
    free(lens);
    return r;
}

static enum lmr_result canonical_uri(const char *path, unsigned flags, struct lmr_buf *out)
{
    if (!*path)
        path = "/";
    struct lmr_buf tmp;
    lmr_buf_init(&tmp, SIGV4_TEXT_MAX_BYTES);
    enum lmr_result r;
    if (flags & LMR_SIGV4_S3) {
        /* Encoded once: decode what was sent and encode it canonically. */
        r = lmr_aws_uri_decode(&tmp, path, strlen(path));
        if (!r)
            r = lmr_aws_uri_encode(out, tmp.data, tmp.len, true);
    } else if (flags & LMR_SIGV4_NO_NORMALIZE) {
        r = lmr_aws_uri_encode(out, path, strlen(path), true);
    } else {
        r = normalize_path(path, &tmp);
        if (!r)
            r = lmr_aws_uri_encode(out, tmp.data, tmp.len, true);
    }
    lmr_buf_clean_up(&tmp);
    return r;
}

/* ---- canonical query ---------------------------------------------------------------------------------------- */

struct qparam {
    char *key, *value; /* canonically encoded */
};

static int cmp_qparam(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

static char *recode(const char *s, size_t len, enum lmr_result *r)
{
    struct lmr_buf dec, enc;
    lmr_buf_init(&dec, SIGV4_TEXT_MAX_BYTES);
    lmr_buf_init(&enc, SIGV4_TEXT_MAX_BYTES);
    *r = lmr_aws_uri_decode(&dec, s, len);
    if (!*r)
        *r = lmr_aws_uri_encode(&enc, dec.data ? dec.data : "", dec.len, false);
    if (!*r && !enc.data)
        *r = lmr_buf_append(&enc, "", 0);
    lmr_buf_clean_up(&dec);
    if (*r) {
        lmr_buf_clean_up(&enc);
        return NULL;
    }
    return lmr_buf_detach(&enc, NULL);
}

/* Canonical form of query (as sent): decode and re-encode each key and value, sort. */
static enum lmr_result canonical_query(const char *query, struct lmr_buf *out)
{
    if (!query || !*query)
        return LMR_OK;
    size_t max = 1;
    for (const char *p = query; *p; p++)
        max += *p == '&';
    struct qparam *ps = calloc(max, sizeof *ps);
    if (!ps)
        return LMR_ERR_NOMEM;
    size_t n = 0;
    enum lmr_result r = LMR_OK;
    const char *p = query;
    while (!r && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            ps[n].key = recode(p, klen, &r);
            if (!r)
                ps[n].value = eq ? recode(eq + 1, len - klen - 1, &r) : strdup("");
            if (!r && !ps[n].value)
                r = LMR_ERR_NOMEM;
            n++;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    if (!r) {
        qsort(ps, n, sizeof *ps, cmp_qparam);
        for (size_t i = 0; !r && i < n; i++)
            r = lmr_buf_printf(out, "%s%s=%s", i ? "&" : "", ps[i].key, ps[i].value);
    }
    for (size_t i = 0; i < n; i++) {
        free(ps[i].key);
        free(ps[i].value);
    }
    free(ps);
    return r;
}

/* ---- canonical headers -------------------------------------------------------------------------------------- */

struct hdr {
    char *name;  /* lower-case */
    char *value; /* trimmed, inner whitespace runs collapsed to one space */
    size_t order;
};

static int cmp_hdr(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order < y->order ? -1 : x->order > y->order);
}

static bool skip_header(const char *lower)
{
    static const char *const skipped[] = {"authorization",   "user-agent", "expect",
                                          "x-amzn-trace-id", "connection", "transfer-encoding"};
    for (size_t i = 0; i < sizeof skipped / sizeof *skipped; i++)
        if (!strcmp(lower, skipped[i]))
            return true;
    return false;
}

static char *collapse_ws(const char *v)
{
    size_t n = strlen(v);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    while (*v && isspace((unsigned char)*v))
        v++;
    bool space = false;
    for (; *v; v++) {
        if (isspace((unsigned char)*v)) {
            space = true;
            continue;
        }
        if (space && o != out)
            *o++ = ' ';
        space = false;
        *o++ = *v;
    }
    *o = '\0';
    return out;
}

/* Builds "name:value\n" lines and the signed-headers list from the request's and the added headers. */
static enum lmr_result canonical_headers(const struct lmr_aws_header *a, size_t na, const struct lmr_aws_header *b,
                                         size_t nb, struct lmr_buf *lines, struct lmr_buf *signed_list,
                                         struct lmr_err *err)
{
    struct hdr *hs = calloc(na + nb + 1, sizeof *hs);
    if (!hs)
        return LMR_ERR_NOMEM;
    size_t n = 0;
    enum lmr_result r = LMR_OK;
    bool have_host = false;
    for (size_t i = 0; !r && i < na + nb; i++) {
        const struct lmr_aws_header *h = i < na ? &a[i] : &b[i - na];
        char *name = strdup(h->name);
        if (!name) {
            r = LMR_ERR_NOMEM;
            break;
        }
        for (char *c = name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (skip_header(name)) {
            free(name);
            continue;
        }
        have_host |= !strcmp(name, "host");
        hs[n].name = name;
        hs[n].order = i;
        if (!(hs[n].value = collapse_ws(h->value ? h->value : "")))
            r = LMR_ERR_NOMEM;
        n++;
    }
    if (!r && !have_host)
        r = lmr_fail(err, LMR_ERR_INVALID, "cannot sign a request without a Host header");
    if (!r) {
        qsort(hs, n, sizeof *hs, cmp_hdr);
        for (size_t i = 0; !r && i < n; i++) {
            bool same_as_prev = i > 0 && !strcmp(hs[i].name, hs[i - 1].name);
            if (same_as_prev) {
                r = lmr_buf_printf(lines, ",%s", hs[i].value);
                continue;
            }
            if (i > 0)
                r = lmr_buf_append(lines, "\n", 1);
            if (!r)
                r = lmr_buf_printf(lines, "%s:%s", hs[i].name, hs[i].value);
            if (!r)
                r = lmr_buf_printf(signed_list, "%s%s", signed_list->len ? ";" : "", hs[i].name);
        }
        if (!r && n)
            r = lmr_buf_append(lines, "\n", 1);
    }
    for (size_t i = 0; i < n; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    free(hs);
    return r;
}

/* ---- signing ------------------------------------------------------------------------------------------------ */

void lmr_sigv4_signed_init(struct lmr_sigv4_signed *s)
{
    memset(s, 0, sizeof *s);
    lmr_buf_init(&s->canonical_request, SIGV4_TEXT_MAX_BYTES);
    lmr_buf_init(&s->string_to_sign, SIGV4_TEXT_MAX_BYTES);
    lmr_buf_init(&s->query_params, SIGV4_TEXT_MAX_BYTES);
}

void lmr_sigv4_signed_clean_up(struct lmr_sigv4_signed *s)
{
    if (!s)
        return;
    lmr_buf_clean_up(&s->canonical_request);
    lmr_buf_clean_up(&s->string_to_sign);
    lmr_buf_clean_up(&s->query_params);
    for (size_t i = 0; i < s->n_added; i++)
        free(s->added[i].value);
    s->n_added = 0;
}

static enum lmr_result add_header(struct lmr_sigv4_signed *s, const char *name, const char *value)
{
    if (s->n_added == LMR_SIGV4_MAX_ADDED_HEADERS)
        return LMR_ERR_INTERNAL;
    char *v = strdup(value);
    if (!v)
        return LMR_ERR_NOMEM;
    s->added[s->n_added].name = name;
    s->added[s->n_added].value = v;
    s->n_added++;
    return LMR_OK;
}

static void signing_key(const struct lmr_sigv4_params *p, const char *date8, unsigned char key[32])
{
    char k0[160];
    int n = snprintf(k0, sizeof k0, "AWS4%s", p->creds->secret_access_key);
    unsigned char a[32], b[32];
    hmac256(k0, (size_t)n, date8, strlen(date8), a);
    hmac256(a, 32, p->region, strlen(p->region), b);
    hmac256(b, 32, p->service, strlen(p->service), a);
    hmac256(a, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
}

enum lmr_result lmr_sigv4_sign(const struct lmr_sigv4_params *p, const struct lmr_sigv4_request *req,
                               struct lmr_sigv4_signed *out, struct lmr_err *err)
{
    if (!p || !p->creds || !p->region || !*p->region || !p->service || !req || !req->method || !req->path)
        return lmr_fail(err, LMR_ERR_INVALID, "SigV4: missing region, service, method or path");
    if (!*p->creds->access_key_id || !*p->creds->secret_access_key)
        return lmr_fail(err, LMR_ERR_AUTH, "SigV4: no AWS credentials to sign with");
    const bool query_mode = p->flags & LMR_SIGV4_QUERY;
    const bool token = p->creds->session_token[0] != '\0';
    const bool sign_token = token && !(p->flags & LMR_SIGV4_OMIT_SESSION_TOKEN);
    const char *payload = req->payload_sha256_hex ? req->payload_sha256_hex : EMPTY_SHA256;
    char date8[9], scope[256];
    lmr_aws_amz_date(p->signing_time, out->amz_date);
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';
    snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date8, p->region, p->service);

    struct lmr_buf uri, query, lines, signed_list, extra_query;
    lmr_buf_init(&uri, SIGV4_TEXT_MAX_BYTES);
    lmr_buf_init(&query, SIGV4_TEXT_MAX_BYTES);
    lmr_buf_init(&lines, SIGV4_TEXT_MAX_BYTES);
    lmr_buf_init(&signed_list, SIGV4_TEXT_MAX_BYTES);
    lmr_buf_init(&extra_query, SIGV4_TEXT_MAX_BYTES);
    enum lmr_result r = canonical_uri(req->path, p->flags, &uri);

    struct lmr_aws_header extra[3];
    size_t n_extra = 0;
    if (!r && !query_mode) {
        /* Headers the signer adds: the token goes first, as the reference suite expects. */
        if (token)
            r = add_header(out, "X-Amz-Security-Token", p->creds->session_token);
        if (!r)
            r = add_header(out, "X-Amz-Date", out->amz_date);
        if (!r && (p->flags & LMR_SIGV4_CONTENT_SHA256_HEADER))
            r = add_header(out, "x-amz-content-sha256", payload);
        for (size_t i = 0; !r && i < out->n_added; i++) {
            if (!sign_token && !strcmp(out->added[i].name, "X-Amz-Security-Token"))
                continue;
            extra[n_extra].name = out->added[i].name;
            extra[n_extra++].value = out->added[i].value;
        }
    }
    if (!r)
        r = canonical_headers(req->headers, req->n_headers, extra, n_extra, &lines, &signed_list, err);
    if (!r && query_mode) {
        if (p->expires_s < 1 || p->expires_s > 604800)
            r = lmr_fail(err, LMR_ERR_INVALID, "SigV4: presigned URLs expire after 1 to 604800 seconds");
        char cred[512];
        snprintf(cred, sizeof cred, "%s/%s", p->creds->access_key_id, scope);
        if (!r)
            r = lmr_buf_append_str(&extra_query, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
        if (!r)
            r = lmr_aws_uri_encode(&extra_query, cred, strlen(cred), false);
        if (!r)
            r = lmr_buf_printf(&extra_query, "&X-Amz-Date=%s&X-Amz-SignedHeaders=", out->amz_date);
        if (!r)
            r = lmr_aws_uri_encode(&extra_query, signed_list.data, signed_list.len, false);
        if (!r)
            r = lmr_buf_printf(&extra_query, "&X-Amz-Expires=%u", (unsigned)p->expires_s);
        if (!r && sign_token) {
            r = lmr_buf_append_str(&extra_query, "&X-Amz-Security-Token=");
            if (!r)
                r = lmr_aws_uri_encode(&extra_query, p->creds->session_token, strlen(p->creds->session_token), false);
        }
        /* Canonicalise the request's own query together with the X-Amz-* parameters. */
        struct lmr_buf all;
        lmr_buf_init(&all, SIGV4_TEXT_MAX_BYTES);
        if (!r && req->query && *req->query)
            r = lmr_buf_printf(&all, "%s&", req->query);
        if (!r)
            r = lmr_buf_append(&all, extra_query.data, extra_query.len);
        if (!r)
            r = canonical_query(all.data, &query);
        lmr_buf_clean_up(&all);
    } else if (!r) {
        r = canonical_query(req->query, &query);
    }
    if (!r)
        r = lmr_buf_printf(&out->canonical_request, "%s\n%s\n%s\n%s\n%s\n%s", req->method, uri.data ? uri.data : "",
                           query.data ? query.data : "", lines.data ? lines.data : "",
                           signed_list.data ? signed_list.data : "", payload);
    char cr_hash[65];
    if (!r) {
        lmr_sha256_hex(out->canonical_request.data, out->canonical_request.len, cr_hash);
        r = lmr_buf_printf(&out->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", out->amz_date, scope, cr_hash);
    }
    if (!r) {
        unsigned char key[32], sig[32];
        signing_key(p, date8, key);
        hmac256(key, 32, out->string_to_sign.data, out->string_to_sign.len, sig);
        OPENSSL_cleanse(key, sizeof key);
        to_hex(sig, 32, out->signature);
    }
    if (!r && query_mode) {
        /* What to append to the query, in the order the reference suite shows. */
        struct lmr_buf *q = &out->query_params;
        char cred[512];
        snprintf(cred, sizeof cred, "%s/%s", p->creds->access_key_id, scope);
        lmr_buf_reset(q);
        r = lmr_buf_append_str(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=");
        if (!r)
            r = lmr_aws_uri_encode(q, cred, strlen(cred), false);
        if (!r)
            r = lmr_buf_printf(q, "&X-Amz-Date=%s&X-Amz-SignedHeaders=", out->amz_date);
        if (!r)
            r = lmr_aws_uri_encode(q, signed_list.data, signed_list.len, false);
        if (!r)
            r = lmr_buf_printf(q, "&X-Amz-Expires=%u", (unsigned)p->expires_s);
        if (!r && token) {
            r = lmr_buf_append_str(q, "&X-Amz-Security-Token=");
            if (!r)
                r = lmr_aws_uri_encode(q, p->creds->session_token, strlen(p->creds->session_token), false);
        }
        if (!r)
            r = lmr_buf_printf(q, "&X-Amz-Signature=%s", out->signature);
    } else if (!r) {
        struct lmr_buf auth;
        lmr_buf_init(&auth, SIGV4_TEXT_MAX_BYTES);
        r = lmr_buf_printf(&auth, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                           p->creds->access_key_id, scope, signed_list.data ? signed_list.data : "", out->signature);
        if (!r)
            r = add_header(out, "Authorization", auth.data);
        lmr_buf_clean_up(&auth);
    }
    lmr_buf_clean_up(&uri);
    lmr_buf_clean_up(&query);
    lmr_buf_clean_up(&lines);
    lmr_buf_clean_up(&signed_list);
    lmr_buf_clean_up(&extra_query);
    if (r && !err)
        return r;
    if (r && err && err->code != r)
        lmr_fail(err, r, "SigV4: cannot sign the request (%s)", lmr_result_str(r));
    return r;
}
