/*
 * The "local" invoker: calls the embedded Lambda service in-process (no HTTP on the caller's
 * side). Throttling (429) is retried with exponential backoff and full jitter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lambda/service_internal.h"
#include "util/misc.h"

#define THROTTLE_MAX_RETRIES 20
#define THROTTLE_BASE_MS 2
#define THROTTLE_CAP_MS 500

static enum lmr_result status_result(int status)
{
    switch (status) {
    case 400:
        return LMR_ERR_INVALID;
    case 404:
        return LMR_ERR_NOT_FOUND;
    case 413:
        return LMR_ERR_TOO_LARGE;
    case 429:
        return LMR_ERR_THROTTLED;
    default:
        return LMR_ERR_INTERNAL;
    }
}

/* An outcome of the service into res (and err, for the service's own errors). */
static enum lmr_result take_outcome(const char *function, unsigned flags, const struct lmr_svc_outcome *o,
                                    struct lmr_invoke_result *res, struct lmr_err *err)
{
    res->status_code = o->status;
    snprintf(res->request_id, sizeof res->request_id, "%s", o->request_id);
    res->function_error[0] = '\0';
    res->log_tail[0] = '\0';
    lmr_buf_reset(&res->payload);
    if (o->error_code) {
        enum lmr_result r = status_result(o->status);
        return lmr_fail(err, r, "invoking Lambda function %s failed: %s (%s, HTTP %d)%s", function, o->message,
                        o->error_code, o->status,
                        o->status == 429 ? "; lower the parallelism or raise the function's concurrency" : "");
    }
    enum lmr_result r = LMR_OK;
    if (o->payload.len && lmr_buf_append(&res->payload, o->payload.data, o->payload.len) != LMR_OK)
        r = lmr_fail(err, LMR_ERR_TOO_LARGE,
                     "the response of Lambda function %s (%zu bytes) is larger than the caller's limit of %zu bytes",
                     function, o->payload.len, res->payload.max_bytes);
    if (o->function_error)
        snprintf(res->function_error, sizeof res->function_error, "Unhandled");
    if (flags & LMR_INVOKE_LOG_TAIL) {
        memcpy(res->log_tail, o->tail, o->tail_len);
        res->log_tail[o->tail_len] = '\0';
    }
    res->duration_ms = o->duration_ms;
    res->billed_duration_ms = o->billed_ms;
    res->init_duration_ms = o->init_ms;
    res->memory_size_mb = o->status == 200 ? o->memory_mb : 0;
    res->max_memory_used_mb = o->max_memory_mb;
    return r;
}

/* A chain through the service: the caller's next() behind the service's (run where results arrive). */
struct chain_ctx {
    const char *function;
    unsigned flags;
    struct lmr_invoke_result *res;
    struct lmr_err *err;
    lmr_invoke_next_fn next;
    void *user;
    enum lmr_result last_r; /* of the outcome next() saw last */
};

static bool chain_next(void *user, const struct lmr_svc_outcome *o, const void **payload, size_t *len)
{
    struct chain_ctx *c = user;
    uint32_t throttles = c->res->throttle_retries;
    lmr_err_clear(c->err);
    c->last_r = take_outcome(c->function, c->flags, o, c->res, c->err);
    c->res->throttle_retries = throttles;
    return c->next(c->user, c->last_r, c->res, c->err, payload, len);
}

static enum lmr_result local_invoke_chain(struct lmr_invoker *inv, uint64_t client, const char *function,
                                          const void *payload, size_t len, unsigned flags,
                                          struct lmr_invoke_result *res, lmr_invoke_next_fn next, void *user,
                                          struct lmr_err *err)
{
    struct lmr_lambda_service *svc = inv->impl;
    struct chain_ctx c = {function, flags, res, err, next, user, LMR_OK};
    struct lmr_svc_chain chain = {chain_next, &c};
    struct lmr_svc_outcome o;
    for (;;) {
        res->throttle_retries = 0;
        for (unsigned attempt = 0;; attempt++) {
            lmr_svc_outcome_init(&o);
            lmr_svc_invoke_chain(svc, function, payload, len, flags, client, &chain, &o);
            if (o.status != 429 || attempt >= THROTTLE_MAX_RETRIES)
                break;
            lmr_svc_outcome_clean_up(&o);
            res->throttle_retries++;
            lmr_sleep_ms(lmr_backoff_ms(attempt, THROTTLE_BASE_MS, THROTTLE_CAP_MS));
        }
        if (o.resume_payload) { /* next() asked for it; its environment could not run it */
            payload = o.resume_payload;
            len = o.resume_len;
            lmr_svc_outcome_clean_up(&o);
            continue;
        }
        if (o.chain_seen) { /* next() saw the last outcome and ended the chain */
            lmr_svc_outcome_clean_up(&o);
            return c.last_r;
        }
        lmr_err_clear(err);
        enum lmr_result r = take_outcome(function, flags, &o, res, err);
        lmr_svc_outcome_clean_up(&o);
        if (!next(user, r, res, err, &payload, &len))
            return r;
    }
}

static enum lmr_result local_invoke_for(struct lmr_invoker *inv, uint64_t client, const char *function,
                                        const void *payload, size_t len, enum lmr_invoke_type type, unsigned flags,
                                        struct lmr_invoke_result *res, struct lmr_err *err)
{
    struct lmr_lambda_service *svc = inv->impl;
    struct lmr_svc_outcome o;
    res->throttle_retries = 0;
    for (unsigned attempt = 0;; attempt++) {
        lmr_svc_outcome_init(&o);
        lmr_svc_invoke(svc, function, NULL, payload, len, type, flags, client, &o);
        if (o.status != 429 || attempt >= THROTTLE_MAX_RETRIES)
            break;
        lmr_svc_outcome_clean_up(&o);
        res->throttle_retries++;
        lmr_sleep_ms(lmr_backoff_ms(attempt, THROTTLE_BASE_MS, THROTTLE_CAP_MS));
    }
    enum lmr_result r = take_outcome(function, flags, &o, res, err);
    lmr_svc_outcome_clean_up(&o);
    return r;
}

static enum lmr_result local_invoke(struct lmr_invoker *inv, const char *function, const void *payload, size_t len,
                                    enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                                    struct lmr_err *err)
{
    return local_invoke_for(inv, 0, function, payload, len, type, flags, res, err);
}

static void local_destroy(struct lmr_invoker *inv)
{
    free(inv);
}

static const struct lmr_invoker_vtable local_vtable = {
    .name = "local",
    .invoke = local_invoke,
    .destroy = local_destroy,
    .invoke_for = local_invoke_for,
    .invoke_chain = local_invoke_chain,
};

enum lmr_result lmr_local_invoker_new(struct lmr_lambda_service *svc, struct lmr_invoker **out, struct lmr_err *err)
{
    if (!svc)
        return lmr_fail(err, LMR_ERR_INVALID, "the local invoker needs a Lambda service");
    struct lmr_invoker *inv = calloc(1, sizeof *inv);
    if (!inv)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory creating the local invoker");
    inv->vtable = &local_vtable;
    inv->impl = svc;
    *out = inv;
    return LMR_OK;
}
