#define _GNU_SOURCE
#include "stream/kinesis.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/http.h"
#include "stream/source.h"
#include "util/base64.h"
#include "util/log.h"
#include "util/misc.h"

/* A closed shard's last sequence number, from the latest ListShards. */
struct closed_shard {
    char id[LMR_STREAM_SHARD_ID_MAX];
    char ending_seq[LMR_STREAM_SEQ_MAX + 1];
};

struct lmr_kinesis {
    struct lmr_aws_client *client;
    pthread_mutex_t mu; /* guards closed[] */
    struct closed_shard *closed;
    size_t n_closed;
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
    free(k->closed);
    pthread_mutex_destroy(&k->mu);
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
    pthread_mutex_init(&k->mu, NULL);
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

/* --- The stream source ------------------------------------------------------------------------ */

struct kin_reader {
    struct lmr_stream_shard_reader base;
    char shard_id[LMR_STREAM_SHARD_ID_MAX];
    char *iterator; /* NULL once the shard has ended */
    struct lmr_stream_position start;
    char last_seq[LMR_STREAM_SEQ_MAX + 1];
    uint64_t next_call_ms; /* monotonic: 5 calls/s per shard */
    unsigned throttled;    /* consecutive throttling errors */
    bool caught_up;        /* what the last GetRecords said */
    uint64_t millis_behind;
    uint64_t renewals;
};

static uint64_t mono_ms(void)
{
    return lmr_mono_ns() / 1000000;
}

static void remember_closed(struct lmr_kinesis *k, const char *id, const char *ending)
{
    pthread_mutex_lock(&k->mu);
    size_t i = 0;
    while (i < k->n_closed && strcmp(k->closed[i].id, id))
        i++;
    if (i == k->n_closed) {
        struct closed_shard *c = realloc(k->closed, (k->n_closed + 1) * sizeof *c);
        if (c) {
            k->closed = c;
            k->n_closed++;
        }
    }
    if (i < k->n_closed) {
        snprintf(k->closed[i].id, sizeof k->closed[i].id, "%s", id);
        snprintf(k->closed[i].ending_seq, sizeof k->closed[i].ending_seq, "%s", ending);
    }
    pthread_mutex_unlock(&k->mu);
}

/* Sequence numbers are decimal strings of up to 128 digits: compare by length, then digits. */
static int seq_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* The ending sequence number of a closed shard into out ("" if open or unknown). */
static void closed_ending(struct lmr_kinesis *k, const char *id, char *out, size_t cap)
{
    out[0] = '\0';
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->n_closed; i++)
        if (!strcmp(k->closed[i].id, id))
            snprintf(out, cap, "%s", k->closed[i].ending_seq);
    pthread_mutex_unlock(&k->mu);
}

static enum lmr_result kin_list_shards(struct lmr_stream_source *src, struct lmr_stream_shard_info **out, size_t *n,
                                       struct lmr_err *err)
{
    struct lmr_kinesis *k = src->impl;
    struct lmr_stream_shard_info *v = NULL;
    size_t count = 0;
    char *token = NULL;
    enum lmr_result r = LMR_OK;
    do {
        json_t *body = token ? json_pack("{s:s}", "NextToken", token) : json_pack("{s:s}", "StreamName", k->stream);
        json_t *resp;
        free(token);
        token = NULL;
        r = lmr_kinesis_call(k, "ListShards", body, &resp, NULL, err);
        if (r)
            break;
        json_t *shards = json_object_get(resp, "Shards"), *s;
        size_t i;
        json_array_foreach(shards, i, s)
        {
            struct lmr_stream_shard_info *nv = realloc(v, (count + 1) * sizeof *nv);
            if (!nv) {
                r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
            struct lmr_stream_shard_info *info = &v[count++];
            memset(info, 0, sizeof *info);
            snprintf(info->id, sizeof info->id, "%s", json_string_value(json_object_get(s, "ShardId")) ?: "");
            const char *p = json_string_value(json_object_get(s, "ParentShardId"));
            snprintf(info->parent_id, sizeof info->parent_id, "%s", p ? p : "");
            p = json_string_value(json_object_get(s, "AdjacentParentShardId"));
            snprintf(info->adjacent_parent_id, sizeof info->adjacent_parent_id, "%s", p ? p : "");
            const char *ending =
                json_string_value(json_object_get(json_object_get(s, "SequenceNumberRange"), "EndingSequenceNumber"));
            info->closed = ending != NULL;
            if (ending)
                remember_closed(k, info->id, ending);
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

static enum lmr_result get_iterator(struct lmr_kinesis *k, struct kin_reader *rd, const struct lmr_stream_position *pos,
                                    struct lmr_err *err)
{
    json_t *body = json_pack("{s:s,s:s,s:s}", "StreamName", k->stream, "ShardId", rd->shard_id, "ShardIteratorType",
                             lmr_stream_position_type_name(pos->type));
    if (pos->type == LMR_STREAM_AT_SEQUENCE_NUMBER || pos->type == LMR_STREAM_AFTER_SEQUENCE_NUMBER)
        json_object_set_new(body, "StartingSequenceNumber", json_string(pos->sequence_number));
    if (pos->type == LMR_STREAM_AT_TIMESTAMP)
        json_object_set_new(body, "Timestamp", json_real((double)pos->timestamp_ms / 1000.0));
    json_t *resp;
    enum lmr_result r = lmr_kinesis_call(k, "GetShardIterator", body, &resp, NULL, err);
    if (r)
        return lmr_err_prefix(err, "GetShardIterator %s of %s for %s: ", lmr_stream_position_type_name(pos->type),
                              rd->shard_id, k->stream);
    const char *it = json_string_value(json_object_get(resp, "ShardIterator"));
    free(rd->iterator);
    rd->iterator = it ? strdup(it) : NULL;
    json_decref(resp);
    return LMR_OK;
}

static enum lmr_result kin_open_shard(struct lmr_stream_source *src, const char *shard_id,
                                      const struct lmr_stream_position *pos, struct lmr_stream_shard_reader **out,
                                      struct lmr_err *err)
{
    struct kin_reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    rd->base.source = src;
    snprintf(rd->shard_id, sizeof rd->shard_id, "%s", shard_id);
    rd->start = *pos;
    enum lmr_result r = get_iterator(src->impl, rd, pos, err);
    if (r) {
        free(rd);
        return r;
    }
    *out = &rd->base;
    return LMR_OK;
}

/* A new iterator after the last record read (or at the start position if none was read). */
static enum lmr_result renew_iterator(struct lmr_kinesis *k, struct kin_reader *rd, struct lmr_err *err)
{
    struct lmr_stream_position pos = rd->start;
    if (rd->last_seq[0]) {
        pos.type = LMR_STREAM_AFTER_SEQUENCE_NUMBER;
        snprintf(pos.sequence_number, sizeof pos.sequence_number, "%s", rd->last_seq);
    }
    rd->renewals++;
    LMR_INFO("kinesis: renewing the expired iterator of %s from %s %s", rd->shard_id,
             lmr_stream_position_type_name(pos.type), rd->last_seq);
    return get_iterator(k, rd, &pos, err);
}

static enum lmr_result kin_read(struct lmr_stream_shard_reader *r, size_t max_records, uint64_t wait_ms,
                                struct lmr_stream_read_result *res, struct lmr_err *err)
{
    struct kin_reader *rd = (struct kin_reader *)r;
    struct lmr_kinesis *k = r->source->impl;
    if (!rd->iterator) {
        res->shard_ended = true;
        return LMR_OK;
    }
    uint64_t now = mono_ms();
    if (now < rd->next_call_ms) {
        if (rd->next_call_ms - now > wait_ms) {
            /* Not polled (5 calls/s per shard): what the last call said still holds. */
            res->caught_up = rd->caught_up;
            res->millis_behind = rd->millis_behind;
            return LMR_OK;
        }
        lmr_sleep_ms(rd->next_call_ms - now);
    }
    size_t limit = max_records < LMR_KINESIS_GET_RECORDS_MAX ? max_records : LMR_KINESIS_GET_RECORDS_MAX;
    if (!limit)
        return LMR_OK;
    json_t *resp = NULL;
    char code[128];
    enum lmr_result rr;
    for (unsigned renew = 0;; renew++) {
        rd->next_call_ms = mono_ms() + LMR_KINESIS_GET_RECORDS_INTERVAL_MS;
        rr = lmr_kinesis_call(k, "GetRecords",
                              json_pack("{s:s,s:I}", "ShardIterator", rd->iterator, "Limit", (json_int_t)limit), &resp,
                              code, err);
        if (rr &&
            (!strcmp(code, "ExpiredIteratorException") ||
             (!strcmp(code, "InvalidArgumentException") && strstr(err ? err->msg : "", "terator"))) &&
            renew < 3) {
            lmr_err_clear(err);
            if ((rr = renew_iterator(k, rd, err)))
                return rr;
            continue;
        }
        break;
    }
    if (rr == LMR_ERR_THROTTLED) {
        /* ProvisionedThroughputExceededException after the client's retries: back off this shard. */
        rd->throttled++;
        rd->caught_up = false;
        rd->next_call_ms = mono_ms() + lmr_backoff_ms(rd->throttled, 200, 10000) + 200;
        LMR_INFO("kinesis: %s is throttled; backing off", rd->shard_id);
        lmr_err_clear(err);
        return LMR_OK;
    }
    if (rr)
        return lmr_err_prefix(err, "GetRecords on %s: ", rd->shard_id);
    rd->throttled = 0;
    json_t *records = json_object_get(resp, "Records"), *rec;
    size_t i;
    json_array_foreach(records, i, rec)
    {
        const char *data = json_string_value(json_object_get(rec, "Data"));
        const char *seq = json_string_value(json_object_get(rec, "SequenceNumber"));
        const char *pk = json_string_value(json_object_get(rec, "PartitionKey"));
        json_t *ts = json_object_get(rec, "ApproximateArrivalTimestamp");
        if (!data || !seq) {
            json_decref(resp);
            return lmr_fail(err, LMR_ERR_FORMAT, "GetRecords on %s returned a record without Data or SequenceNumber",
                            rd->shard_id);
        }
        size_t dlen = strlen(data), got;
        uint8_t *bytes = malloc(dlen / 4 * 3 + 1);
        if (!bytes || lmr_base64_decode(data, dlen, bytes, &got)) {
            free(bytes);
            json_decref(resp);
            return lmr_fail(err, LMR_ERR_FORMAT, "record %s of %s has invalid base64 data", seq, rd->shard_id);
        }
        uint64_t arrival;
        if (!json_is_number(ts) || !lmr_stream_epoch_s_to_ms(json_number_value(ts), &arrival))
            arrival = lmr_wall_ms(); /* missing or out of range: stamp it with the time it was read */
        struct lmr_stream_item *it = lmr_stream_item_new(bytes, got, seq, pk ? pk : "", arrival);
        free(bytes);
        if (!it) {
            json_decref(resp);
            return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
        }
        lmr_stream_read_result_push(res, it);
        snprintf(rd->last_seq, sizeof rd->last_seq, "%s", seq);
    }
    json_t *behind = json_object_get(resp, "MillisBehindLatest");
    res->millis_behind = json_is_integer(behind) ? (uint64_t)json_integer_value(behind) : 0;
    res->caught_up = res->millis_behind == 0 && json_array_size(records) < limit;
    rd->caught_up = res->caught_up;
    rd->millis_behind = res->millis_behind;
    const char *next = json_string_value(json_object_get(resp, "NextShardIterator"));
    free(rd->iterator);
    rd->iterator = next ? strdup(next) : NULL;
    if (!rd->iterator)
        res->shard_ended = true; /* a closed shard, read to its end */
    /*
     * Some emulators keep handing out iterators for a closed shard: it has ended once the
     * last record read is its EndingSequenceNumber (or nothing is left to read).
     */
    char ending[LMR_STREAM_SEQ_MAX + 1];
    closed_ending(k, rd->shard_id, ending, sizeof ending);
    if (!res->shard_ended && ending[0] &&
        ((rd->last_seq[0] && seq_cmp(rd->last_seq, ending) >= 0) ||
         (!json_array_size(records) && res->millis_behind == 0))) {
        res->shard_ended = true;
        free(rd->iterator);
        rd->iterator = NULL;
    }
    json_decref(resp);
    return LMR_OK;
}

static void kin_close_shard(struct lmr_stream_shard_reader *r)
{
    struct kin_reader *rd = (struct kin_reader *)r;
    free(rd->iterator);
    free(rd);
}

static void kin_destroy(struct lmr_stream_source *src)
{
    if (!src)
        return;
    lmr_kinesis_destroy(src->impl);
    free(src->name);
    free(src->arn);
    free(src);
}

static const struct lmr_stream_source_vtable kinesis_vtable = {
    .name = "kinesis",
    .list_shards = kin_list_shards,
    .open_shard = kin_open_shard,
    .read = kin_read,
    .close_shard = kin_close_shard,
    .destroy = kin_destroy,
};

enum lmr_result lmr_stream_kinesis_source_new(const char *stream, struct lmr_stream_source **out, struct lmr_err *err)
{
    struct lmr_kinesis *k;
    enum lmr_result r = lmr_kinesis_new(stream, &k, err);
    if (r)
        return r;
    struct lmr_stream_source *src = calloc(1, sizeof *src);
    if (!src || !(src->name = strdup(stream)) || !(src->arn = strdup(k->arn))) {
        if (src)
            free(src->name);
        free(src);
        lmr_kinesis_destroy(k);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory");
    }
    src->vtable = &kinesis_vtable;
    src->impl = k;
    src->replayable = true;
    src->arrival_is_read_time = false;
    *out = src;
    return LMR_OK;
}
