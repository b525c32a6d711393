/*
 * Lambda's deployment package limits, as GetAccountSettings reports them (AccountLimit,
 * in bytes): CodeSizeZipped is the largest zip CreateFunction/UpdateFunctionCode accept
 * directly (larger ones must come from S3), CodeSizeUnzipped the largest a function's code
 * may be once extracted.
 */
#ifndef LMR_LAMBDA_LIMITS_H
#define LMR_LAMBDA_LIMITS_H

#define LMR_LAMBDA_ZIP_DIRECT_MAX_BYTES 52428800ull /* 50 MiB */
#define LMR_LAMBDA_UNZIPPED_MAX_BYTES 262144000ull  /* 250 MiB */

/* Invoke payload limits: a RequestResponse request and its response, and an Event request. */
#define LMR_LAMBDA_SYNC_PAYLOAD_MAX_BYTES (6u * 1024 * 1024)
#define LMR_LAMBDA_EVENT_PAYLOAD_MAX_BYTES (1u * 1024 * 1024)

/* The longest an invocation may run (seconds). The coordinator function gets it: --timeout is
 * the tasks', and the coordinator continues itself in a new invocation near its deadline. */
#define LMR_LAMBDA_TIMEOUT_MAX_S 900u
#define LMR_COORDINATOR_TIMEOUT_S LMR_LAMBDA_TIMEOUT_MAX_S

#endif
