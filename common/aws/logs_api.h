/*
 * The CloudWatch Logs API (JSON 1.1, target Logs_20140328) for the log groups of deployed
 * functions: create (with tags), set the retention, describe, list tags, delete.
 */
#ifndef LMR_AWS_LOGS_API_H
#define LMR_AWS_LOGS_API_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "aws/http.h"

/** @return true when days is a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ... 3653). */
bool lmr_logs_retention_valid(uint32_t days);
/** "1, 3, 5, 7, 14, ..." for messages. */
const char *lmr_logs_retention_values(void);

/** CreateLogGroup with tags ({"key": "value"}, Optional). @return LMR_ERR_EXISTS when it exists. */
enum lmr_result lmr_logs_create_log_group(struct lmr_aws_client *c, const char *name, json_t *tags,
                                          struct lmr_err *err);

/** PutRetentionPolicy. */
enum lmr_result lmr_logs_put_retention_policy(struct lmr_aws_client *c, const char *name, uint32_t days,
                                              struct lmr_err *err);

/**
 * DescribeLogGroups with name as the prefix, looking for exactly name. *found tells whether it
 * exists; *retention_days (Optional) gets its retention (0 = never expire).
 */
enum lmr_result lmr_logs_describe_log_group(struct lmr_aws_client *c, const char *name, bool *found,
                                            uint32_t *retention_days, struct lmr_err *err);

/** ListTagsLogGroup: *tags gets {"key": "value"} (caller owns). */
enum lmr_result lmr_logs_list_tags(struct lmr_aws_client *c, const char *name, json_t **tags, struct lmr_err *err);

/** DeleteLogGroup. @return LMR_ERR_NOT_FOUND when absent. */
enum lmr_result lmr_logs_delete_log_group(struct lmr_aws_client *c, const char *name, struct lmr_err *err);

#endif
