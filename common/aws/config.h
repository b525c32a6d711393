/*
 * AWS credentials, region and endpoints, resolved the way the AWS SDKs do:
 *
 * credentials  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), which is also
 *              what the Lambda runtime gives a function; else the profile AWS_PROFILE
 *              (default "default") in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE,
 *              default ~/.aws/credentials), then in the config file (AWS_CONFIG_FILE, default
 *              ~/.aws/config, sections "[profile NAME]" or "[default]").
 * region       AWS_REGION, AWS_DEFAULT_REGION, the profile's "region", else us-east-1.
 * endpoints    AWS_ENDPOINT_URL_S3 / _LAMBDA / _KINESIS / _IAM / _LOGS / _CLOUDFORMATION, then
 *              AWS_ENDPOINT_URL, else the public endpoint of the region (IAM: the global
 *              https://iam.amazonaws.com). S3 uses path-style addressing on a custom
 *              endpoint and virtual-hosted addressing on AWS.
 *
 * The secret key and session token are never put into an error message or a log line.
 */
#ifndef LMR_AWS_CONFIG_H
#define LMR_AWS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/sigv4.h"
#include "util/result.h"

enum lmr_aws_service {
    LMR_AWS_S3,
    LMR_AWS_LAMBDA,
    LMR_AWS_KINESIS,
    LMR_AWS_IAM,            /* global: https://iam.amazonaws.com, signed for us-east-1 */
    LMR_AWS_LOGS,           /* CloudWatch Logs */
    LMR_AWS_CLOUDFORMATION, /* only its endpoint is resolved (deploy's templates are used by the AWS CLI) */
    LMR_AWS_SERVICE_COUNT
};

struct lmr_aws_config {
    struct lmr_aws_credentials creds;
    bool have_credentials;
    char region[64];
    char profile[128];                         /* the profile consulted ("default" unless AWS_PROFILE) */
    char creds_source[600];                    /* for messages: "environment variables", "profile 'x' in /path" */
    char endpoint[LMR_AWS_SERVICE_COUNT][512]; /* custom endpoint per service, "" = AWS's own */
};

/**
 * Resolve credentials, region and endpoints from the environment and the shared files.
 * Missing credentials are not an error here (have_credentials is false; requests then fail
 * with a message saying where credentials were looked for). A named profile (AWS_PROFILE)
 * that exists in neither file, or a half-set pair of variables, is an error.
 */
enum lmr_result lmr_aws_config_load(struct lmr_aws_config *cfg, struct lmr_err *err);

/** @return the service's signing name: "s3", "lambda", "kinesis", "iam", "logs", "cloudformation". */
const char *lmr_aws_service_name(enum lmr_aws_service svc);

/** @return the service's name for messages: "S3", "Lambda", "IAM", "CloudWatch Logs", ... */
const char *lmr_aws_service_title(enum lmr_aws_service svc);

/** @return the region requests to svc are signed for: the configured one, us-east-1 for IAM. */
const char *lmr_aws_signing_region(const struct lmr_aws_config *cfg, enum lmr_aws_service svc);

/** @return the variable that sets svc's endpoint: "AWS_ENDPOINT_URL_S3", ... */
const char *lmr_aws_service_endpoint_var(enum lmr_aws_service svc);
/**
 * The base URL for svc without a trailing '/': the custom endpoint if set, else
 * "https://SERVICE.REGION.amazonaws.com". *custom tells which (S3: path-style addressing).
 */
void lmr_aws_config_endpoint(const struct lmr_aws_config *cfg, enum lmr_aws_service svc, char *out, size_t cap,
                             bool *custom);

/**
 * Where credentials were looked for, as a sentence fragment for error messages
 * ("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or profile 'default' in ~/.aws/credentials or ~/.aws/config").
 */
void lmr_aws_config_describe_search(const struct lmr_aws_config *cfg, char *out, size_t cap);

#endif
