/* The Lambda control-plane API: functions and event source mappings (REST-JSON 2015-03-31). */
#include "aws/lambda_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

#define FUNCTIONS_PATH "/2015-03-31/functions"
#define ESM_PATH "/2015-03-31/event-source-mappings/"
#define MAX_CONTROL_RESPONSE_BYTES (4u << 20)

void lmr_lambda_function_config_clean_up(struct lmr_lambda_function_config *cfg)
{
    if (!cfg)
        return;
    json_decref(cfg->environment);
    json_decref(cfg->tags);
    cfg->environment = cfg->tags = NULL;
}

void lmr_lambda_code_sha256(const void *zip, size_t len, char *out, size_t cap)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(zip, len, md);
    struct lmr_buf b;
    lmr_buf_init(&b, 128);
    if (lmr_base64_append(&b, md, sizeof md))
        snprintf(out, cap, "%s", "");
    else
        snprintf(out, cap, "%s", b.data);
    lmr_buf_clean_up(&b);
}

/* One JSON request: body (Optional) is serialised, the answer (Optional) parsed into *answer. */
static enum lmr_result call(struct lmr_aws_client *c, const char *method, const char *path, const char *query,
                            json_t *body, const char *resource, json_t **answer, struct lmr_aws_response *resp,
                            struct lmr_err *err)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text)
        return lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the Lambda request", resource);
    struct lmr_aws_header hs[] = {{"Content-Type", "application/json"}};
    struct lmr_aws_request req = {.service = LMR_AWS_LAMBDA,
                                  .method = method,
                                  .path = path,
                                  .query = query,
                                  .headers = hs,
                                  .n_headers = body ? 1 : 0,
                                  .body = text,
                                  .body_len = text ? strlen(text) : 0,
                                  .resource = resource,
                                  .max_response_bytes = MAX_CONTROL_RESPONSE_BYTES};
    enum lmr_result r = lmr_aws_request(c, &req, resp, err);
    free(text);
    if (!r && answer) {
        json_error_t je;
        *answer = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, &je) : json_object();
        if (!*answer)
            r = lmr_fail(err, LMR_ERR_FORMAT, "%s: Lambda answered with JSON that does not parse (%s)", resource,
                         je.text);
    }
    return r;
}

static enum lmr_result call_simple(struct lmr_aws_client *c, const char *method, const char *path, const char *query,
                                   json_t *body, const char *resource, json_t **answer, struct lmr_err *err)
{
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = call(c, method, path, query, body, resource, answer, &resp, err);
    lmr_aws_response_clean_up(&resp);
    return r;
}

static void copy_str(char *dst, size_t cap, json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    snprintf(dst, cap, "%s", v ? v : "");
}

static void parse_config(json_t *j, struct lmr_lambda_function_config *out)
{
    copy_str(out->name, sizeof out->name, j, "FunctionName");
    copy_str(out->arn, sizeof out->arn, j, "FunctionArn");
    copy_str(out->runtime, sizeof out->runtime, j, "Runtime");
    copy_str(out->handler, sizeof out->handler, j, "Handler");
    copy_str(out->role_arn, sizeof out->role_arn, j, "Role");
    copy_str(out->code_sha256, sizeof out->code_sha256, j, "CodeSha256");
    copy_str(out->state, sizeof out->state, j, "State");
    copy_str(out->last_update_status, sizeof out->last_update_status, j, "LastUpdateStatus");
    copy_str(out->status_reason, sizeof out->status_reason, j, "LastUpdateStatusReason");
    if (!out->status_reason[0])
        copy_str(out->status_reason, sizeof out->status_reason, j, "StateReason");
    out->memory_mb = (uint32_t)json_integer_value(json_object_get(j, "MemorySize"));
    out->timeout_s = (uint32_t)json_integer_value(json_object_get(j, "Timeout"));
    out->code_size_bytes = (uint64_t)json_integer_value(json_object_get(j, "CodeSize"));
    const char *arch = json_string_value(json_array_get(json_object_get(j, "Architectures"), 0));
    snprintf(out->architecture, sizeof out->architecture, "%s", arch ? arch : "x86_64");
    json_t *vars = json_object_get(json_object_get(j, "Environment"), "Variables");
    json_decref(out->environment);
    out->environment = json_is_object(vars) ? json_deep_copy(vars) : json_object();
    if (!out->tags)
        out->tags = json_object();
}

static void function_path(char *out, size_t cap, const char *name, const char *suffix)
{
    struct lmr_buf b;
    lmr_buf_init(&b, 1024);
    if (lmr_aws_uri_encode(&b, name, strlen(name), false))
        snprintf(out, cap, FUNCTIONS_PATH "/invalid%s", suffix);
    else
        snprintf(out, cap, FUNCTIONS_PATH "/%s%s", b.data, suffix);
    lmr_buf_clean_up(&b);
}

/* The fields UpdateFunctionConfiguration and CreateFunction share. */
static json_t *config_body(const struct lmr_lambda_function_spec *spec)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "FunctionName", spec->name, "Runtime", spec->runtime,
                          "Handler", spec->handler, "Role", spec->role_arn, "MemorySize", (int)spec->memory_mb,
                          "Timeout", (int)spec->timeout_s);
    if (b && spec->description)
        json_object_set_new(b, "Description", json_string(spec->description));
    if (b)
        json_object_set_new(b, "Environment",
                            json_pack("{s:O}", "Variables", spec->environment ? spec->environment : json_object()));
    return b;
}

static bool role_not_assumable_yet(const struct lmr_aws_response *resp)
{
    return !strcmp(resp->aws_code, "InvalidParameterValueException") && strstr(resp->aws_message, "cannot be assumed");
}

enum lmr_result lmr_lambda_create_function(struct lmr_aws_client *c, const struct lmr_lambda_function_spec *spec,
                                           const void *zip, size_t zip_len, uint32_t role_wait_ms,
                                           struct lmr_lambda_function_config *out, struct lmr_err *err)
{
    char resource[128];
    snprintf(resource, sizeof resource, "Lambda function '%s'", spec->name);
    struct lmr_buf zip64;
    lmr_buf_init(&zip64, lmr_base64_len(zip_len) + 16);
    json_t *body = config_body(spec);
    enum lmr_result r = body ? lmr_base64_append(&zip64, zip, zip_len)
                             : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    if (!r) {
        json_object_set_new(body, "Code", json_pack("{s:s}", "ZipFile", zip64.data));
        json_object_set_new(body, "PackageType", json_string("Zip"));
        json_object_set_new(body, "Architectures", json_pack("[s]", spec->architecture));
        if (spec->tags)
            json_object_set(body, "Tags", spec->tags);
    }
    lmr_buf_clean_up(&zip64);
    if (r) {
        json_decref(body);
        return lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory encoding the %zu-byte zip", resource, zip_len);
    }
    double t0 = lmr_mono_ms();
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    json_t *answer = NULL;
    for (unsigned attempt = 1;; attempt++) {
        r = call(c, "POST", FUNCTIONS_PATH, NULL, body, resource, &answer, &resp, err);
        if (!r || !role_not_assumable_yet(&resp) || lmr_mono_ms() - t0 >= role_wait_ms)
            break;
        uint64_t wait = lmr_backoff_ms(attempt, 500, 5000);
        LMR_INFO("%s: the execution role is not assumable yet (%s); retrying in %llu ms", resource, resp.aws_message,
                 (unsigned long long)wait);
        lmr_sleep_ms(wait);
    }
    if (r && !strcmp(resp.aws_code, "ResourceConflictException"))
        r = lmr_fail(err, LMR_ERR_EXISTS, "%s already exists (ResourceConflictException: %s)", resource,
                     resp.aws_message);
    lmr_aws_response_clean_up(&resp);
    json_decref(body);
    if (!r && out)
        parse_config(answer, out);
    json_decref(answer);
    return r;
}

/* GET a function (suffix "": GetFunction, with the tags and the configuration inside; suffix
   "/configuration": GetFunctionConfiguration, the configuration itself) into *out. */
static enum lmr_result get_function(struct lmr_aws_client *c, const char *name, const char *suffix,
                                    struct lmr_lambda_function_config *out, struct lmr_err *err)
{
    char path[512], resource[128];
    function_path(path, sizeof path, name, suffix);
    snprintf(resource, sizeof resource, "Lambda function '%s'", name);
    json_t *answer = NULL;
    enum lmr_result r = call_simple(c, "GET", path, NULL, NULL, resource, &answer, err);
    lmr_lambda_function_config_clean_up(out);
    if (!r && !*suffix) {
        json_t *tags = json_object_get(answer, "Tags");
        out->tags = json_is_object(tags) ? json_deep_copy(tags) : json_object();
        parse_config(json_object_get(answer, "Configuration"), out);
    } else if (!r) {
        parse_config(answer, out);
    }
    json_decref(answer);
    return r;
}

enum lmr_result lmr_lambda_get_function_configuration(struct lmr_aws_client *c, const char *name,
                                                      struct lmr_lambda_function_config *out, struct lmr_err *err)
{
    return get_function(c, name, "/configuration", out, err);
}

enum lmr_result lmr_lambda_get_function(struct lmr_aws_client *c, const char *name,
                                        struct lmr_lambda_function_config *out, struct lmr_err *err)
{
    return get_function(c, name, "", out, err);
}

enum lmr_result lmr_lambda_update_function_code(struct lmr_aws_client *c, const char *name, const void *zip,
                                                size_t zip_len, const char *architecture, struct lmr_err *err)
{
    char path[512], resource[128];
    function_path(path, sizeof path, name, "/code");
    snprintf(resource, sizeof resource, "Lambda function '%s'", name);
    struct lmr_buf zip64;
    lmr_buf_init(&zip64, lmr_base64_len(zip_len) + 16);
    if (lmr_base64_append(&zip64, zip, zip_len)) {
        lmr_buf_clean_up(&zip64);
        return lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory encoding the %zu-byte zip", resource, zip_len);
    }
    json_t *body = json_pack("{s:s, s:[s]}", "ZipFile", zip64.data, "Architectures", architecture);
    lmr_buf_clean_up(&zip64);
    enum lmr_result r = body ? call_simple(c, "PUT", path, NULL, body, resource, NULL, err)
                             : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    json_decref(body);
    return r;
}

enum lmr_result lmr_lambda_update_function_configuration(struct lmr_aws_client *c,
                                                         const struct lmr_lambda_function_spec *spec,
                                                         struct lmr_err *err)
{
    char path[512], resource[128];
    function_path(path, sizeof path, spec->name, "/configuration");
    snprintf(resource, sizeof resource, "Lambda function '%s'", spec->name);
    json_t *body = config_body(spec);
    if (body)
        json_object_del(body, "FunctionName");
    enum lmr_result r = body ? call_simple(c, "PUT", path, NULL, body, resource, NULL, err)
                             : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    json_decref(body);
    return r;
}

enum lmr_result lmr_lambda_delete_function(struct lmr_aws_client *c, const char *name, struct lmr_err *err)
{
    char path[512], resource[128];
    function_path(path, sizeof path, name, "");
    snprintf(resource, sizeof resource, "Lambda function '%s'", name);
    return call_simple(c, "DELETE", path, NULL, NULL, resource, NULL, err);
}

enum lmr_result lmr_lambda_put_function_concurrency(struct lmr_aws_client *c, const char *name, uint32_t reserved,
                                                    struct lmr_err *err)
{
    char path[512], resource[128];
    snprintf(path, sizeof path, "/2017-10-31/functions/%s/concurrency", name);
    snprintf(resource, sizeof resource, "Lambda function '%s'", name);
    json_t *body = json_pack("{s:I}", "ReservedConcurrentExecutions", (json_int_t)reserved);
    enum lmr_result r = body ? call_simple(c, "PUT", path, NULL, body, resource, NULL, err)
                             : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory", resource);
    json_decref(body);
    return r;
}

enum lmr_result lmr_lambda_wait_settled(struct lmr_aws_client *c, const char *name, uint32_t timeout_ms,
                                        struct lmr_lambda_function_config *out, struct lmr_err *err)
{
    struct lmr_lambda_function_config local = {0}, *cfg = out ? out : &local;
    double t0 = lmr_mono_ms();
    uint32_t limit_ms = timeout_ms ? timeout_ms : 300000;
    enum lmr_result r;
    for (unsigned attempt = 1;; attempt++) {
        if ((r = lmr_lambda_get_function_configuration(c, name, cfg, err)))
            break;
        bool busy = !strcmp(cfg->state, "Pending") || !strcmp(cfg->last_update_status, "InProgress");
        if (!strcmp(cfg->state, "Failed") || !strcmp(cfg->last_update_status, "Failed")) {
            r = lmr_fail(err, LMR_ERR_FUNCTION,
                         "Lambda function '%s': the last change failed (State %s, LastUpdateStatus %s: %s); fix the "
                         "cause and deploy again",
                         name, cfg->state, cfg->last_update_status,
                         cfg->status_reason[0] ? cfg->status_reason : "no reason given");
            break;
        }
        if (!busy)
            break;
        if (lmr_mono_ms() - t0 >= limit_ms) {
            r = lmr_fail(err, LMR_ERR_TIMEOUT, "Lambda function '%s' is still %s after %u s; wait and deploy again",
                         name, !strcmp(cfg->state, "Pending") ? "Pending" : "InProgress", limit_ms / 1000);
            break;
        }
        lmr_sleep_ms(lmr_backoff_ms(attempt, 100, 2000) + 50);
    }
    if (!out)
        lmr_lambda_function_config_clean_up(&local);
    return r;
}

/* ---- event source mappings ---------------------------------------------------------------------------------- */

static json_t *esm_body(const struct lmr_lambda_esm_spec *s, bool create)
{
    json_t *b = json_pack("{s:s}", "FunctionName", s->function_name);
    if (!b)
        return NULL;
    if (create) {
        json_object_set_new(b, "EventSourceArn", json_string(s->event_source_arn));
        json_object_set_new(b, "StartingPosition",
                            json_string(s->starting_position ? s->starting_position : "TRIM_HORIZON"));
    }
    if (s->batch_size)
        json_object_set_new(b, "BatchSize", json_integer(s->batch_size));
    if (s->tumbling_window_s)
        json_object_set_new(b, "TumblingWindowInSeconds", json_integer(s->tumbling_window_s));
    if (s->parallelization_factor)
        json_object_set_new(b, "ParallelizationFactor", json_integer(s->parallelization_factor));
    json_object_set_new(b, "MaximumRetryAttempts", json_integer(s->maximum_retry_attempts));
    json_object_set_new(b, "BisectBatchOnFunctionError", json_boolean(s->bisect_batch_on_function_error));
    json_object_set_new(b, "FunctionResponseTypes",
                        s->report_batch_item_failures ? json_pack("[s]", "ReportBatchItemFailures") : json_array());
    if (s->on_failure_destination)
        json_object_set_new(b, "DestinationConfig",
                            json_pack("{s:{s:s}}", "OnFailure", "Destination", s->on_failure_destination));
    return b;
}

enum lmr_result lmr_lambda_create_event_source_mapping(struct lmr_aws_client *c, const struct lmr_lambda_esm_spec *spec,
                                                       char *uuid, size_t uuid_cap, struct lmr_err *err)
{
    char resource[512];
    snprintf(resource, sizeof resource, "event source mapping of '%s' to %s", spec->function_name,
             spec->event_source_arn);
    json_t *body = esm_body(spec, true), *answer = NULL;
    enum lmr_result r = body ? call_simple(c, "POST", ESM_PATH, NULL, body, resource, &answer, err)
                             : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    if (!r && uuid)
        copy_str(uuid, uuid_cap, answer, "UUID");
    json_decref(body);
    json_decref(answer);
    return r;
}

enum lmr_result lmr_lambda_update_event_source_mapping(struct lmr_aws_client *c, const char *uuid,
                                                       const struct lmr_lambda_esm_spec *spec, struct lmr_err *err)
{
    char path[256], resource[256];
    snprintf(path, sizeof path, ESM_PATH "%s", uuid);
    snprintf(resource, sizeof resource, "event source mapping %s of '%s'", uuid, spec->function_name);
    json_t *body = esm_body(spec, false);
    enum lmr_result r = body ? call_simple(c, "PUT", path, NULL, body, resource, NULL, err)
                             : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    json_decref(body);
    return r;
}

enum lmr_result lmr_lambda_list_event_source_mappings(struct lmr_aws_client *c, const char *function_name, json_t **out,
                                                      struct lmr_err *err)
{
    char resource[256];
    snprintf(resource, sizeof resource, "event source mappings of '%s'", function_name);
    struct lmr_buf q, enc;
    lmr_buf_init(&q, 8192);
    lmr_buf_init(&enc, 4096);
    json_t *all = json_array();
    char marker[1024] = "";
    enum lmr_result r = all ? LMR_OK : lmr_fail(err, LMR_ERR_NOMEM, "%s: out of memory building the request", resource);
    for (int page = 0; !r && page < 1000; page++) {
        lmr_buf_reset(&q);
        lmr_buf_reset(&enc);
        r = lmr_aws_uri_encode(&enc, function_name, strlen(function_name), false);
        if (!r)
            r = lmr_buf_printf(&q, "FunctionName=%s", enc.data);
        if (!r && marker[0]) {
            lmr_buf_reset(&enc);
            r = lmr_aws_uri_encode(&enc, marker, strlen(marker), false);
            if (!r)
                r = lmr_buf_printf(&q, "&Marker=%s", enc.data);
        }
        json_t *answer = NULL;
        struct lmr_aws_response resp;
        lmr_aws_response_init(&resp);
        if (!r)
            r = call(c, "GET", ESM_PATH, q.data, NULL, resource, &answer, &resp, err);
        if (r && !strcmp(resp.aws_code, "UnknownOperationException"))
            r = lmr_fail(err, LMR_ERR_UNSUPPORTED, "%s: the endpoint has no event source mappings (%s)", resource,
                         resp.aws_message);
        lmr_aws_response_clean_up(&resp);
        if (r)
            break;
        json_t *list = json_object_get(answer, "EventSourceMappings"), *m;
        size_t i;
        json_array_foreach(list, i, m)
        {
            /* keep only this function's (an endpoint may filter loosely) */
            const char *arn = json_string_value(json_object_get(m, "FunctionArn"));
            const char *tail = arn ? strrchr(arn, ':') : NULL;
            if (!arn || !strcmp(arn, function_name) || (tail && !strcmp(tail + 1, function_name)))
                json_array_append(all, m);
        }
        copy_str(marker, sizeof marker, answer, "NextMarker");
        json_decref(answer);
        if (!marker[0])
            break;
    }
    lmr_buf_clean_up(&q);
    lmr_buf_clean_up(&enc);
    if (r) {
        json_decref(all);
        return r;
    }
    *out = all;
    return LMR_OK;
}

enum lmr_result lmr_lambda_delete_event_source_mapping(struct lmr_aws_client *c, const char *uuid, struct lmr_err *err)
{
    char path[256], resource[256];
    snprintf(path, sizeof path, ESM_PATH "%s", uuid);
    snprintf(resource, sizeof resource, "event source mapping %s", uuid);
    return call_simple(c, "DELETE", path, NULL, NULL, resource, NULL, err);
}

static json_int_t int_or(const json_t *o, const char *key, json_int_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool lmr_lambda_esm_matches(const json_t *m, const struct lmr_lambda_esm_spec *s)
{
    const char *src = json_string_value(json_object_get(m, "EventSourceArn"));
    if (!src || strcmp(src, s->event_source_arn))
        return false;
    if (s->batch_size && int_or(m, "BatchSize", 0) != s->batch_size)
        return false;
    if (int_or(m, "TumblingWindowInSeconds", 0) != s->tumbling_window_s)
        return false;
    if (s->parallelization_factor && int_or(m, "ParallelizationFactor", 1) != s->parallelization_factor)
        return false;
    if (int_or(m, "MaximumRetryAttempts", -1) != s->maximum_retry_attempts)
        return false;
    if (json_is_true(json_object_get(m, "BisectBatchOnFunctionError")) != s->bisect_batch_on_function_error)
        return false;
    json_t *types = json_object_get(m, "FunctionResponseTypes");
    const char *t0 = json_string_value(json_array_get(types, 0));
    bool reports = t0 && !strcmp(t0, "ReportBatchItemFailures");
    if (reports != s->report_batch_item_failures)
        return false;
    const char *dest = json_string_value(
        json_object_get(json_object_get(json_object_get(m, "DestinationConfig"), "OnFailure"), "Destination"));
    const char *want = s->on_failure_destination ? s->on_failure_destination : "";
    return !strcmp(dest ? dest : "", want);
}
