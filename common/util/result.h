/*
 * One result code for the whole project (curl's CURLcode idea): every function that can
 * fail returns enum lmr_result, and puts a sentence for users into an optional struct
 * lmr_err. Library code never prints errors itself.
 */
#ifndef LMR_UTIL_RESULT_H
#define LMR_UTIL_RESULT_H

#include <stdarg.h>
#include <stddef.h>

enum lmr_result {
    LMR_OK = 0,
    LMR_ERR_INVALID,     /* bad argument or malformed input */
    LMR_ERR_NOMEM,       /* allocation failed or a buffer cap was reached */
    LMR_ERR_IO,          /* local file system error */
    LMR_ERR_NOT_FOUND,   /* key, object, bucket, function or file does not exist */
    LMR_ERR_EXISTS,      /* create-only write lost: the key already exists */
    LMR_ERR_TOO_LARGE,   /* input exceeds a documented limit */
    LMR_ERR_FORMAT,      /* corrupt or unexpected data (bad frame, bad JSON) */
    LMR_ERR_NETWORK,     /* connection refused, reset, DNS, timeout */
    LMR_ERR_HTTP,        /* HTTP error response not covered by a more specific code */
    LMR_ERR_AUTH,        /* missing or rejected credentials, access denied */
    LMR_ERR_THROTTLED,   /* throttling that survived all retries */
    LMR_ERR_TIMEOUT,     /* a deadline passed */
    LMR_ERR_FUNCTION,    /* a Lambda function returned a function error */
    LMR_ERR_UNSUPPORTED, /* the operation is not available on this back-end */
    LMR_ERR_CANCELLED,   /* stopped on request (signal, shutdown) */
    LMR_ERR_INTERNAL,    /* a bug: an invariant did not hold */
    LMR_RESULT_COUNT
};

/** @return a short constant name for a result code ("not found"). Never NULL. */
const char *lmr_result_str(enum lmr_result r);

/*
 * A caller-owned error message. Functions that take `struct lmr_err *err` accept NULL.
 * The message is a complete sentence that names the object, the cause and the next step.
 */
#define LMR_ERR_MSG_BYTES 1024
struct lmr_err {
    enum lmr_result code;
    char msg[LMR_ERR_MSG_BYTES];
};

/** Set err (if not NULL) to code and a formatted message. @return code, for `return lmr_fail(...)`. */
enum lmr_result lmr_fail(struct lmr_err *err, enum lmr_result code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Prefix an existing message with more context ("reading s3://b/k: <old message>"). @return err->code. */
enum lmr_result lmr_err_prefix(struct lmr_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Clear err (if not NULL). */
void lmr_err_clear(struct lmr_err *err);

#endif
