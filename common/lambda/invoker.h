/*
 * The invoker interface: how the driver and coordinator run a task as a Lambda invocation.
 * Back-ends: "local" (the embedded Lambda-compatible service, in-process) and "aws" (the
 * Lambda Invoke API over HTTPS with SigV4; it also talks to `lambdamr serve`).
 *
 * Shape follows aws-c-common: { vtable, impl } with a thin dispatch wrapper.
 */
#ifndef LMR_LAMBDA_INVOKER_H
#define LMR_LAMBDA_INVOKER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/result.h"

enum lmr_invoke_type {
    LMR_INVOKE_SYNC,    /* RequestResponse */
    LMR_INVOKE_EVENT,   /* Event: queued, 202 */
    LMR_INVOKE_DRY_RUN, /* DryRun: validate only, 204 */
};

/* What one invocation produced. Initialise with lmr_invoke_result_init, free with _clean_up. */
struct lmr_invoke_result {
    int status_code;          /* HTTP status: 200, 202, 204, or the error status */
    struct lmr_buf payload;   /* response payload; on a function error, the error JSON */
    char function_error[128]; /* "" if none; else "Unhandled" or the runtime's error type */
    char request_id[64];
    char log_tail[4097]; /* last 4 KB of the invocation's log (when requested), decoded */
    /* Figures of the REPORT line. 0 when unknown (e.g. Event invocations). */
    double duration_ms;
    double billed_duration_ms;
    double init_duration_ms; /* > 0 on a cold start */
    uint32_t memory_size_mb;
    uint32_t max_memory_used_mb;
    uint32_t throttle_retries; /* 429s that were retried before this result */
};

void lmr_invoke_result_init(struct lmr_invoke_result *res, size_t max_payload_bytes);
void lmr_invoke_result_clean_up(struct lmr_invoke_result *res);

/** Parse a Lambda REPORT line ("REPORT RequestId: … Duration: 1.23 ms …") found in text into res. @return true if
 * found. */
bool lmr_invoke_result_parse_report(struct lmr_invoke_result *res, const char *text);

enum lmr_invoke_flags {
    LMR_INVOKE_LOG_TAIL = 1u << 0, /* X-Amz-Log-Type: Tail */
};

struct lmr_invoker;

/*
 * Called after each invocation of a chain (lmr_invoke_chain) with its outcome: r and err as
 * lmr_invoke returns them, res filled. Return true and set *payload, *len to invoke again (the
 * buffer must stay valid until the next call), false to end the chain. It may run on a thread of
 * the invoker's own (the embedded service calls it on the thread that received the result), never
 * concurrently with itself for one chain; it must not invoke anything itself.
 */
typedef bool (*lmr_invoke_next_fn)(void *user, enum lmr_result r, struct lmr_invoke_result *res, struct lmr_err *err,
                                   const void **payload, size_t *len);

struct lmr_invoker_vtable {
    const char *name; /* "local", "aws" */
    /*
     * Invoke `function` (name, ARN or name:qualifier) with payload. A function error is not a
     * failure of this call: it returns LMR_OK with res->function_error set. Non-OK results are
     * for errors of the service or the transport (unknown function, throttled after retries…).
     */
    enum lmr_result (*invoke)(struct lmr_invoker *inv, const char *function, const void *payload, size_t len,
                              enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                              struct lmr_err *err);
    void (*destroy)(struct lmr_invoker *inv);
    /*
     * Optional (NULL: invoke is used): invoke on behalf of `client`, a caller's stable key (a
     * stream lane): a service that chooses the environment prefers the warm one this client
     * used last (Lambda promises nothing either way). 0 = no client.
     */
    enum lmr_result (*invoke_for)(struct lmr_invoker *inv, uint64_t client, const char *function, const void *payload,
                                  size_t len, enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                                  struct lmr_err *err);
    /*
     * Optional (NULL: invoke_for in a loop): a chain of synchronous invocations for `client`, each
     * payload given by next() after the previous one finished (see lmr_invoke_next_fn). A back-end
     * that runs next() where the result arrives saves the caller's wake-ups between invocations.
     */
    enum lmr_result (*invoke_chain)(struct lmr_invoker *inv, uint64_t client, const char *function, const void *payload,
                                    size_t len, unsigned flags, struct lmr_invoke_result *res, lmr_invoke_next_fn next,
                                    void *user, struct lmr_err *err);
};

struct lmr_invoker {
    const struct lmr_invoker_vtable *vtable;
    void *impl;
};

static inline enum lmr_result lmr_invoke(struct lmr_invoker *inv, const char *function, const void *payload, size_t len,
                                         enum lmr_invoke_type type, unsigned flags, struct lmr_invoke_result *res,
                                         struct lmr_err *err)
{
    return inv->vtable->invoke(inv, function, payload, len, type, flags, res, err);
}

/** lmr_invoke on behalf of `client` (see invoke_for): back-ends that cannot choose an environment ignore it. */
static inline enum lmr_result lmr_invoke_for(struct lmr_invoker *inv, uint64_t client, const char *function,
                                             const void *payload, size_t len, enum lmr_invoke_type type, unsigned flags,
                                             struct lmr_invoke_result *res, struct lmr_err *err)
{
    if (inv->vtable->invoke_for)
        return inv->vtable->invoke_for(inv, client, function, payload, len, type, flags, res, err);
    return inv->vtable->invoke(inv, function, payload, len, type, flags, res, err);
}

/**
 * Synchronous invocations of `function` for `client`: payload first, then while next() returns
 * true the payload it gives, next() seeing every outcome (it runs after the last one too).
 * @return the result of the last invocation (res and err hold its outcome).
 */
static inline enum lmr_result lmr_invoke_chain(struct lmr_invoker *inv, uint64_t client, const char *function,
                                               const void *payload, size_t len, unsigned flags,
                                               struct lmr_invoke_result *res, lmr_invoke_next_fn next, void *user,
                                               struct lmr_err *err)
{
    if (inv->vtable->invoke_chain)
        return inv->vtable->invoke_chain(inv, client, function, payload, len, flags, res, next, user, err);
    for (;;) {
        enum lmr_result r = lmr_invoke_for(inv, client, function, payload, len, LMR_INVOKE_SYNC, flags, res, err);
        if (!next(user, r, res, err, &payload, &len))
            return r;
    }
}

static inline void lmr_invoker_destroy(struct lmr_invoker *inv)
{
    if (inv)
        inv->vtable->destroy(inv);
}

#endif
