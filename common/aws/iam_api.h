/*
 * The IAM API (query protocol, version 2010-05-08, XML answers) for execution roles: create,
 * read (with tags), delete, and the inline policies on them. IAM is global: requests go to
 * https://iam.amazonaws.com (or AWS_ENDPOINT_URL_IAM) and are signed for us-east-1.
 */
#ifndef LMR_AWS_IAM_API_H
#define LMR_AWS_IAM_API_H

#include <jansson.h>

#include "aws/http.h"

/* IAM's limit on role names (botocore's iam model: roleNameType, 1-64 of [\w+=,.@-]). */
#define LMR_IAM_ROLE_NAME_MAX 64

struct lmr_iam_role {
    char name[LMR_IAM_ROLE_NAME_MAX + 1];
    char arn[512];
    char account_id[16];        /* from the ARN: arn:PARTITION:iam::ACCOUNT:role/... */
    json_t *tags;               /* {"key": "value", ...} (owned) */
    json_t *assume_role_policy; /* the trust policy document, parsed (owned; NULL if absent) */
};

/** Release the role's JSON members. NULL-safe. */
void lmr_iam_role_clean_up(struct lmr_iam_role *role);

/** @return the role name of a role ARN (the part after the last '/'), or NULL if arn is not a role ARN. */
const char *lmr_iam_role_name_of_arn(const char *arn);

/**
 * CreateRole with a trust policy (JSON text) and tags ({"key": "value"}, Optional).
 * @return LMR_ERR_EXISTS when a role of that name exists (EntityAlreadyExists).
 */
enum lmr_result lmr_iam_create_role(struct lmr_aws_client *c, const char *name, const char *assume_role_policy,
                                    const char *description, json_t *tags, struct lmr_iam_role *out,
                                    struct lmr_err *err);

/** GetRole. @return LMR_ERR_NOT_FOUND when there is no such role (NoSuchEntity). */
enum lmr_result lmr_iam_get_role(struct lmr_aws_client *c, const char *name, struct lmr_iam_role *out,
                                 struct lmr_err *err);

/** DeleteRole (its inline policies must be deleted first). @return LMR_ERR_NOT_FOUND when absent. */
enum lmr_result lmr_iam_delete_role(struct lmr_aws_client *c, const char *name, struct lmr_err *err);

/** PutRolePolicy: create or replace the inline policy policy_name (JSON text). */
enum lmr_result lmr_iam_put_role_policy(struct lmr_aws_client *c, const char *role, const char *policy_name,
                                        const char *document, struct lmr_err *err);

/** GetRolePolicy: *document gets the policy parsed (caller owns). @return LMR_ERR_NOT_FOUND when absent. */
enum lmr_result lmr_iam_get_role_policy(struct lmr_aws_client *c, const char *role, const char *policy_name,
                                        json_t **document, struct lmr_err *err);

/** DeleteRolePolicy. @return LMR_ERR_NOT_FOUND when absent. */
enum lmr_result lmr_iam_delete_role_policy(struct lmr_aws_client *c, const char *role, const char *policy_name,
                                           struct lmr_err *err);

#endif
