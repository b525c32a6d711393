/*
 * Deployments: one Lambda function per deployable role (common/lambda/roles.h), named
 * PREFIX-ROLE, an execution role PREFIX-role with a least-privilege inline policy (unless the
 * caller brings a role), a CloudWatch Logs group /aws/lambda/PREFIX-ROLE per function with a
 * retention, and optionally the Kinesis event source mapping of PREFIX-stream.
 *
 * Everything deploy creates carries the tag lambdamr:deployment=PREFIX; undeploy removes
 * exactly the resources of the deployment that carry it, and nothing else. Deploy is
 * idempotent: it compares the zip's CodeSha256 and each setting with what exists and changes
 * only what differs (it says when nothing did). Every input is checked before the first call,
 * and a failure undoes what the same run created.
 *
 * The same settings also give the IAM policy on its own (--print-policy) and a CloudFormation
 * template (--template) that creates the same resources with the code taken from S3.
 */
#ifndef LMR_DEPLOY_H
#define LMR_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "util/result.h"

#define LMR_DEPLOY_TAG "lambdamr:deployment" /* tag key on everything deploy creates; value: the prefix */
#define LMR_DEPLOY_POLICY_NAME "lambdamr"    /* the inline policy on the execution role */
#define LMR_DEPLOY_DEFAULT_TIMEOUT_S 900u
#define LMR_DEPLOY_DEFAULT_RETENTION_DAYS 7u
#define LMR_DEPLOY_ROLE_WAIT_MS 120000u /* how long CreateFunction waits for a new role to be assumable */
#define LMR_DEPLOY_MAX_BUCKETS 64

struct lmr_deploy_options {
    const char *function_prefix; /* Required: functions are PREFIX-mapper, PREFIX-reducer, ... */
    const char *zip_path;        /* Required to deploy; Optional (checked if given) with a template */
    uint32_t memory_mb;          /* Optional: default LMR_MEMORY_DEFAULT_MB (lambda/memory.h) */
    uint32_t timeout_s;          /* Optional: default 900 */
    const char *role_arn;        /* Optional: an existing execution role; default: create PREFIX-role */
    const char *const *buckets;  /* Optional: S3 buckets the functions may use (input, output, work) */
    size_t n_buckets;
    uint32_t log_retention_days; /* Optional: default 7 */
    const char *architecture;    /* Optional: x86_64 or arm64; default: this build's */
    /* The Kinesis event source mapping of PREFIX-stream (all Optional; only with stream_arn). */
    const char *stream_arn;
    uint32_t window_s;               /* TumblingWindowInSeconds, 0-900 (default 60) */
    uint32_t batch_size;             /* 1-10,000 (default 100) */
    uint32_t parallelization_factor; /* 1-10 (default 1) */
    int32_t max_retry_attempts;      /* -1 (forever) to 10,000 (default -1) */
    bool max_retry_attempts_given;
    const char *on_failure_arn;    /* an SQS queue or SNS topic for batches that keep failing */
    const char *starting_position; /* TRIM_HORIZON (default) or LATEST */
    FILE *progress;                /* Optional: one line per action; NULL = quiet */
};

/** @return the architecture of this build: "x86_64" or "arm64". */
const char *lmr_deploy_build_architecture(void);

/**
 * Fill in the defaults and check every setting without calling anything: the prefix (names of
 * at most 64 characters of letters, digits, '-' and '_'), memory, timeout, retention,
 * architecture, buckets, stream settings, and the zip if given (a 'bootstrap' at its root,
 * at most 50 MB zipped and 250 MB unzipped). Each refusal names the AWS error type that the
 * call would have met and what to change. @return LMR_ERR_INVALID or LMR_ERR_TOO_LARGE.
 */
enum lmr_result lmr_deploy_validate(struct lmr_deploy_options *o, struct lmr_err *err);

/**
 * The execution role's inline policy. account is the AWS account id, or NULL for "*"; region
 * the functions' region. for_template: ARNs as Fn::Sub strings with ${AWS::Partition},
 * ${AWS::Region} and ${AWS::AccountId}, and the template's optional bucket. @return a new object.
 */
json_t *lmr_deploy_policy(const struct lmr_deploy_options *o, const char *region, const char *account,
                          bool for_template);

/** The execution role's trust policy (lambda.amazonaws.com may assume it). @return a new object. */
json_t *lmr_deploy_trust_policy(void);

/** The CloudFormation template (JSON, which is also YAML) of the deployment. @return a new object. */
json_t *lmr_deploy_template(const struct lmr_deploy_options *o);

/**
 * Deploy (validate first). Creates or updates the resources through the Lambda, IAM and
 * CloudWatch Logs APIs, undoing what this run created when a step fails. *changes (Optional)
 * gets the number of resources created or changed (0: everything was up to date).
 */
enum lmr_result lmr_deploy(struct lmr_deploy_options *o, unsigned *changes, struct lmr_err *err);

/**
 * Remove the deployment PREFIX: its event source mappings, functions, log groups and
 * execution role, each only if it carries lambdamr:deployment=PREFIX. *removed (Optional)
 * gets how many resources were removed.
 */
enum lmr_result lmr_undeploy(const char *function_prefix, FILE *progress, unsigned *removed, struct lmr_err *err);

/* ---- the package ---------------------------------------------------------------------------------------------- */

struct lmr_zip_info {
    uint64_t zip_bytes;
    uint64_t unzipped_bytes;
    uint64_t entries;
    bool has_bootstrap;
    bool bootstrap_executable; /* by its Unix mode; true when the zip records none */
};

/** Read a zip's directory. @return LMR_ERR_FORMAT when it is not a zip, LMR_ERR_IO when unreadable. */
enum lmr_result lmr_zip_inspect(const char *path, struct lmr_zip_info *info, struct lmr_err *err);

#endif
