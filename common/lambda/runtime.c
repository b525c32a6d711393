/*
 * The AWS Lambda custom-runtime loop (Runtime API client). One libcurl easy handle is reused
 * for every call so the connection to the Runtime API stays open; the GET /next has no
 * timeout because it blocks until an invocation arrives.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lambda/runtime.h"
#include "util/misc.h"

#define MAX_EVENT_BYTES (6u * 1024 * 1024 + 1024)
#define MAX_RESPONSE_BYTES (6u * 1024 * 1024)

/* Stable error types for handler failures: "lambdamr.<Name>". */
static const char *const result_type_names[LMR_RESULT_COUNT] = {
    [LMR_OK] = "Ok",
    [LMR_ERR_INVALID] = "Invalid",
    [LMR_ERR_NOMEM] = "NoMemory",
    [LMR_ERR_IO] = "IO",
    [LMR_ERR_NOT_FOUND] = "NotFound",
    [LMR_ERR_EXISTS] = "Exists",
    [LMR_ERR_TOO_LARGE] = "TooLarge",
    [LMR_ERR_FORMAT] = "Format",
    [LMR_ERR_NETWORK] = "Network",
    [LMR_ERR_HTTP] = "Http",
    [LMR_ERR_AUTH] = "Auth",
    [LMR_ERR_THROTTLED] = "Throttled",
    [LMR_ERR_TIMEOUT] = "Timeout",
    [LMR_ERR_FUNCTION] = "Function",
    [LMR_ERR_UNSUPPORTED] = "Unsupported",
    [LMR_ERR_CANCELLED] = "Cancelled",
    [LMR_ERR_INTERNAL] = "Internal",
};

struct next_headers {
    char request_id[128];
    char arn[256];
    char trace_id[256];
    uint64_t deadline_ms;
};

struct rt {
    CURL *curl;
    char base[256];
    struct curl_slist *post_headers;
    struct lmr_buf body;
    struct next_headers hdr;
};

int64_t lmr_runtime_remaining_ms(const struct lmr_runtime_context *ctx)
{
    return (int64_t)ctx->deadline_ms - (int64_t)lmr_wall_ms();
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct lmr_buf *b = userdata;
    size_t n = size * nmemb;
    return lmr_buf_append(b, ptr, n) == LMR_OK ? n : 0;
}

static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    while (len && *v == ' ')
        v++, len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct next_headers *h = userdata;
    size_t n = size * nmemb;
    const char *colon = memchr(ptr, ':', n);
    if (!colon)
        return n;
    size_t klen = (size_t)(colon - ptr), vlen = n - klen - 1;
    const char *v = colon + 1;
#define IS(name) (klen == strlen(name) && !strncasecmp(ptr, name, klen))
    if (IS("Lambda-Runtime-Aws-Request-Id"))
        copy_value(h->request_id, sizeof h->request_id, v, vlen);
    else if (IS("Lambda-Runtime-Invoked-Function-Arn"))
        copy_value(h->arn, sizeof h->arn, v, vlen);
    else if (IS("Lambda-Runtime-Trace-Id"))
        copy_value(h->trace_id, sizeof h->trace_id, v, vlen);
    else if (IS("Lambda-Runtime-Deadline-Ms")) {
        char tmp[32];
        copy_value(tmp, sizeof tmp, v, vlen);
        h->deadline_ms = strtoull(tmp, NULL, 10);
    }
#undef IS
    return n;
}

/* POST body to path. @return HTTP status or -1 on a transport error. */
static long rt_post(struct rt *rt, const char *path, const char *error_type, const void *body, size_t len)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", rt->base, path);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Expect:");
    headers = curl_slist_append(headers, "Content-Type: application/json");
    if (error_type) {
        char h[256];
        snprintf(h, sizeof h, "Lambda-Runtime-Function-Error-Type: %s", error_type);
        headers = curl_slist_append(headers, h);
    }
    lmr_buf_reset(&rt->body);
    curl_easy_setopt(rt->curl, CURLOPT_URL, url);
    curl_easy_setopt(rt->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(rt->curl, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
    curl_easy_setopt(rt->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(rt->curl, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(rt->curl);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(rt->curl, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "bootstrap: POST %s failed: %s\n", url, curl_easy_strerror(rc));
    curl_easy_setopt(rt->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    return status;
}

static char *error_json(const char *type, const char *message)
{
    json_t *j = json_pack("{s:s, s:s, s:[]}", "errorMessage", message, "errorType", type, "stackTrace");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static int rt_open(struct rt *rt)
{
    memset(rt, 0, sizeof *rt);
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api) {
        fprintf(stderr, "bootstrap: AWS_LAMBDA_RUNTIME_API is not set; run this program as a Lambda function (on "
                        "AWS or under 'lambdamr serve')\n");
        return 1;
    }
    snprintf(rt->base, sizeof rt->base, "http://%s/2018-06-01/runtime/", api);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rt->curl = curl_easy_init();
    if (!rt->curl)
        return 1;
    curl_easy_setopt(rt->curl, CURLOPT_NOSIGNAL, 1L);
    if (getenv("LMR_RUNTIME_CURL_VERBOSE"))
        curl_easy_setopt(rt->curl, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(rt->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(rt->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(rt->curl, CURLOPT_WRITEDATA, &rt->body);
    /* Always set: with no header function curl would hand headers to the write function. */
    curl_easy_setopt(rt->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(rt->curl, CURLOPT_HEADERDATA, &rt->hdr);
    curl_easy_setopt(rt->curl, CURLOPT_TIMEOUT, 0L);
    curl_easy_setopt(rt->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    lmr_buf_init(&rt->body, MAX_EVENT_BYTES);
    return 0;
}

static void rt_close(struct rt *rt)
{
    if (rt->curl)
        curl_easy_cleanup(rt->curl);
    lmr_buf_clean_up(&rt->body);
}

int lmr_runtime_main(lmr_handler_fn handler, void *user_data)
{
    struct rt rt;
    if (rt_open(&rt))
        return 1;
    struct lmr_buf response;
    lmr_buf_init(&response, MAX_RESPONSE_BYTES);
    const char *fname = getenv("AWS_LAMBDA_FUNCTION_NAME");
    const char *mem = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    char next_url[512];
    snprintf(next_url, sizeof next_url, "%sinvocation/next", rt.base);
    unsigned failures = 0;
    for (;;) {
        memset(&rt.hdr, 0, sizeof rt.hdr);
        lmr_buf_reset(&rt.body);
        curl_easy_setopt(rt.curl, CURLOPT_URL, next_url);
        curl_easy_setopt(rt.curl, CURLOPT_HTTPGET, 1L);
        CURLcode rc = curl_easy_perform(rt.curl);
        long status = 0;
        if (rc == CURLE_OK)
            curl_easy_getinfo(rt.curl, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK || status != 200 || !rt.hdr.request_id[0]) {
            if (++failures >= 5) {
                fprintf(stderr, "bootstrap: cannot get the next invocation from the Runtime API at %s: %s (HTTP %ld)\n",
                        rt.base, rc == CURLE_OK ? "bad answer" : curl_easy_strerror(rc), status);
                break;
            }
            lmr_sleep_ms(10u << failures);
            continue;
        }
        failures = 0;
        struct lmr_runtime_context ctx = {
            .request_id = rt.hdr.request_id,
            .invoked_function_arn = rt.hdr.arn,
            .trace_id = rt.hdr.trace_id,
            .deadline_ms = rt.hdr.deadline_ms,
            .function_name = fname ? fname : "",
            .memory_size_mb = mem ? (uint32_t)strtoul(mem, NULL, 10) : 0,
        };
        /* The handler gets its own copy: rt.body is reused by the POST below. */
        size_t event_len = 0;
        char *event = lmr_buf_detach(&rt.body, &event_len);
        lmr_buf_reset(&response);
        struct lmr_err err;
        lmr_err_clear(&err);
        enum lmr_result r = handler(user_data, &ctx, event ? event : "", event_len, &response, &err);
        free(event);
        char path[256];
        long post_status;
        if (r == LMR_OK) {
            snprintf(path, sizeof path, "invocation/%s/response", rt.hdr.request_id);
            post_status = rt_post(&rt, path, NULL, response.data, response.len);
        } else {
            char type[64];
            snprintf(type, sizeof type, "lambdamr.%s",
                     (unsigned)r < LMR_RESULT_COUNT && result_type_names[r] ? result_type_names[r] : "Unknown");
            char *body = error_json(type, err.msg[0] ? err.msg : lmr_result_str(r));
            snprintf(path, sizeof path, "invocation/%s/error", rt.hdr.request_id);
            post_status = rt_post(&rt, path, type, body, body ? strlen(body) : 0);
            free(body);
        }
        if (post_status < 0) {
            fprintf(stderr, "bootstrap: cannot post the result of request %s to the Runtime API\n", rt.hdr.request_id);
        }
    }
    lmr_buf_clean_up(&response);
    rt_close(&rt);
    return 1;
}

int lmr_runtime_init_error(const char *error_type, const char *message)
{
    struct rt rt;
    if (rt_open(&rt))
        return 1;
    char *body = error_json(error_type, message);
    rt_post(&rt, "init/error", error_type, body, body ? strlen(body) : 0);
    free(body);
    rt_close(&rt);
    return 1;
}
