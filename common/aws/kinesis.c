#define _GNU_SOURCE
#include "aws/kinesis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/http.h"
#include "util/log.h"
#include "util/misc.h"

struct lmr_kinesis {
    struct lmr_aws_client *client;
    char *stream;
    char *arn;
    char region[64];
};

const char *lmr_kinesis_stream_name(const struct lmr_kinesis *k)
{
    return k->stream;
}
const char *lmr_kinesis_stream_arn(const struct lmr_kinesis *k)
{
    return k->arn;
}
const char *lmr_kinesis_region(const struct lmr_kinesis *k)
{
    return k->region;
}

enum lmr_result lmr_kinesis_call(struct lmr_kinesis *k, const char *action, json_t *body, json_t **out, char *aws_code,
                                 struct lmr_err *err)
{
    if (out)
        *out = NULL;
    if (aws_code)
        aws_code[0] = '\0';
    char *text = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
    json_decref(body);
    if (!text)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory calling Kinesis %s", action);
    char target[96], resource[600];
    snprintf(target, sizeof target, "Kinesis_20131202.%s", action);
    snprintf(resource, sizeof resource, "kinesis://%s (%s)", k->stream, action);
    struct lmr_aws_header headers[] = {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}};
    struct lmr_aws_request req = {.service = LMR_AWS_KINESIS,
                                  .method = "POST",
                                  .path = "/",
                                  .headers = headers,
                                  .n_headers = 2,
                                  .body = text,
                                  .body_len = strlen(text),
                                  .resource = resource,
                                  .max_response_bytes = 64u * 1024u * 1024u};
    struct lmr_aws_response resp;
    lmr_aws_response_init(&resp);
    enum lmr_result r = lmr_aws_request(k->client, &req, &resp, err);
    free(text);
    if (aws_code)
        snprintf(aws_code, 128, "%s", resp.aws_code);
    if (!r && out) {
        json_error_t jerr;
        *out = json_loadb(resp.body.data ? resp.body.data : "{}", resp.body.len ? resp.body.len : 2, 0, &jerr);
        if (!*out)
            r = lmr_fail(err, LMR_ERR_FORMAT, "Kinesis %s on stream %s returned invalid JSON (%s)", action, k->stream,
                         jerr.text);
    }
    lmr_aws_response_clean_up(&resp);
    return r;
}

void lmr_kinesis_destroy(struct lmr_kinesis *k)
{
    if (!k)
        return;
    lmr_aws_client_destroy(k->client);
    free(k->stream);
    free(k->arn);
    free(k);
}

enum lmr_result lmr_kinesis_new(const char *stream, struct lmr_kinesis **out, struct lmr_err *err)
{
    if (!*stream)
        return lmr_fail(err, LMR_ERR_INVALID, "kinesis:// needs a stream name, for example kinesis://clicks");
    struct lmr_kinesis *k = calloc(1, sizeof *k);
    if (!k || !(k->stream = strdup(stream))) {
        free(k);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    }
    struct lmr_aws_client_options co = {0};
    enum lmr_result r = lmr_aws_client_new(&co, &k->client, err);
    if (r) {
        lmr_kinesis_destroy(k);
        return r;
    }
    snprintf(k->region, sizeof k->region, "%s", lmr_aws_client_config(k->client)->region);
    json_t *resp;
    r = lmr_kinesis_call(k, "DescribeStreamSummary", json_pack("{s:s}", "StreamName", stream), &resp, NULL, err);
    if (r) {
        lmr_err_prefix(err, "cannot open Kinesis stream '%s': ", stream);
        lmr_kinesis_destroy(k);
        return r;
    }
    const char *arn =
        json_string_value(json_object_get(json_object_get(resp, "StreamDescriptionSummary"), "StreamARN"));
    if (arn)
        k->arn = strdup(arn);
    else if (asprintf(&k->arn, "arn:aws:kinesis:%s:000000000000:stream/%s", k->region, stream) < 0)
        k->arn = NULL;
    json_decref(resp);
    if (!k->arn) {
        lmr_kinesis_destroy(k);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    }
    *out = k;
    return LMR_OK;
}

enum lmr_result lmr_kinesis_list_shards(struct lmr_kinesis *k, uint64_t at_timestamp_ms, struct lmr_kinesis_shard **out,
                                        size_t *n, struct lmr_err *err)
{
    *out = NULL;
    *n = 0;
    struct lmr_kinesis_shard *v = NULL;
    size_t count = 0;
    char *token = NULL;
    enum lmr_result r = LMR_OK;
    do {
        json_t *body = token ? json_pack("{s:s}", "NextToken", token) : json_pack("{s:s}", "StreamName", k->stream);
        if (!token && at_timestamp_ms)
            json_object_set_new(
                body, "ShardFilter",
                json_pack("{s:s,s:f}", "Type", "AT_TIMESTAMP", "Timestamp", (double)at_timestamp_ms / 1000.0));
        json_t *resp;
        free(token);
        token = NULL;
        r = lmr_kinesis_call(k, "ListShards", body, &resp, NULL, err);
        if (r)
            break;
        json_t *shards = json_object_get(resp, "Shards"), *s;
        size_t i;
        if (count + json_array_size(shards) > LMR_KINESIS_SHARDS_MAX) {
            json_decref(resp);
            r = lmr_fail(err, LMR_ERR_TOO_LARGE, "Kinesis stream '%s' lists more than %u shards; lambdamr stops there",
                         k->stream, LMR_KINESIS_SHARDS_MAX);
            break;
        }
        json_array_foreach(shards, i, s)
        {
            struct lmr_kinesis_shard *nv = realloc(v, (count + 1) * sizeof *nv);
            if (!nv) {
                r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory listing the shards of Kinesis stream '%s'", k->stream);
                break;
            }
            v = nv;
            struct lmr_kinesis_shard *info = &v[count++];
            memset(info, 0, sizeof *info);
            snprintf(info->id, sizeof info->id, "%s", json_string_value(json_object_get(s, "ShardId")) ?: "");
            const char *p = json_string_value(json_object_get(s, "ParentShardId"));
            snprintf(info->parent_id, sizeof info->parent_id, "%s", p ? p : "");
            p = json_string_value(json_object_get(s, "AdjacentParentShardId"));
            snprintf(info->adjacent_parent_id, sizeof info->adjacent_parent_id, "%s", p ? p : "");
            json_t *range = json_object_get(s, "SequenceNumberRange");
            p = json_string_value(json_object_get(range, "StartingSequenceNumber"));
            snprintf(info->starting_seq, sizeof info->starting_seq, "%s", p ? p : "");
            p = json_string_value(json_object_get(range, "EndingSequenceNumber"));
            snprintf(info->ending_seq, sizeof info->ending_seq, "%s", p ? p : "");
            range = json_object_get(s, "HashKeyRange");
            p = json_string_value(json_object_get(range, "StartingHashKey"));
            snprintf(info->starting_hash_key, sizeof info->starting_hash_key, "%s", p ? p : "");
            p = json_string_value(json_object_get(range, "EndingHashKey"));
            snprintf(info->ending_hash_key, sizeof info->ending_hash_key, "%s", p ? p : "");
        }
        const char *next = json_string_value(json_object_get(resp, "NextToken"));
        if (!r && next && json_array_size(shards))
            token = strdup(next);
        json_decref(resp);
    } while (!r && token);
    free(token);
    if (r) {
        free(v);
        return r;
    }
    *out = v;
    *n = count;
    return LMR_OK;
}
