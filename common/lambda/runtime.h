/*
 * The function side of Lambda: turns a handler into an AWS Lambda custom runtime that loops
 * on the Runtime API (http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next,
 * /response, /error, /runtime/init/error). The same loop runs under AWS Lambda and under
 * lambdamr's embedded service.
 */
#ifndef LMR_LAMBDA_RUNTIME_H
#define LMR_LAMBDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/result.h"

/* What the Runtime API tells the handler about the current invocation. */
struct lmr_runtime_context {
    const char *request_id;           /* Lambda-Runtime-Aws-Request-Id */
    const char *invoked_function_arn; /* Lambda-Runtime-Invoked-Function-Arn */
    const char *trace_id;             /* Lambda-Runtime-Trace-Id (may be "") */
    uint64_t deadline_ms;             /* Lambda-Runtime-Deadline-Ms, epoch milliseconds */
    const char *function_name;        /* AWS_LAMBDA_FUNCTION_NAME */
    uint32_t memory_size_mb;          /* AWS_LAMBDA_FUNCTION_MEMORY_SIZE */
};

/** Milliseconds left before the deadline (negative once passed). */
int64_t lmr_runtime_remaining_ms(const struct lmr_runtime_context *ctx);

/*
 * A handler: event bytes in, response bytes out (appended to `response`). On failure it
 * returns non-OK with a message in err; the runtime then posts /error with errorType
 * "lambdamr.<ResultName>" and errorMessage err->msg.
 */
typedef enum lmr_result (*lmr_handler_fn)(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                          size_t event_len, struct lmr_buf *response, struct lmr_err *err);

/**
 * Run the Runtime API loop with handler until the process is killed. Returns (non-zero) only
 * if AWS_LAMBDA_RUNTIME_API is missing or the Runtime API cannot be reached.
 */
int lmr_runtime_main(lmr_handler_fn handler, void *user_data);

/** Report an initialisation failure (POST /runtime/init/error) and return non-zero for exit(). */
int lmr_runtime_init_error(const char *error_type, const char *message);

#endif
