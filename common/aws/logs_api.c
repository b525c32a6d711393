/* The CloudWatch Logs API for log groups (JSON 1.1). */
#include "aws/logs_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LOGS_RESPONSE_BYTES (1u << 20)

/* The values PutRetentionPolicy accepts (botocore's logs model, retentionInDays). */
static const uint32_t retention_days_allowed[] = {1,   3,   5,   7,   14,   30,   60,   90,   120,  150,  180,
                                                  365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653};

bool lmr_logs_retention_valid(uint32_t days)
{
    for (size_t i = 0; i < sizeof retention_days_allowed / sizeof retention_days_allowed[0]; i++)
        if (retention_days_allowed[i] == days)
            return true;
    return false;
}

const char *lmr_logs_retention_values(void)
{
    return "1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653";
}

static enum lmr_result call(struct lmr_aws_client *c, const char *action, json_t *body, const char *resource,
                            json_t **answer, struct lmr_aws_response *resp, struct lmr_err *err)
{
    char target[96];
    snprintf(target, sizeof target, "Logs_20140328.%s", action);
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    struct lmr_aws_header hs[] = {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
    struct lmr_aws_request req = {.service = LMR_AWS_LOGS,
                                  .method = "POST",
                                  .path = "/",
                                  .headers = hs,
                                  .n_headers = 2,
                                  .body = text,
                                  .body_len = strlen(text),
                                  .resource = resource,
                                  .max_response_bytes = MAX_LOGS_RESPONSE_BYTES};
    enum lmr_result r = lmr_aws_request(c, &req, resp, err);
    free(text);
    if (!r && answer) {
        *answer = json_loadb(resp->body.data ? resp->body.data : "{}", resp->body.len ? resp->body.len : 2, 0, NULL);
        if (!*answer)
            r = lmr_fail(err, LMR_ERR_FORMAT, "%s: CloudWatch Logs answered with JSON that does not parse", resource);
    }
    return r;
}

static enum lmr_result call_simple(struct lmr_aws_client *c, const char *action, json_t *body, const char *name,
                                   json_t **answer, struct lmr_err *err)
{
    char resource[600];
    snprintf(resource, sizeof resource, "log group '%s'", name);
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = body ? call(c, action, body, resource, answer, &resp, err)
                             : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    if (r && !strcmp(resp.aws_code, "ResourceAlreadyExistsException"))
        r = lmr_fail(err, LMR_ERR_EXISTS, "%s already exists (ResourceAlreadyExistsException)", resource);
    lmr_aws_response_clean_up(&resp);
    json_decref(body);
    return r;
}

enum lmr_result lmr_logs_create_log_group(struct lmr_aws_client *c, const char *name, json_t *tags, struct lmr_err *err)
{
    json_t *b = json_pack("{s:s}", "logGroupName", name);
    if (b && tags && json_object_size(tags))
        json_object_set(b, "tags", tags);
    return call_simple(c, "CreateLogGroup", b, name, NULL, err);
}

enum lmr_result lmr_logs_put_retention_policy(struct lmr_aws_client *c, const char *name, uint32_t days,
                                              struct lmr_err *err)
{
    return call_simple(c, "PutRetentionPolicy",
                       json_pack("{s:s, s:i}", "logGroupName", name, "retentionInDays", (int)days), name, NULL, err);
}

enum lmr_result lmr_logs_describe_log_group(struct lmr_aws_client *c, const char *name, bool *found,
                                            uint32_t *retention_days, struct lmr_err *err)
{
    *found = false;
    char token[2048] = "";
    for (int page = 0; page < 1000; page++) {
        json_t *b = json_pack("{s:s}", "logGroupNamePrefix", name), *answer = NULL;
        if (b && token[0])
            json_object_set_new(b, "nextToken", json_string(token));
        enum lmr_result r = call_simple(c, "DescribeLogGroups", b, name, &answer, err);
        if (r)
            return r;
        json_t *g;
        size_t i;
        json_array_foreach(json_object_get(answer, "logGroups"), i, g)
        {
            const char *n = json_string_value(json_object_get(g, "logGroupName"));
            if (n && !strcmp(n, name)) {
                *found = true;
                if (retention_days)
                    *retention_days = (uint32_t)json_integer_value(json_object_get(g, "retentionInDays"));
            }
        }
        const char *next = json_string_value(json_object_get(answer, "nextToken"));
        snprintf(token, sizeof token, "%s", next && !*found ? next : "");
        json_decref(answer);
        if (!token[0])
            break;
    }
    return LMR_OK;
}

enum lmr_result lmr_logs_list_tags(struct lmr_aws_client *c, const char *name, json_t **tags, struct lmr_err *err)
{
    json_t *answer = NULL;
    enum lmr_result r =
        call_simple(c, "ListTagsLogGroup", json_pack("{s:s}", "logGroupName", name), name, &answer, err);
    if (r)
        return r;
    json_t *t = json_object_get(answer, "tags");
    *tags = json_is_object(t) ? json_deep_copy(t) : json_object();
    json_decref(answer);
    return LMR_OK;
}

enum lmr_result lmr_logs_delete_log_group(struct lmr_aws_client *c, const char *name, struct lmr_err *err)
{
    return call_simple(c, "DeleteLogGroup", json_pack("{s:s}", "logGroupName", name), name, NULL, err);
}
