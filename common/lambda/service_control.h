/*
 * Private to the embedded Lambda service: Lambda's function control plane, so that the AWS CLI
 * and SDKs (and `lambdamr deploy`) can manage functions of `lambdamr serve` as they do on AWS.
 * Code: service_control.c (state, operations, routing), service_control_request.c (request
 * checks), service_control_code.c (fetching and unpacking code); service_control_internal.h.
 *
 * Operations, with AWS's REST paths, JSON shapes (botocore's lambda 2015-03-31 model), status
 * codes and error types (x-amzn-ErrorType and a JSON body):
 *   CreateFunction             POST   /2015-03-31/functions                     201
 *   ListFunctions              GET    /2015-03-31/functions?Marker=&MaxItems=   200
 *   GetFunction                GET    /2015-03-31/functions/{name}              200
 *   DeleteFunction             DELETE /2015-03-31/functions/{name}              204
 *   GetFunctionConfiguration   GET    /2015-03-31/functions/{name}/configuration
 *   UpdateFunctionConfiguration PUT   /2015-03-31/functions/{name}/configuration
 *   UpdateFunctionCode         PUT    /2015-03-31/functions/{name}/code
 *   PutFunctionConcurrency     PUT    /2017-10-31/functions/{name}/concurrency
 *   DeleteFunctionConcurrency  DELETE /2017-10-31/functions/{name}/concurrency  204
 *   GetFunctionConcurrency     GET    /2019-09-30/functions/{name}/concurrency
 * and GET /lambdamr/code/{name}, the zip that GetFunction's Code.Location points at.
 *
 * Code comes as Code.ZipFile (base64 in the request, which must be smaller than 69905067 bytes,
 * else RequestEntityTooLargeException) or as S3Bucket/S3Key, read through the store (so
 * AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL are honoured). Each upload is kept as STATE/functions/
 * NAME-ID/code.zip and unpacked (lambda/zip_unpack.h) into STATE/functions/NAME-ID/task, the
 * function's task root: its environments run task/bootstrap there with LAMBDA_TASK_ROOT, _HANDLER,
 * Environment.Variables, memory and timeout from the configuration.
 *
 * States, as on AWS: a created function is Pending (LastUpdateStatus InProgress) for
 * update_delay_ms, and an update stays InProgress as long; in that window invocations of a
 * Pending function and any further update get ResourceConflictException, and invocations of an
 * updating function still run the previous code and configuration. When the window ends the
 * update takes effect: new environments get the new code, warm ones of the old code are retired
 * (busy ones after their invocation), and the old task root is removed once none of them runs.
 * Functions registered with --function appear too (Runtime provided.al2023, their executable as
 * the code) and can be updated and deleted like the others.
 */
#ifndef LMR_LAMBDA_SERVICE_CONTROL_H
#define LMR_LAMBDA_SERVICE_CONTROL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "lambda/service_internal.h"

/* Lambda's limits the control plane applies. */
#define LMR_LAMBDA_CODE_REQUEST_MAX_BYTES 69905066u      /* "Request must be smaller than 69905067 bytes" */
#define LMR_LAMBDA_CODE_STORAGE_MAX_BYTES 80530636800ull /* 75 GB of zips per account (region) */
#define LMR_LAMBDA_ENV_VARS_MAX_BYTES 4096               /* Environment.Variables, as JSON */
#define LMR_LAMBDA_UNRESERVED_MIN 100                    /* of the account's 1000 concurrent executions */
#define LMR_LAMBDA_ACCOUNT_CONCURRENCY 1000
#define LMR_LAMBDA_LIST_DEFAULT_ITEMS 50
/* Ours: how many functions and how many code uploads in flight (bytes held in memory). */
#define LMR_LAMBDA_FUNCTIONS_MAX 1024
#define LMR_LAMBDA_UPLOADS_MAX_BYTES (4ull * LMR_LAMBDA_CODE_REQUEST_MAX_BYTES)
#define LMR_LAMBDA_UPDATE_DELAY_DEFAULT_MS 300
#define LMR_LAMBDA_API_DEFAULT_MEMORY_MB 128 /* CreateFunction without MemorySize, as on AWS */
#define LMR_LAMBDA_API_DEFAULT_TIMEOUT_S 3
#define LMR_LAMBDA_ACCOUNT_ID "000000000000"

struct lmr_svc_control;
struct lmr_svc_fn_ctl;

/* One HTTP request as the front end collected it. */
struct lmr_svc_control_request {
    const char *method;
    const char *url;            /* path, already percent-decoded by libmicrohttpd */
    const struct lmr_buf *body; /* what was kept of the body */
    size_t total_bytes;         /* the body's full size */
    bool too_big;               /* more than the route's cap arrived */
    bool refused;               /* the upload budget was exhausted */
};

/** Set up the control plane's state for svc (nothing on disk yet). */
enum lmr_result lmr_svc_control_new(struct lmr_lambda_service *svc, const struct lmr_lambda_service_options *opts,
                                    struct lmr_err *err);
/** Free deleted functions and remove the state dir if it is a temp dir. Environments must be gone. NULL-safe. */
void lmr_svc_control_destroy(struct lmr_lambda_service *svc);
/** Free a function's control-plane record. NULL-safe. */
void lmr_svc_fn_ctl_free(struct lmr_svc_fn_ctl *ctl);

/** Body cap for a request: LMR_LAMBDA_CODE_REQUEST_MAX_BYTES for code uploads, else 0 (the Invoke cap). */
size_t lmr_svc_control_body_cap(const char *method, const char *url);
/** Take bytes from the upload budget. @return false when it would go over LMR_LAMBDA_UPLOADS_MAX_BYTES. */
bool lmr_svc_control_reserve(struct lmr_lambda_service *svc, size_t bytes);
/** Give reserved bytes back (0 is a no-op). */
void lmr_svc_control_release(struct lmr_lambda_service *svc, size_t bytes);
/**
 * Answer req if it is a control-plane request. @return false if it is not (Invoke, unknown path);
 * true with *ret set when it was answered.
 */
bool lmr_svc_control_route(struct lmr_lambda_service *svc, struct MHD_Connection *c,
                           const struct lmr_svc_control_request *req, enum MHD_Result *ret);

/* Hooks of the service core (svc->mu held). */
/** Let a finished update take effect (swap in its code and configuration, retire older environments). */
void lmr_svc_control_tick_locked(struct lmr_svc_fn *fn);
/** @return "Pending" while fn cannot be invoked, else NULL. */
const char *lmr_svc_control_not_invocable_locked(struct lmr_svc_fn *fn);
/** @return true if an idle env should be retired instead of reused (older code, over the concurrency). */
bool lmr_svc_control_env_stale_locked(struct lmr_svc_fn *fn, struct lmr_svc_env *env);

/* From the HTTP front end (service_http.c). */
enum MHD_Result lmr_svc_http_reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                         const char *message, const char *request_id);

#endif
