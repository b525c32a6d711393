/*
 * The embedded Lambda-compatible service: the Invoke API (POST /2015-03-31/functions/{name}/
 * invocations) and Lambda's function control plane (CreateFunction, GetFunction, ... see
 * service_control.h) on 127.0.0.1 only, and execution environments (processes of the function's
 * executable, each with its own Runtime API endpoint) started on demand, reused warm up to the
 * function's concurrency, and held to its timeout and memory size. `lambdamr serve` runs it
 * standalone; the driver embeds it and calls it through the local invoker (no HTTP on the
 * caller's side).
 *
 * Logs: one file per function (<log_dir>/<name>.log) with the function's stdout/stderr and
 * Lambda-style START / END / REPORT lines.
 */
#ifndef LMR_LAMBDA_SERVICE_H
#define LMR_LAMBDA_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "lambda/invoker.h"
#include "lambda/limits.h"
#include "lambda/memory.h"
#include "util/result.h"

/* Sizes and limits the service applies, as Lambda does (the payload limits: lambda/limits.h). */
#define LMR_LAMBDA_LOG_TAIL_BYTES 4096              /* X-Amz-Log-Result */
#define LMR_LAMBDA_EVENT_QUEUE_MAX 100000           /* queued Event invocations per function; beyond: 429 */
#define LMR_LAMBDA_REQUEST_TIMEOUT_DEFAULT_MS 10000 /* an Invoke API request must arrive whole in this time */

struct lmr_function_config {
    const char *name;     /* Required. [A-Za-z0-9_-]{1,64} */
    const char *path;     /* Required. executable to run as the execution environment */
    const char *handler;  /* Optional: _HANDLER value. */
    uint32_t memory_mb;   /* Optional, default LMR_MEMORY_DEFAULT_MB (lambda/memory.h). Enforced on resident memory. */
    double timeout_s;     /* Optional, default 3 (like Lambda); up to 900. */
    uint32_t concurrency; /* Optional, default 10: max environments at once. */
    const char *const *env; /* Optional: extra "NAME=VALUE" strings, NULL-terminated. */
    const char *task_root;  /* Optional: LAMBDA_TASK_ROOT (default: the folder of path). */
};

struct lmr_lambda_service_options {
    uint16_t port;                 /* Optional: Invoke API port; 0 = ephemeral. */
    const char *log_dir;           /* Optional: NULL = a new temp dir (kept after destroy). */
    uint32_t event_retry_delay_ms; /* Optional: wait before retrying a failed Event; default 200. */
    uint32_t request_timeout_ms;   /* Optional: an Invoke API request (headers and body) must arrive whole
                                      within this time of the connection's start or of the previous
                                      response on the connection; default LMR_LAMBDA_REQUEST_TIMEOUT_DEFAULT_MS. */
    const char *state_dir;         /* Optional: where created functions' code and task roots go; NULL = a
                                      temp dir made on the first CreateFunction, removed by destroy. */
    uint32_t update_delay_ms;      /* Optional, default 300: how long a created function stays Pending and
                                      an update InProgress (further updates get ResourceConflictException). */
};

struct lmr_lambda_service;

/** Create a service (no listening socket, no process yet). */
enum lmr_result lmr_lambda_service_new(const struct lmr_lambda_service_options *opts, struct lmr_lambda_service **out,
                                       struct lmr_err *err);
/**
 * Register a function. Fails on a bad name or limits, or a name already registered. The
 * environment its processes get is fixed here: Lambda's variables, cfg->env, then the caller's
 * AWS_*, LMR_*, ASAN/UBSAN/LSAN_OPTIONS, PATH, HOME, TMPDIR as they are at this call. The
 * executable is not checked here: a missing one fails each invocation with
 * Runtime.InvalidEntrypoint, the way Lambda reports a bad bootstrap.
 */
enum lmr_result lmr_lambda_service_add_function(struct lmr_lambda_service *svc, const struct lmr_function_config *cfg,
                                                struct lmr_err *err);
/** Bind the Invoke API on 127.0.0.1 (port from the options). The local invoker works without it. */
enum lmr_result lmr_lambda_service_start(struct lmr_lambda_service *svc, struct lmr_err *err);
/**
 * Start environments of function `name` ahead of its invocations, until `count` of them are alive
 * (never more than its concurrency): their Init (process start, the runtime's own set-up) runs now,
 * and an invocation that comes later is placed on one of them as on any idle environment, which it
 * waits for if its Init has not finished. Its Init Duration goes into the REPORT of its first
 * invocation, as a cold start's does. What Lambda's provisioned concurrency gives a function.
 * @return LMR_OK; LMR_ERR_NOT_FOUND (no such function) or LMR_ERR_IO (a process did not start).
 */
enum lmr_result lmr_lambda_service_prestart(struct lmr_lambda_service *svc, const char *name, uint32_t count,
                                            struct lmr_err *err);
/** Port of the Invoke API (0 before start). */
uint16_t lmr_lambda_service_port(const struct lmr_lambda_service *svc);
/** Directory holding the per-function logs. */
const char *lmr_lambda_service_log_dir(const struct lmr_lambda_service *svc);
/* Counters since the service was created. */
struct lmr_lambda_service_stats {
    uint64_t invocations_completed; /* sync and Event invocations that finished (Event: after retries) */
    uint64_t function_errors;       /* of those, how many ended in a function error */
    uint64_t cold_starts;           /* environments started */
    uint64_t throttles;             /* sync invocations answered 429 */
    uint64_t events_queued;         /* Event invocations waiting right now */
    uint64_t invocations_running;   /* invocations an environment runs right now */
};

/** Snapshot of the counters. */
void lmr_lambda_service_get_stats(struct lmr_lambda_service *svc, struct lmr_lambda_service_stats *out);

/**
 * Wait until no environment runs an invocation (invocations_running is 0), at most timeout_ms;
 * woken by each invocation's end, not by polling. Queued Event invocations do not count.
 * @return true when none runs, false at the timeout.
 */
bool lmr_lambda_service_wait_idle(struct lmr_lambda_service *svc, uint32_t timeout_ms);

/** Stop the Invoke API, kill and reap every environment, free everything. NULL-safe. */
void lmr_lambda_service_destroy(struct lmr_lambda_service *svc);

/**
 * An invoker that calls svc in-process (thread-safe). Throttling (429) is retried with
 * exponential backoff and full jitter, counted in res->throttle_retries. svc must outlive it.
 */
enum lmr_result lmr_local_invoker_new(struct lmr_lambda_service *svc, struct lmr_invoker **out, struct lmr_err *err);

#endif
