/*
 * The Lambda control-plane API (REST-JSON, API version 2015-03-31), through the AWS HTTP
 * client: functions (create with a zip, read, update code and configuration, delete, wait for
 * a function to settle) and event source mappings (create, list, update, delete).
 *
 * AWS requires a function to settle between changes: after CreateFunction its State is
 * Pending until Active, after UpdateFunctionCode or UpdateFunctionConfiguration its
 * LastUpdateStatus is InProgress until Successful (or Failed); a second update during
 * InProgress is refused with ResourceConflictException. lmr_lambda_wait_settled() polls
 * GetFunctionConfiguration until then.
 *
 * Everything here is written once for the project (deploy, the driver's --backend aws, tests);
 * callers never build these requests themselves.
 */
#ifndef LMR_AWS_LAMBDA_API_H
#define LMR_AWS_LAMBDA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aws/http.h"

/* Lambda's limits (botocore's lambda service model and the Lambda quotas page). */
#define LMR_LAMBDA_FUNCTION_NAME_MAX 64             /* a plain function name */
#define LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES 52428800ull /* 50 MB: ZipFile in CreateFunction/UpdateFunctionCode */
#define LMR_LAMBDA_UNZIPPED_MAX_BYTES 262144000ull  /* 250 MB: the unpacked package */
#define LMR_LAMBDA_TIMEOUT_MAX_S 900u               /* 15 minutes */
#define LMR_LAMBDA_RUNTIME_PROVIDED_AL2023 "provided.al2023"

/* What deploy sets on a function (CreateFunction / UpdateFunctionConfiguration). */
struct lmr_lambda_function_spec {
    const char *name;         /* Required: plain function name */
    const char *runtime;      /* Required: e.g. "provided.al2023" */
    const char *handler;      /* Required */
    const char *role_arn;     /* Required: execution role */
    uint32_t memory_mb;       /* Required: 128-10,240 */
    uint32_t timeout_s;       /* Required: 1-900 */
    const char *architecture; /* Required: "x86_64" or "arm64" (CreateFunction, UpdateFunctionCode) */
    const char *description;  /* Optional */
    json_t *environment;      /* Optional: {"NAME": "value", ...}; borrowed */
    json_t *tags;             /* Optional: {"key": "value", ...}, CreateFunction only; borrowed */
};

/* A function's configuration as GetFunctionConfiguration returns it (the fields deploy and run use). */
struct lmr_lambda_function_config {
    char name[LMR_LAMBDA_FUNCTION_NAME_MAX + 1];
    char arn[256];
    char runtime[32];
    char handler[128];
    char role_arn[256];
    uint32_t memory_mb;
    uint32_t timeout_s;
    char architecture[16]; /* the first of Architectures; "x86_64" when absent */
    char code_sha256[64];  /* base64 of the package's SHA-256 */
    uint64_t code_size_bytes;
    char state[24];              /* Pending, Active, Inactive, Failed; "" when absent */
    char last_update_status[24]; /* InProgress, Successful, Failed; "" when absent */
    char status_reason[256];     /* StateReason or LastUpdateStatusReason when failed */
    json_t *environment;         /* Environment.Variables (owned; an empty object when absent) */
    json_t *tags;                /* GetFunction only: Tags (owned; an empty object otherwise) */
};

/** Release the configuration's JSON members. NULL-safe. */
void lmr_lambda_function_config_clean_up(struct lmr_lambda_function_config *cfg);

/** @return the base64 SHA-256 of a zip, as Lambda reports it in CodeSha256 (out: 45 bytes at least). */
void lmr_lambda_code_sha256(const void *zip, size_t len, char *out, size_t cap);

/**
 * CreateFunction with the zip inline (Code.ZipFile). Retries, with backoff for up to
 * role_wait_ms (default 0 = no retry), the InvalidParameterValueException AWS gives while a
 * role IAM has just created cannot be assumed yet. @return LMR_ERR_EXISTS when the function
 * exists (ResourceConflictException), else as lmr_aws_request.
 */
enum lmr_result lmr_lambda_create_function(struct lmr_aws_client *c, const struct lmr_lambda_function_spec *spec,
                                           const void *zip, size_t zip_len, uint32_t role_wait_ms,
                                           struct lmr_lambda_function_config *out, struct lmr_err *err);

/** GetFunctionConfiguration. @return LMR_ERR_NOT_FOUND when there is no such function. out is cleaned up first. */
enum lmr_result lmr_lambda_get_function_configuration(struct lmr_aws_client *c, const char *name,
                                                      struct lmr_lambda_function_config *out, struct lmr_err *err);

/** GetFunction: the configuration plus the function's tags. @return LMR_ERR_NOT_FOUND when absent. */
enum lmr_result lmr_lambda_get_function(struct lmr_aws_client *c, const char *name,
                                        struct lmr_lambda_function_config *out, struct lmr_err *err);

/** UpdateFunctionCode with the zip inline and the architecture. Wait for it with lmr_lambda_wait_settled(). */
enum lmr_result lmr_lambda_update_function_code(struct lmr_aws_client *c, const char *name, const void *zip,
                                                size_t zip_len, const char *architecture, struct lmr_err *err);

/** UpdateFunctionConfiguration: runtime, handler, role, memory, timeout, description, environment of spec. */
enum lmr_result lmr_lambda_update_function_configuration(struct lmr_aws_client *c,
                                                         const struct lmr_lambda_function_spec *spec,
                                                         struct lmr_err *err);

/** DeleteFunction. @return LMR_ERR_NOT_FOUND when it does not exist. */
enum lmr_result lmr_lambda_delete_function(struct lmr_aws_client *c, const char *name, struct lmr_err *err);

/** PutFunctionConcurrency: reserve (and cap at) reserved concurrent executions for the function. */
enum lmr_result lmr_lambda_put_function_concurrency(struct lmr_aws_client *c, const char *name, uint32_t reserved,
                                                    struct lmr_err *err);

/**
 * Poll GetFunctionConfiguration until State is not Pending and LastUpdateStatus is not
 * InProgress, at most timeout_ms (default 0 = 5 minutes). @return LMR_ERR_FUNCTION when it ends
 * Failed (the reason in the message), LMR_ERR_TIMEOUT when it does not settle. out (Optional)
 * gets the last configuration.
 */
enum lmr_result lmr_lambda_wait_settled(struct lmr_aws_client *c, const char *name, uint32_t timeout_ms,
                                        struct lmr_lambda_function_config *out, struct lmr_err *err);

/* ---- event source mappings ---------------------------------------------------------------------------------- */

/* An event source mapping for a Kinesis stream (CreateEventSourceMapping). 0/NULL = AWS's default. */
struct lmr_lambda_esm_spec {
    const char *function_name;       /* Required */
    const char *event_source_arn;    /* Required: the Kinesis stream */
    const char *starting_position;   /* Optional: TRIM_HORIZON (default) or LATEST */
    uint32_t batch_size;             /* Optional: 1-10,000 */
    uint32_t tumbling_window_s;      /* Optional: 0-900 */
    uint32_t parallelization_factor; /* Optional: 1-10 */
    int32_t maximum_retry_attempts;  /* -1 (forever) to 10,000 */
    bool report_batch_item_failures; /* FunctionResponseTypes [ReportBatchItemFailures] */
    bool bisect_batch_on_function_error;
    const char *on_failure_destination; /* Optional: SQS queue or SNS topic ARN */
};

/** CreateEventSourceMapping. uuid (Optional, cap >= 64) gets the mapping's UUID. */
enum lmr_result lmr_lambda_create_event_source_mapping(struct lmr_aws_client *c, const struct lmr_lambda_esm_spec *spec,
                                                       char *uuid, size_t uuid_cap, struct lmr_err *err);

/** UpdateEventSourceMapping of uuid to spec (all fields but the stream and the starting position). */
enum lmr_result lmr_lambda_update_event_source_mapping(struct lmr_aws_client *c, const char *uuid,
                                                       const struct lmr_lambda_esm_spec *spec, struct lmr_err *err);

/**
 * ListEventSourceMappings of a function (all pages). *out gets a JSON array of the mappings as
 * AWS returns them (caller owns it). @return LMR_ERR_UNSUPPORTED when the endpoint does not
 * serve event source mappings at all (UnknownOperationException: lambdamr serve).
 */
enum lmr_result lmr_lambda_list_event_source_mappings(struct lmr_aws_client *c, const char *function_name, json_t **out,
                                                      struct lmr_err *err);

/** DeleteEventSourceMapping. @return LMR_ERR_NOT_FOUND when it does not exist. */
enum lmr_result lmr_lambda_delete_event_source_mapping(struct lmr_aws_client *c, const char *uuid, struct lmr_err *err);

/** @return true when an existing mapping (one element of the list) already has spec's settings. */
bool lmr_lambda_esm_matches(const json_t *mapping, const struct lmr_lambda_esm_spec *spec);

#endif
