/* The Lambda Invoke API as an invoker back-end (see aws_invoker.h). */
#include "lambda/aws_invoker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/http.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

struct aws_invoker {
    struct lmr_aws_client *client;
    struct lmr_aws_invoker_options opts;
};

/* Decode the base64 log tail (X-Amz-Log-Result). @return bytes, or -1 if invalid or too long. */
static long decode_log_tail(const char *in, unsigned char *out, size_t cap)
{
    size_t n = strlen(in), got = 0;
    if (n % 4 || n / 4 * 3 > cap + 2)
        return -1;
    unsigned char *tmp = malloc(n / 4 * 3 + 1);
    if (!tmp)
        return -1;
    long r = lmr_base64_decode(in, n, tmp, &got) || got > cap ? -1 : (long)got;
    if (r > 0)
        memcpy(out, tmp, (size_t)r);
    free(tmp);
    return r;
}

static const char *type_header(enum lmr_invoke_type t)
{
    return t == LMR_INVOKE_EVENT ? "Event" : t == LMR_INVOKE_DRY_RUN ? "DryRun" : "RequestResponse";
}

static enum lmr_result aws_invoke(struct lmr_invoker *inv, const char *function, const void *payload, size_t len,
                                  enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                                  struct lmr_err *err)
{
    struct aws_invoker *ai = inv->impl;
    if (!function || !*function || strlen(function) > 256)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "a Lambda function name, ARN or name:qualifier is required (at most "
                        "256 characters)");
    struct lmr_buf path;
    lmr_buf_init(&path, 2048);
    enum lmr_result r = lmr_buf_append_str(&path, "/2015-03-31/functions/");
    if (!r)
        r = lmr_aws_uri_encode(&path, function, strlen(function), false); /* ':' -> %3A */
    if (!r)
        r = lmr_buf_append_str(&path, "/invocations");
    char resource[400];
    snprintf(resource, sizeof resource, "Lambda function '%s'", function);
    struct lmr_aws_header hs[2] = {{"X-Amz-Invocation-Type", type_header(type)}, {"X-Amz-Log-Type", "Tail"}};
    bool tail = (flags & LMR_INVOKE_LOG_TAIL) && type == LMR_INVOKE_SYNC;
    struct lmr_aws_request req = {
        .service = LMR_AWS_LAMBDA,
        .method = "POST",
        .path = path.data,
        .headers = hs,
        .n_headers = tail ? 2 : 1,
        .body = payload,
        .body_len = len,
        .resource = resource,
        .max_response_bytes = res->payload.max_bytes,
    };
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    res->throttle_retries = 0;
    for (unsigned attempt = 0; !r; attempt++) {
        r = lmr_aws_request(ai->client, &req, &resp, err);
        res->status_code = (int)resp.status;
        bool retryable = r == LMR_ERR_THROTTLED || (r == LMR_ERR_HTTP && resp.status >= 500);
        if (!r || !retryable || attempt >= ai->opts.max_retries)
            break;
        if (r == LMR_ERR_THROTTLED)
            res->throttle_retries++;
        uint64_t wait = lmr_backoff_ms(attempt + 1, ai->opts.backoff_base_ms, ai->opts.backoff_cap_ms);
        LMR_INFO("%s: %s; retrying in %llu ms", resource, resp.aws_code, (unsigned long long)wait);
        lmr_sleep_ms(wait);
        lmr_err_clear(err);
        r = LMR_OK;
    }
    if (r == LMR_ERR_THROTTLED && res->throttle_retries)
        lmr_fail(err, r,
                 "%s: Lambda kept throttling the invocation (HTTP %d %s: %s) after %u retries with backoff; "
                 "lower the concurrency or raise the function's concurrency limit",
                 resource, res->status_code, resp.aws_code, resp.aws_message, res->throttle_retries);
    if (!r) {
        lmr_buf_reset(&res->payload);
        if (resp.body.len)
            r = lmr_buf_append(&res->payload, resp.body.data, resp.body.len);
        char v[8192];
        res->function_error[0] = '\0';
        if (lmr_aws_response_header(&resp, "X-Amz-Function-Error", v, sizeof v))
            snprintf(res->function_error, sizeof res->function_error, "%s", v);
        if (lmr_aws_response_header(&resp, "x-amzn-RequestId", v, sizeof v))
            snprintf(res->request_id, sizeof res->request_id, "%s", v);
        res->log_tail[0] = '\0';
        if (tail && lmr_aws_response_header(&resp, "X-Amz-Log-Result", v, sizeof v)) {
            long n = decode_log_tail(v, (unsigned char *)res->log_tail, sizeof res->log_tail - 1);
            if (n < 0)
                n = 0;
            res->log_tail[n] = '\0';
            lmr_invoke_result_parse_report(res, res->log_tail);
        }
    }
    lmr_aws_response_clean_up(&resp);
    lmr_buf_clean_up(&path);
    return r;
}

static void aws_invoker_destroy(struct lmr_invoker *inv)
{
    struct aws_invoker *ai = inv->impl;
    lmr_aws_client_destroy(ai->client);
    free(ai);
    free(inv);
}

static const struct lmr_invoker_vtable aws_vtable = {
    .name = "aws",
    .invoke = aws_invoke,
    .destroy = aws_invoker_destroy,
};

enum lmr_result lmr_aws_invoker_new(const struct lmr_aws_invoker_options *opts, struct lmr_invoker **out,
                                    struct lmr_err *err)
{
    struct lmr_invoker *inv = calloc(1, sizeof *inv);
    struct aws_invoker *ai = calloc(1, sizeof *ai);
    if (!inv || !ai) {
        free(inv);
        free(ai);
        return LMR_ERR_NOMEM;
    }
    if (opts)
        ai->opts = *opts;
    if (!ai->opts.max_retries) {
        /* AWS_MAX_ATTEMPTS: the AWS SDKs' setting (attempts in all, the first included). */
        const char *e = getenv("AWS_MAX_ATTEMPTS");
        long n = e ? strtol(e, NULL, 10) : 0;
        ai->opts.max_retries = n >= 1 && n <= 100 ? (unsigned)(n - 1) : 8;
    }
    if (!ai->opts.backoff_base_ms)
        ai->opts.backoff_base_ms = 100;
    if (!ai->opts.backoff_cap_ms)
        ai->opts.backoff_cap_ms = 10000;
    if (!ai->opts.request_timeout_ms)
        ai->opts.request_timeout_ms = (15 * 60 + 60) * 1000;
    /* One attempt per HTTP request: the invoker decides itself what may be retried. */
    struct lmr_aws_client_options co = {
        .config = ai->opts.config,
        .max_attempts = 1,
        .request_timeout_ms = ai->opts.request_timeout_ms,
        .low_speed_time_s = 15 * 60 + 60, /* a sync invocation sends nothing while the function runs */
    };
    enum lmr_result r = lmr_aws_client_new(&co, &ai->client, err);
    if (r) {
        free(inv);
        free(ai);
        return r;
    }
    ai->opts.config = NULL;
    inv->vtable = &aws_vtable;
    inv->impl = ai;
    *out = inv;
    return LMR_OK;
}
