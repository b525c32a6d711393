/*
 * The "aws" invoker back-end: the Lambda Invoke API over HTTPS, signed with SigV4 (service
 * "lambda"), through the AWS HTTP client. It talks to AWS Lambda, or to any endpoint speaking
 * the same API (AWS_ENDPOINT_URL_LAMBDA, e.g. `lambdamr serve`).
 *
 * Functions may be names ("wc-mapper"), qualified names ("wc-mapper:prod"), partial ARNs or
 * ARNs; the function goes into the path percent-encoded ("wc-mapper%3Aprod") and is signed
 * with Lambda's double encoding. 429 TooManyRequestsException and 5xx answers are retried
 * with exponential backoff and full jitter; other errors are not (a sync invocation that
 * timed out on the network is not repeated behind the caller's back).
 */
#ifndef LMR_LAMBDA_AWS_INVOKER_H
#define LMR_LAMBDA_AWS_INVOKER_H

#include <stdint.h>

#include "aws/config.h"
#include "lambda/invoker.h"

struct lmr_aws_invoker_options {
    const struct lmr_aws_config *config; /* Optional: NULL = resolve from the environment */
    unsigned max_retries;                /* Optional: retries of 429/5xx answers; default 8 */
    uint32_t backoff_base_ms;            /* Optional: default 100 */
    uint32_t backoff_cap_ms;             /* Optional: default 10000 */
    uint32_t request_timeout_ms;         /* Optional: per HTTP request; default 15 min + 60 s */
};

/** Create the invoker. @return LMR_ERR_* from the configuration. */
enum lmr_result lmr_aws_invoker_new(const struct lmr_aws_invoker_options *opts, struct lmr_invoker **out,
                                    struct lmr_err *err);

#endif
