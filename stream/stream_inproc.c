#include "stream_inproc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/misc.h"

struct inproc {
    struct lmr_invoker base;
    const struct lmr_stream_handler_config *cfg;
};

static enum lmr_result inproc_invoke(struct lmr_invoker *inv, const char *function, const void *payload, size_t len,
                                     enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                                     struct lmr_err *err)
{
    struct inproc *ip = inv->impl;
    if (type == LMR_INVOKE_DRY_RUN) {
        res->status_code = 204;
        return LMR_OK;
    }
    char request_id[33];
    lmr_random_hex(request_id, 16);
    snprintf(res->request_id, sizeof res->request_id, "%s", request_id);
    struct lmr_runtime_context ctx = {.request_id = res->request_id,
                                      .invoked_function_arn = function,
                                      .trace_id = "",
                                      .deadline_ms = lmr_wall_ms() + 900000,
                                      .function_name = function,
                                      .memory_size_mb = 1024};
    struct lmr_err herr = {0};
    double t0 = lmr_mono_ms();
    lmr_buf_reset(&res->payload);
    enum lmr_result r = lmr_stream_handler((void *)ip->cfg, &ctx, payload, len, &res->payload, &herr);
    res->duration_ms = lmr_mono_ms() - t0;
    res->billed_duration_ms = (double)(uint64_t)(res->duration_ms + 0.999);
    res->status_code = type == LMR_INVOKE_EVENT ? 202 : 200;
    if (r) {
        snprintf(res->function_error, sizeof res->function_error, "lambdamr.%s", lmr_result_str(r));
        lmr_buf_reset(&res->payload);
        json_t *e = json_pack("{s:s,s:s}", "errorType", res->function_error, "errorMessage", herr.msg);
        char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
        if (text)
            lmr_buf_append_str(&res->payload, text);
        free(text);
        json_decref(e);
    }
    return LMR_OK;
}

static void inproc_destroy(struct lmr_invoker *inv)
{
    free(inv->impl);
}

static const struct lmr_invoker_vtable inproc_vtable = {
    .name = "inproc", .invoke = inproc_invoke, .destroy = inproc_destroy};

enum lmr_result lmr_stream_inproc_invoker_new(const struct lmr_stream_handler_config *cfg, struct lmr_invoker **out,
                                              struct lmr_err *err)
{
    struct inproc *ip = calloc(1, sizeof *ip);
    if (!ip)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    ip->base.vtable = &inproc_vtable;
    ip->base.impl = ip;
    ip->cfg = cfg;
    *out = &ip->base;
    return LMR_OK;
}
