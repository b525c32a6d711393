/* The AWS HTTP client: URL building, signing, libcurl transfers, error mapping, retries. */
#include "aws/http.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <expat.h>
#include <jansson.h>

#include "aws/curl_api.h"
#include "util/log.h"
#include "util/misc.h"

#define DEFAULT_MAX_RESPONSE_BYTES (16u << 20)
#define MAX_HEADER_BYTES (64u << 10)
#define POOL_MAX 64

struct lmr_aws_client {
    struct lmr_aws_config cfg;
    struct lmr_aws_client_options opts;
    pthread_mutex_t lock;
    char ca_file[4096]; /* CURLOPT_CAINFO, or "" for libcurl's built-in file */
    CURL *pool[POOL_MAX];
    size_t n_pool;
};

void lmr_aws_response_init(struct lmr_aws_response *resp)
{
    memset(resp, 0, sizeof *resp);
    lmr_buf_init(&resp->body, DEFAULT_MAX_RESPONSE_BYTES);
    lmr_buf_init(&resp->headers, MAX_HEADER_BYTES);
}

void lmr_aws_response_clean_up(struct lmr_aws_response *resp)
{
    if (!resp)
        return;
    lmr_buf_clean_up(&resp->body);
    lmr_buf_clean_up(&resp->headers);
}

const char *lmr_aws_response_header(const struct lmr_aws_response *resp, const char *name, char *out, size_t cap)
{
    if (!resp->headers.data)
        return NULL;
    size_t nl = strlen(name);
    const char *p = resp->headers.data;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            const char *e = p + len;
            while (v < e && isspace((unsigned char)*v))
                v++;
            while (e > v && isspace((unsigned char)e[-1]))
                e--;
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return out;
        }
        p += len;
        if (*p)
            p++;
    }
    return NULL;
}

const char *lmr_aws_ca_file_pick(const char *aws_ca_bundle, const char *builtin, const char *const *candidates)
{
    if (aws_ca_bundle && *aws_ca_bundle)
        return aws_ca_bundle;
    if (builtin && access(builtin, R_OK) == 0)
        return NULL;
    for (size_t i = 0; candidates && candidates[i]; i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return NULL;
}

/* The client's CA file (see LMR_AWS_CA_CANDIDATES); a named AWS_CA_BUNDLE must be readable. */
static enum lmr_result resolve_ca_file(struct lmr_aws_client *c, struct lmr_err *err)
{
    static const char *const candidates[] = LMR_AWS_CA_CANDIDATES;
    const char *env = getenv("AWS_CA_BUNDLE");
    if (env && *env && access(env, R_OK) != 0)
        return lmr_fail(err, LMR_ERR_NOT_FOUND,
                        "AWS_CA_BUNDLE names '%s', which cannot be read (%s); point it at a PEM file of CA "
                        "certificates or unset it",
                        env, strerror(errno));
    const curl_version_info_data *v = lmr_curl.version_info(CURLVERSION_NOW);
    const char *pick = lmr_aws_ca_file_pick(env, v ? v->cainfo : NULL, candidates);
    if (pick && strlen(pick) >= sizeof c->ca_file)
        return lmr_fail(err, LMR_ERR_INVALID, "the CA file path '%.64s...' is too long", pick);
    snprintf(c->ca_file, sizeof c->ca_file, "%s", pick ? pick : "");
    return LMR_OK;
}

enum lmr_result lmr_aws_client_new(const struct lmr_aws_client_options *opts, struct lmr_aws_client **out,
                                   struct lmr_err *err)
{
    enum lmr_result lr = lmr_curl_load(err);
    if (lr)
        return lr;
    struct lmr_aws_client *c = calloc(1, sizeof *c);
    if (!c)
        return LMR_ERR_NOMEM;
    if (opts)
        c->opts = *opts;
    enum lmr_result r = LMR_OK;
    if (c->opts.config)
        c->cfg = *c->opts.config;
    else
        r = lmr_aws_config_load(&c->cfg, err);
    if (r) {
        free(c);
        return r;
    }
    c->opts.config = NULL;
    if ((r = resolve_ca_file(c, err))) {
        free(c);
        return r;
    }
    if (!c->opts.connect_timeout_ms)
        c->opts.connect_timeout_ms = 5000;
    if (!c->opts.low_speed_time_s)
        c->opts.low_speed_time_s = 30;
    if (!c->opts.max_attempts)
        c->opts.max_attempts = 6;
    if (!c->opts.backoff_base_ms)
        c->opts.backoff_base_ms = 50;
    if (!c->opts.backoff_cap_ms)
        c->opts.backoff_cap_ms = 5000;
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return LMR_OK;
}

void lmr_aws_client_destroy(struct lmr_aws_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_pool; i++)
        lmr_curl.easy_cleanup(c->pool[i]);
    pthread_mutex_destroy(&c->lock);
    memset(&c->cfg.creds, 0, sizeof c->cfg.creds);
    free(c);
}

const struct lmr_aws_config *lmr_aws_client_config(const struct lmr_aws_client *c)
{
    return &c->cfg;
}

uint64_t lmr_aws_client_backoff_ms(const struct lmr_aws_client *c, unsigned attempt)
{
    return lmr_backoff_ms(attempt, c->opts.backoff_base_ms, c->opts.backoff_cap_ms);
}

unsigned lmr_aws_client_max_attempts(const struct lmr_aws_client *c)
{
    return c->opts.max_attempts;
}

static CURL *take_easy(struct lmr_aws_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->n_pool)
        h = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->lock);
    if (h)
        lmr_curl.easy_reset(h); /* keeps open connections and the DNS cache */
    else
        h = lmr_curl.easy_init();
    return h;
}

static void give_easy(struct lmr_aws_client *c, CURL *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->n_pool < POOL_MAX) {
        c->pool[c->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h)
        lmr_curl.easy_cleanup(h);
}

/* ---- callbacks ---------------------------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct lmr_aws_response *resp = ud;
    if (lmr_buf_append(&resp->body, data, size * n))
        return 0; /* over the cap: curl stops with CURLE_WRITE_ERROR */
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    struct lmr_aws_response *resp = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(data, "HTTP/", 5))
        lmr_buf_reset(&resp->headers); /* a new response (after 100 Continue or a redirect) */
    if (lmr_buf_append(&resp->headers, data, len))
        return 0;
    return len;
}

/* ---- building and signing ----------------------------------------------------------------------------------- */

/* Split "scheme://hostport/base" of an endpoint. */
static void split_endpoint(const char *url, char *scheme, size_t scap, char *hostport, size_t hcap, char *base,
                           size_t bcap)
{
    const char *sep = strstr(url, "://");
    snprintf(scheme, scap, "%.*s", (int)(sep - url), url);
    const char *hp = sep + 3;
    const char *slash = strchr(hp, '/');
    snprintf(hostport, hcap, "%.*s", (int)(slash ? (size_t)(slash - hp) : strlen(hp)), hp);
    snprintf(base, bcap, "%s", slash ? slash : "");
}

enum lmr_result lmr_aws_call_prepare(struct lmr_aws_client *c, const struct lmr_aws_request *req,
                                     struct lmr_aws_response *resp, struct lmr_aws_call *call, struct lmr_err *err)
{
    memset(call, 0, sizeof *call);
    call->req = req;
    call->resp = resp;
    if (!c->cfg.have_credentials) {
        char where[1200];
        lmr_aws_config_describe_search(&c->cfg, where, sizeof where);
        return lmr_fail(err, LMR_ERR_AUTH,
                        "%s: no AWS credentials found (looked for %s); set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile with keys",
                        req->resource, where);
    }
    char endpoint[512], scheme[16], hostport[512], base[512];
    bool custom = false;
    lmr_aws_config_endpoint(&c->cfg, req->service, endpoint, sizeof endpoint, &custom);
    split_endpoint(endpoint, scheme, sizeof scheme, hostport, sizeof hostport, base, sizeof base);

    struct lmr_buf path, url;
    lmr_buf_init(&path, 1 << 16);
    lmr_buf_init(&url, 1 << 17);
    enum lmr_result r = lmr_buf_append_str(&path, base);
    if (!r && req->service == LMR_AWS_S3 && req->bucket) {
        if (custom || strchr(req->bucket, '.')) {
            r = lmr_buf_printf(&path, "/%s", req->bucket); /* path-style */
        } else {
            char host[600];
            snprintf(host, sizeof host, "%s.%s", req->bucket, hostport);
            snprintf(hostport, sizeof hostport, "%s", host); /* virtual-hosted */
        }
    }
    if (!r)
        r = lmr_buf_append_str(&path, req->path && *req->path ? req->path : "/");
    if (!r)
        r = lmr_buf_printf(&url, "%s://%s%s%s%s", scheme, hostport, path.data, req->query && *req->query ? "?" : "",
                           req->query && *req->query ? req->query : "");

    /* Headers to sign: Host plus the caller's. */
    struct lmr_aws_header hs[24];
    size_t nh = 0;
    hs[nh++] = (struct lmr_aws_header){"Host", hostport};
    for (size_t i = 0; i < req->n_headers && nh < 24; i++)
        hs[nh++] = req->headers[i];
    char payload[65];
    if (req->service == LMR_AWS_S3 && req->unsigned_payload)
        snprintf(payload, sizeof payload, "%s", LMR_SIGV4_UNSIGNED_PAYLOAD);
    else
        lmr_sha256_hex(req->body ? req->body : "", req->body_len, payload);
    struct lmr_sigv4_params sp = {
        .creds = &c->cfg.creds,
        .region = lmr_aws_signing_region(&c->cfg, req->service),
        .service = lmr_aws_service_name(req->service),
        .signing_time = time(NULL),
        .flags = req->service == LMR_AWS_S3 ? LMR_SIGV4_S3 | LMR_SIGV4_CONTENT_SHA256_HEADER : 0,
    };
    struct lmr_sigv4_request sr = {.method = req->method,
                                   .path = path.data,
                                   .query = req->query,
                                   .headers = hs,
                                   .n_headers = nh,
                                   .payload_sha256_hex = payload};
    struct lmr_sigv4_signed sig;
    lmr_sigv4_signed_init(&sig);
    if (!r)
        r = lmr_sigv4_sign(&sp, &sr, &sig, err);

    struct curl_slist *sl = NULL;
    bool have_ctype = false;
    for (size_t i = 0; !r && i < nh + sig.n_added; i++) {
        const char *name = i < nh ? hs[i].name : sig.added[i - nh].name;
        const char *value = i < nh ? hs[i].value : sig.added[i - nh].value;
        have_ctype |= !strcasecmp(name, "Content-Type");
        char *line = malloc(strlen(name) + strlen(value) + 3);
        if (!line) {
            r = LMR_ERR_NOMEM;
            break;
        }
        sprintf(line, "%s: %s", name, value);
        struct curl_slist *n = lmr_curl.slist_append(sl, line);
        free(line);
        if (!n) {
            r = LMR_ERR_NOMEM;
            break;
        }
        sl = n;
    }
    if (!r) {
        struct curl_slist *n = lmr_curl.slist_append(sl, "Expect:"); /* no 100-continue round trip */
        if (n && !have_ctype)
            n = lmr_curl.slist_append(n, "Content-Type:"); /* curl would add a form type to bodies */
        if (!n)
            r = LMR_ERR_NOMEM;
        else
            sl = n;
    }
    lmr_sigv4_signed_clean_up(&sig);
    CURL *h = r ? NULL : take_easy(c);
    if (!r && !h)
        r = lmr_fail(err, LMR_ERR_NOMEM, "%s: cannot create an HTTP handle", req->resource);
    if (r) {
        lmr_curl.slist_free_all(sl);
        lmr_buf_clean_up(&path);
        lmr_buf_clean_up(&url);
        return r;
    }
    lmr_buf_reset(&resp->body);
    lmr_buf_reset(&resp->headers);
    resp->body.max_bytes = req->max_response_bytes ? req->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES;
    resp->status = 0;
    resp->aws_code[0] = resp->aws_message[0] = '\0';

    lmr_curl.easy_setopt(h, CURLOPT_URL, url.data);
    lmr_curl.easy_setopt(h, CURLOPT_HTTPHEADER, sl);
    lmr_curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    lmr_curl.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->opts.connect_timeout_ms);
    lmr_curl.easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    lmr_curl.easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->opts.low_speed_time_s);
    if (c->opts.request_timeout_ms)
        lmr_curl.easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->opts.request_timeout_ms);
    lmr_curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    lmr_curl.easy_setopt(h, CURLOPT_WRITEDATA, resp);
    lmr_curl.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    lmr_curl.easy_setopt(h, CURLOPT_HEADERDATA, resp);
    lmr_curl.easy_setopt(h, CURLOPT_ERRORBUFFER, call->errbuf);
    lmr_curl.easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    lmr_curl.easy_setopt(h, CURLOPT_USERAGENT, "lambdamr/0.1");
    if (c->ca_file[0])
        lmr_curl.easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (!strcmp(req->method, "HEAD")) {
        lmr_curl.easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(req->method, "GET") && !req->body_len) {
        lmr_curl.easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(req->method, "DELETE") && !req->body_len) {
        lmr_curl.easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        lmr_curl.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        lmr_curl.easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        if (strcmp(req->method, "POST"))
            lmr_curl.easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
    LMR_DEBUG("aws %s %s", req->method, url.data);
    call->easy = h;
    call->headers = sl;
    lmr_buf_clean_up(&path);
    lmr_buf_clean_up(&url);
    return LMR_OK;
}

void lmr_aws_call_release(struct lmr_aws_client *c, struct lmr_aws_call *call)
{
    if (call->easy) {
        lmr_curl.easy_setopt(call->easy, CURLOPT_HTTPHEADER, NULL);
        give_easy(c, call->easy);
    }
    lmr_curl.slist_free_all(call->headers);
    call->easy = NULL;
    call->headers = NULL;
}

/* ---- error bodies ------------------------------------------------------------------------------------------- */

struct xml_err {
    int depth;
    int field;       /* 1 = Code, 2 = Message */
    int error_depth; /* depth of the <Error> element, 0 = none seen */
    struct lmr_aws_response *resp;
};

static void XMLCALL xml_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_err *x = ud;
    (void)attrs;
    x->depth++;
    x->field = 0;
    /* S3: <Error><Code>; query protocol (IAM, CloudFormation): <ErrorResponse><Error><Code>, or
     * <ErrorResponse><Errors><Error><Code> (moto): Code and Message are children of an Error. */
    if (!strcmp(name, "Error") && x->depth <= 3)
        x->error_depth = x->depth;
    if (x->error_depth && x->depth == x->error_depth + 1 && !strcmp(name, "Code"))
        x->field = 1;
    else if (x->error_depth && x->depth == x->error_depth + 1 && !strcmp(name, "Message"))
        x->field = 2;
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
    struct xml_err *x = ud;
    (void)name;
    x->depth--;
    x->field = 0;
}

static void XMLCALL xml_text(void *ud, const XML_Char *s, int len)
{
    struct xml_err *x = ud;
    char *dst = x->field == 1 ? x->resp->aws_code : x->field == 2 ? x->resp->aws_message : NULL;
    size_t cap = x->field == 1 ? sizeof x->resp->aws_code : sizeof x->resp->aws_message;
    if (!dst)
        return;
    size_t have = strlen(dst);
    if (have + 1 >= cap)
        return;
    size_t n = (size_t)len < cap - have - 1 ? (size_t)len : cap - have - 1;
    memcpy(dst + have, s, n);
    dst[have + n] = '\0';
}

static void parse_error_body(struct lmr_aws_response *resp)
{
    const char *b = resp->body.data;
    size_t n = resp->body.len;
    while (n && isspace((unsigned char)*b)) {
        b++;
        n--;
    }
    if (n && *b == '<') {
        XML_Parser p = XML_ParserCreate(NULL);
        if (!p)
            return;
        struct xml_err x = {.resp = resp};
        XML_SetUserData(p, &x);
        XML_SetElementHandler(p, xml_start, xml_end);
        XML_SetCharacterDataHandler(p, xml_text);
        XML_Parse(p, b, (int)n, 1);
        XML_ParserFree(p);
    } else if (n && *b == '{') {
        json_t *j = json_loadb(b, n, 0, NULL);
        if (j) {
            const char *type = json_string_value(json_object_get(j, "__type"));
            const char *msg = json_string_value(json_object_get(j, "message"));
            if (!msg)
                msg = json_string_value(json_object_get(j, "Message"));
            if (!msg)
                msg = json_string_value(json_object_get(j, "errorMessage"));
            if (type) {
                const char *hash = strrchr(type, '#');
                snprintf(resp->aws_code, sizeof resp->aws_code, "%s", hash ? hash + 1 : type);
            }
            if (msg)
                snprintf(resp->aws_message, sizeof resp->aws_message, "%s", msg);
            json_decref(j);
        }
    }
    char hv[256];
    if (!resp->aws_code[0] && lmr_aws_response_header(resp, "x-amzn-ErrorType", hv, sizeof hv)) {
        hv[strcspn(hv, ":")] = '\0';
        snprintf(resp->aws_code, sizeof resp->aws_code, "%s", hv);
    }
    if (!resp->aws_code[0]) {
        const char *code = resp->status == 404   ? "NotFound"
                           : resp->status == 403 ? "Forbidden"
                           : resp->status == 412 ? "PreconditionFailed"
                           : resp->status == 429 ? "TooManyRequestsException"
                           : resp->status == 503 ? "ServiceUnavailable"
                           : resp->status >= 500 ? "InternalError"
                                                 : "BadRequest";
        snprintf(resp->aws_code, sizeof resp->aws_code, "%s", code);
    }
}

void lmr_aws_response_parse_error(struct lmr_aws_response *resp)
{
    resp->aws_code[0] = resp->aws_message[0] = '\0';
    parse_error_body(resp);
}

static bool code_in(const char *code, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(code, *list))
            return true;
    return false;
}

static const char *const throttle_codes[] = {"Throttling",
                                             "ThrottlingException",
                                             "ThrottledException",
                                             "RequestThrottledException",
                                             "TooManyRequestsException",
                                             "ProvisionedThroughputExceededException",
                                             "TransactionInProgressException",
                                             "RequestLimitExceeded",
                                             "BandwidthLimitExceeded",
                                             "LimitExceededException",
                                             "RequestThrottled",
                                             "SlowDown",
                                             "EC2ThrottledException",
                                             NULL};
static const char *const transient_codes[] = {"RequestTimeout",     "RequestTimeoutException",
                                              "InternalError",      "ConditionalRequestConflict",
                                              "ServiceUnavailable", NULL};

static const char *service_title(enum lmr_aws_service s)
{
    return lmr_aws_service_title(s);
}

enum lmr_result lmr_aws_call_finish(struct lmr_aws_client *c, struct lmr_aws_call *call, CURLcode cc, bool *retry,
                                    struct lmr_err *err)
{
    const struct lmr_aws_request *req = call->req;
    struct lmr_aws_response *resp = call->resp;
    const struct lmr_aws_config *cfg = &c->cfg;
    char endpoint[512];
    lmr_aws_config_endpoint(cfg, req->service, endpoint, sizeof endpoint, NULL);
    *retry = false;
    resp->attempts++;
    if (cc != CURLE_OK) {
        const char *detail = call->errbuf[0] ? call->errbuf : lmr_curl.easy_strerror(cc);
        switch (cc) {
        case CURLE_WRITE_ERROR:
            return lmr_fail(err, LMR_ERR_TOO_LARGE, "%s: the %s response is larger than the %zu bytes allowed",
                            req->resource, service_title(req->service), resp->body.max_bytes);
        case CURLE_OPERATION_TIMEDOUT:
            *retry = true;
            return lmr_fail(err, LMR_ERR_TIMEOUT,
                            "%s: %s at %s did not answer in time (%s) after %u attempts; check that the endpoint is "
                            "up and reachable",
                            req->resource, service_title(req->service), endpoint, detail, resp->attempts);
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
            *retry = true;
            /* fall through */
        default:
            return lmr_fail(err, LMR_ERR_NETWORK,
                            "%s: cannot reach %s at %s (%s) after %u attempts; check the endpoint "
                            "(%s / AWS_ENDPOINT_URL, AWS_REGION) and the network",
                            req->resource, service_title(req->service), endpoint, detail, resp->attempts,
                            lmr_aws_service_endpoint_var(req->service));
        }
    }
    lmr_curl.easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &resp->status);
    if (resp->status >= 200 && resp->status < 300)
        return LMR_OK;
    parse_error_body(resp);
    const char *code = resp->aws_code;
    const char *msg = resp->aws_message[0] ? resp->aws_message : "no message";
    const char *svc = service_title(req->service);
    const char *akid = cfg->creds.access_key_id;
    long st = resp->status;
    if (st >= 500 || st == 429 || code_in(code, throttle_codes) || code_in(code, transient_codes))
        *retry = true;
    if (st == 429 || code_in(code, throttle_codes))
        return lmr_fail(err, LMR_ERR_THROTTLED,
                        "%s: %s kept throttling requests (HTTP %ld %s: %s) after %u attempts; lower the concurrency "
                        "or retry later",
                        req->resource, svc, st, code, msg, resp->attempts);
    if (st >= 500)
        return lmr_fail(err, LMR_ERR_HTTP, "%s: %s failed with HTTP %ld %s (%s) after %u attempts; retry later",
                        req->resource, svc, st, code, msg, resp->attempts);
    if (!strcmp(code, "SignatureDoesNotMatch") || !strcmp(code, "InvalidSignatureException"))
        return lmr_fail(err, LMR_ERR_AUTH,
                        "%s: %s rejected the request signature (HTTP %ld %s: %s); the secret key does not belong to "
                        "access key id %s (from %s): check AWS_SECRET_ACCESS_KEY or the profile's "
                        "aws_secret_access_key",
                        req->resource, svc, st, code, msg, akid, cfg->creds_source);
    if (!strcmp(code, "InvalidAccessKeyId") || !strcmp(code, "UnrecognizedClientException") ||
        !strcmp(code, "InvalidClientTokenId"))
        return lmr_fail(err, LMR_ERR_AUTH,
                        "%s: %s does not know access key id %s (HTTP %ld %s: %s); check the credentials (from %s) "
                        "and that the endpoint %s is the right one",
                        req->resource, svc, akid, st, code, msg, cfg->creds_source, endpoint);
    if (!strcmp(code, "ExpiredToken") || !strcmp(code, "ExpiredTokenException") || !strcmp(code, "RequestExpired") ||
        !strcmp(code, "TokenRefreshRequired"))
        return lmr_fail(err, LMR_ERR_AUTH,
                        "%s: the AWS credentials have expired (HTTP %ld %s: %s); refresh them (new AWS_SESSION_TOKEN "
                        "or profile '%s') and check the clock of this machine",
                        req->resource, st, code, msg, cfg->profile);
    if (st == 403 || !strcmp(code, "AccessDenied") || !strcmp(code, "AccessDeniedException"))
        return lmr_fail(err, LMR_ERR_AUTH,
                        "%s: access denied by %s (HTTP %ld %s: %s); the identity of access key id %s needs "
                        "permission for this in its IAM policy (or the bucket/function policy)",
                        req->resource, svc, st, code, msg, akid);
    char bucket_region[64];
    if (req->service == LMR_AWS_S3 &&
        (!strcmp(code, "PermanentRedirect") || !strcmp(code, "AuthorizationHeaderMalformed") ||
         !strcmp(code, "IllegalLocationConstraintException")) &&
        lmr_aws_response_header(resp, "x-amz-bucket-region", bucket_region, sizeof bucket_region))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "%s: the bucket is in region %s, not %s (HTTP %ld %s: %s); set AWS_REGION=%s", req->resource,
                        bucket_region, cfg->region, st, code, msg, bucket_region);
    if (!strcmp(code, "NoSuchBucket"))
        return lmr_fail(err, LMR_ERR_NOT_FOUND,
                        "%s: the bucket '%s' does not exist (HTTP %ld %s: %s); check the bucket name, the region "
                        "(%s) and the endpoint (%s)",
                        req->resource, req->bucket ? req->bucket : "?", st, code, msg, cfg->region, endpoint);
    if (!strcmp(code, "NoSuchKey") || (req->service == LMR_AWS_S3 && st == 404))
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "%s: no such object (HTTP %ld %s: %s); check the key or prefix",
                        req->resource, st, code, msg);
    if (!strcmp(code, "NoSuchUpload"))
        return lmr_fail(err, LMR_ERR_NOT_FOUND, "%s: the multipart upload is gone (HTTP %ld %s: %s)", req->resource, st,
                        code, msg);
    if (st == 404 || !strcmp(code, "ResourceNotFoundException"))
        return lmr_fail(err, LMR_ERR_NOT_FOUND,
                        "%s: not found by %s (HTTP %ld %s: %s); check the name and the region (%s)", req->resource, svc,
                        st, code, msg, cfg->region);
    if (st == 412 || !strcmp(code, "PreconditionFailed"))
        return lmr_fail(err, LMR_ERR_EXISTS, "%s: already exists (HTTP %ld %s: %s)", req->resource, st, code, msg);
    if (st == 413 || !strcmp(code, "RequestEntityTooLargeException") || !strcmp(code, "EntityTooLarge"))
        return lmr_fail(err, LMR_ERR_TOO_LARGE, "%s: the request is too large for %s (HTTP %ld %s: %s)", req->resource,
                        svc, st, code, msg);
    if (*retry)
        return lmr_fail(err, LMR_ERR_HTTP, "%s: %s failed with HTTP %ld %s (%s) after %u attempts; retry later",
                        req->resource, svc, st, code, msg, resp->attempts);
    return lmr_fail(err, LMR_ERR_HTTP, "%s: %s refused the request with HTTP %ld %s: %s", req->resource, svc, st, code,
                    msg);
}

enum lmr_result lmr_aws_request(struct lmr_aws_client *c, const struct lmr_aws_request *req,
                                struct lmr_aws_response *resp, struct lmr_err *err)
{
    resp->attempts = 0;
    for (unsigned attempt = 1;; attempt++) {
        struct lmr_aws_call call;
        enum lmr_result r = lmr_aws_call_prepare(c, req, resp, &call, err);
        if (r)
            return r;
        CURLcode cc = lmr_curl.easy_perform(call.easy);
        bool retry = false;
        r = lmr_aws_call_finish(c, &call, cc, &retry, err);
        lmr_aws_call_release(c, &call);
        if (!r || !retry || attempt >= c->opts.max_attempts)
            return r;
        uint64_t wait = lmr_aws_client_backoff_ms(c, attempt);
        LMR_INFO("retrying %s %s in %llu ms (attempt %u): %s", req->method, req->resource, (unsigned long long)wait,
                 attempt + 1, err ? err->msg : lmr_result_str(r));
        lmr_sleep_ms(wait);
    }
}
