#include "util/result.h"

#include <stdio.h>
#include <string.h>

static const char *const result_names[LMR_RESULT_COUNT] = {
    [LMR_OK] = "ok",
    [LMR_ERR_INVALID] = "invalid argument",
    [LMR_ERR_NOMEM] = "out of memory",
    [LMR_ERR_IO] = "I/O error",
    [LMR_ERR_NOT_FOUND] = "not found",
    [LMR_ERR_EXISTS] = "already exists",
    [LMR_ERR_TOO_LARGE] = "too large",
    [LMR_ERR_FORMAT] = "bad format",
    [LMR_ERR_NETWORK] = "network error",
    [LMR_ERR_HTTP] = "HTTP error",
    [LMR_ERR_AUTH] = "authentication or authorization failed",
    [LMR_ERR_THROTTLED] = "throttled",
    [LMR_ERR_TIMEOUT] = "timed out",
    [LMR_ERR_FUNCTION] = "function error",
    [LMR_ERR_UNSUPPORTED] = "unsupported",
    [LMR_ERR_CANCELLED] = "cancelled",
    [LMR_ERR_INTERNAL] = "internal error",
};

const char *lmr_result_str(enum lmr_result r)
{
    if ((unsigned)r >= LMR_RESULT_COUNT || !result_names[r])
        return "unknown error";
    return result_names[r];
}

enum lmr_result lmr_fail(struct lmr_err *err, enum lmr_result code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

enum lmr_result lmr_err_prefix(struct lmr_err *err, const char *fmt, ...)
{
    if (!err)
        return LMR_ERR_INTERNAL;
    char head[LMR_ERR_MSG_BYTES], old[LMR_ERR_MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
    return err->code;
}

void lmr_err_clear(struct lmr_err *err)
{
    if (err) {
        err->code = LMR_OK;
        err->msg[0] = '\0';
    }
}
