#include "stream/event.h"

#include <inttypes.h>
#include <pthread.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- Base64 ---------------------------------------------------------------------------------- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum lmr_result lmr_base64_append(struct lmr_buf *out, const void *data, size_t n)
{
    enum lmr_result r = lmr_buf_reserve(out, lmr_base64_len(n));
    if (r)
        return r;
    const uint8_t *p = data;
    char *o = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[0] = b64_chars[v >> 18];
        o[1] = b64_chars[(v >> 12) & 63];
        o[2] = b64_chars[(v >> 6) & 63];
        o[3] = b64_chars[v & 63];
        o += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        o[0] = b64_chars[v >> 18];
        o[1] = b64_chars[(v >> 12) & 63];
        o[2] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        o[3] = '=';
        o += 4;
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return LMR_OK;
}

static int8_t b64_value[256];
static void b64_init(void)
{
    memset(b64_value, -1, sizeof b64_value);
    for (int i = 0; i < 64; i++)
        b64_value[(uint8_t)b64_chars[i]] = (int8_t)i;
}

enum lmr_result lmr_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, b64_init);
    if (n % 4)
        return LMR_ERR_FORMAT;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = b64_value[(uint8_t)in[i]], b = b64_value[(uint8_t)in[i + 1]];
        int c = in[i + 2] == '=' ? 0 : b64_value[(uint8_t)in[i + 2]];
        int d = in[i + 3] == '=' ? 0 : b64_value[(uint8_t)in[i + 3]];
        if (a < 0 || b < 0 || c < 0 || d < 0)
            return LMR_ERR_FORMAT;
        bool last = i + 4 == n;
        if (!last && (in[i + 2] == '=' || in[i + 3] == '='))
            return LMR_ERR_FORMAT;
        if (in[i + 2] == '=' && in[i + 3] != '=')
            return LMR_ERR_FORMAT;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        if (in[i + 2] != '=')
            out[o++] = (uint8_t)(v >> 8);
        if (in[i + 3] != '=')
            out[o++] = (uint8_t)v;
    }
    *out_len = o;
    return LMR_OK;
}

/* --- Time ------------------------------------------------------------------------------------ */

const char *lmr_stream_iso8601(uint64_t epoch_ms, char *out, size_t cap)
{
    time_t s = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    unsigned ms = (unsigned)(epoch_ms % 1000);
    if (ms)
        snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    else
        snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    return out;
}

enum lmr_result lmr_stream_parse_time(const char *s, uint64_t *epoch_ms)
{
    if (!s || !*s)
        return LMR_ERR_INVALID;
    char *end;
    if (strspn(s, "0123456789") == strlen(s)) {
        unsigned long long v = strtoull(s, &end, 10);
        *epoch_ms = (uint64_t)v * 1000;
        return LMR_OK;
    }
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19)
        return LMR_ERR_INVALID;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return LMR_ERR_INVALID;
    const char *p = s + n;
    unsigned ms = 0;
    if (*p == '.') {
        p++;
        unsigned scale = 100;
        if (*p < '0' || *p > '9')
            return LMR_ERR_INVALID;
        while (*p >= '0' && *p <= '9') {
            ms += (unsigned)(*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    long offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5)
            return LMR_ERR_INVALID;
        offset_s = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
        p += 1 + k;
    } else {
        return LMR_ERR_INVALID;
    }
    if (*p)
        return LMR_ERR_INVALID;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t < 0 || (long)t - offset_s < 0)
        return LMR_ERR_INVALID;
    *epoch_ms = (uint64_t)((long)t - offset_s) * 1000 + ms;
    return LMR_OK;
}

/* --- Event building -------------------------------------------------------------------------- */

/* Bytes a JSON string literal of s takes, quotes included. */
static size_t json_str_bytes(const char *s)
{
    size_t n = 2;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p == '"' || *p == '\\') ? 2 : *p < 0x20 ? 6 : 1;
    return n;
}

static enum lmr_result json_str_append(struct lmr_buf *out, const char *s)
{
    enum lmr_result r = lmr_buf_reserve(out, json_str_bytes(s));
    if (r)
        return r;
    char *o = out->data + out->len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return LMR_OK;
}

static const char *or_default(const char *s, const char *dflt)
{
    return s && *s ? s : dflt;
}

#define DEFAULT_ARN "arn:aws:kinesis:us-east-1:000000000000:stream/lambdamr"
#define DEFAULT_REGION "us-east-1"
#define DEFAULT_IDENTITY "arn:aws:iam::000000000000:role/lambdamr-stream"
#define DEFAULT_SHARD "shardId-000000000000"

/* The fixed pieces of one record's JSON, split around the variable parts. */
#define REC_A "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":"
#define REC_B ",\"sequenceNumber\":\""
#define REC_C "\",\"data\":\""
#define REC_D "\",\"approximateArrivalTimestamp\":"
#define REC_E "},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":\""
#define REC_F "\",\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":"
#define REC_G ",\"awsRegion\":"
#define REC_H ",\"eventSourceARN\":"
#define REC_I "}"

static int format_ts(char *out, uint64_t ms)
{
    return sprintf(out, "%" PRIu64 ".%03u", ms / 1000, (unsigned)(ms % 1000));
}

size_t lmr_stream_event_record_bytes(const struct lmr_stream_event_info *info, const struct lmr_stream_record *r)
{
    char ts[32];
    const char *shard = or_default(info->shard_id, DEFAULT_SHARD);
    size_t seq = strlen(r->sequence_number);
    return sizeof REC_A - 1 + json_str_bytes(r->partition_key ? r->partition_key : "") + sizeof REC_B - 1 + seq +
           sizeof REC_C - 1 + lmr_base64_len(r->len) + sizeof REC_D - 1 + (size_t)format_ts(ts, r->arrival_ms) +
           sizeof REC_E - 1 + strlen(shard) + 1 + seq + sizeof REC_F - 1 +
           json_str_bytes(or_default(info->invoke_identity_arn, DEFAULT_IDENTITY)) + sizeof REC_G - 1 +
           json_str_bytes(or_default(info->region, DEFAULT_REGION)) + sizeof REC_H - 1 +
           json_str_bytes(or_default(info->event_source_arn, DEFAULT_ARN)) + sizeof REC_I - 1 + 1 /* comma */;
}

enum lmr_result lmr_stream_event_build(struct lmr_buf *out, const struct lmr_stream_event_info *info,
                                       const struct lmr_stream_record *records, size_t n, struct lmr_err *err)
{
    const char *shard = or_default(info->shard_id, DEFAULT_SHARD);
    const char *arn = or_default(info->event_source_arn, DEFAULT_ARN);
    const char *region = or_default(info->region, DEFAULT_REGION);
    const char *identity = or_default(info->invoke_identity_arn, DEFAULT_IDENTITY);
    enum lmr_result r = lmr_buf_append_str(out, "{\"Records\":[");
    char ts[32];
    for (size_t i = 0; i < n && !r; i++) {
        const struct lmr_stream_record *rec = &records[i];
        if (i)
            r = lmr_buf_append(out, ",", 1);
        if (!r)
            r = lmr_buf_append(out, REC_A, sizeof REC_A - 1);
        if (!r)
            r = json_str_append(out, rec->partition_key ? rec->partition_key : "");
        if (!r)
            r = lmr_buf_append(out, REC_B, sizeof REC_B - 1);
        if (!r)
            r = lmr_buf_append_str(out, rec->sequence_number);
        if (!r)
            r = lmr_buf_append(out, REC_C, sizeof REC_C - 1);
        if (!r)
            r = lmr_base64_append(out, rec->data, rec->len);
        if (!r)
            r = lmr_buf_append(out, REC_D, sizeof REC_D - 1);
        if (!r)
            r = lmr_buf_append(out, ts, (size_t)format_ts(ts, rec->arrival_ms));
        if (!r)
            r = lmr_buf_append(out, REC_E, sizeof REC_E - 1);
        if (!r)
            r = lmr_buf_append_str(out, shard);
        if (!r)
            r = lmr_buf_append(out, ":", 1);
        if (!r)
            r = lmr_buf_append_str(out, rec->sequence_number);
        if (!r)
            r = lmr_buf_append(out, REC_F, sizeof REC_F - 1);
        if (!r)
            r = json_str_append(out, identity);
        if (!r)
            r = lmr_buf_append(out, REC_G, sizeof REC_G - 1);
        if (!r)
            r = json_str_append(out, region);
        if (!r)
            r = lmr_buf_append(out, REC_H, sizeof REC_H - 1);
        if (!r)
            r = json_str_append(out, arn);
        if (!r)
            r = lmr_buf_append(out, REC_I, sizeof REC_I - 1);
    }
    char start[40], end[40];
    if (!r)
        r = lmr_buf_printf(out, "],\"window\":{\"start\":\"%s\",\"end\":\"%s\"},\"state\":",
                           lmr_stream_iso8601(info->window_start_ms, start, sizeof start),
                           lmr_stream_iso8601(info->window_end_ms, end, sizeof end));
    if (!r)
        r = lmr_buf_append_str(out, info->state_json && *info->state_json ? info->state_json : "{}");
    if (!r)
        r = lmr_buf_append_str(out, ",\"shardId\":");
    if (!r)
        r = json_str_append(out, shard);
    if (!r)
        r = lmr_buf_append_str(out, ",\"eventSourceARN\":");
    if (!r)
        r = json_str_append(out, arn);
    if (!r)
        r = lmr_buf_printf(out, ",\"isFinalInvokeForWindow\":%s,\"isWindowTerminatedEarly\":%s}",
                           info->is_final_invoke ? "true" : "false", info->is_terminated_early ? "true" : "false");
    if (r == LMR_ERR_TOO_LARGE)
        return lmr_fail(err, r, "the event for %zu records of %s is larger than its %zu-byte limit; lower --batch-size",
                        n, shard, out->max_bytes);
    if (r)
        return lmr_fail(err, r, "out of memory building the event for %s", shard);
    return LMR_OK;
}

/* --- Event parsing --------------------------------------------------------------------------- */

static enum lmr_result parse_window_time(json_t *v, uint64_t *ms)
{
    if (!json_is_string(v))
        return LMR_ERR_FORMAT;
    return lmr_stream_parse_time(json_string_value(v), ms) ? LMR_ERR_FORMAT : LMR_OK;
}

void lmr_stream_event_clean_up(struct lmr_stream_event *ev)
{
    if (!ev)
        return;
    free(ev->records);
    free(ev->data_arena);
    if (ev->root)
        json_decref((json_t *)ev->root);
    memset(ev, 0, sizeof *ev);
}

enum lmr_result lmr_stream_event_parse(const char *json, size_t len, struct lmr_stream_event *ev, struct lmr_err *err)
{
    memset(ev, 0, sizeof *ev);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream event is not valid JSON (%s at line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
    ev->root = root;
    if (!json_is_object(root))
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream event must be a JSON object");
    json_t *records = json_object_get(root, "Records");
    if (records && !json_is_array(records))
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream event's \"Records\" must be an array");
    size_t n = records ? json_array_size(records) : 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *data = json_object_get(json_object_get(json_array_get(records, i), "kinesis"), "data");
        if (!json_is_string(data))
            return lmr_fail(err, LMR_ERR_FORMAT, "record %zu of the stream event has no kinesis.data string", i);
        total += json_string_length(data) / 4 * 3;
    }
    ev->records = calloc(n ? n : 1, sizeof *ev->records);
    ev->data_arena = malloc(total ? total : 1);
    if (!ev->records || !ev->data_arena)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory parsing a stream event of %zu records", n);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_array_get(records, i);
        json_t *k = json_object_get(rec, "kinesis");
        json_t *data = json_object_get(k, "data");
        json_t *seq = json_object_get(k, "sequenceNumber");
        json_t *pk = json_object_get(k, "partitionKey");
        json_t *ts = json_object_get(k, "approximateArrivalTimestamp");
        if (!json_is_string(seq))
            return lmr_fail(err, LMR_ERR_FORMAT, "record %zu of the stream event has no kinesis.sequenceNumber", i);
        struct lmr_stream_parsed_record *pr = &ev->records[i];
        size_t got;
        if (lmr_base64_decode(json_string_value(data), json_string_length(data), ev->data_arena + off, &got))
            return lmr_fail(err, LMR_ERR_FORMAT, "record %s of the stream event has invalid base64 data",
                            json_string_value(seq));
        pr->data = ev->data_arena + off;
        pr->len = got;
        off += got;
        pr->sequence_number = json_string_value(seq);
        pr->partition_key = json_is_string(pk) ? json_string_value(pk) : "";
        pr->arrival_ms = json_is_number(ts) ? (uint64_t)(json_number_value(ts) * 1000.0 + 0.5) : 0;
    }
    ev->n_records = n;
    json_t *window = json_object_get(root, "window");
    if (window) {
        if (parse_window_time(json_object_get(window, "start"), &ev->window_start_ms) ||
            parse_window_time(json_object_get(window, "end"), &ev->window_end_ms))
            return lmr_fail(err, LMR_ERR_FORMAT, "the stream event's window needs ISO-8601 \"start\" and \"end\"");
        ev->has_window = true;
    }
    json_t *state = json_object_get(root, "state");
    if (state && !json_is_object(state) && !json_is_null(state))
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream event's \"state\" must be an object");
    ev->state = json_is_object(state) ? state : NULL;
    json_t *v = json_object_get(root, "shardId");
    ev->shard_id = json_is_string(v) ? (char *)json_string_value(v) : NULL;
    v = json_object_get(root, "eventSourceARN");
    ev->event_source_arn = json_is_string(v) ? (char *)json_string_value(v) : NULL;
    ev->is_final_invoke = json_is_true(json_object_get(root, "isFinalInvokeForWindow"));
    ev->is_terminated_early = json_is_true(json_object_get(root, "isWindowTerminatedEarly"));
    return LMR_OK;
}

/* --- Responses ------------------------------------------------------------------------------- */

enum lmr_result lmr_stream_response_build(struct lmr_buf *out, const char *state_json, const char *const *failed_ids,
                                          size_t n_failed, struct lmr_err *err)
{
    enum lmr_result r = lmr_buf_append_str(out, "{\"state\":");
    if (!r)
        r = lmr_buf_append_str(out, state_json && *state_json ? state_json : "{}");
    if (!r)
        r = lmr_buf_append_str(out, ",\"batchItemFailures\":[");
    for (size_t i = 0; i < n_failed && !r; i++) {
        r = lmr_buf_append_str(out, i ? ",{\"itemIdentifier\":" : "{\"itemIdentifier\":");
        if (!r)
            r = json_str_append(out, failed_ids[i]);
        if (!r)
            r = lmr_buf_append(out, "}", 1);
    }
    if (!r)
        r = lmr_buf_append_str(out, "]}");
    if (r)
        return lmr_fail(err, r, "cannot build the stream response: %s", lmr_result_str(r));
    return LMR_OK;
}

void lmr_stream_response_clean_up(struct lmr_stream_response *resp)
{
    if (!resp)
        return;
    free(resp->state_json);
    for (size_t i = 0; i < resp->n_failed; i++)
        free(resp->failed_ids[i]);
    free(resp->failed_ids);
    memset(resp, 0, sizeof *resp);
}

enum lmr_result lmr_stream_response_parse(const char *json, size_t len, struct lmr_stream_response *resp,
                                          struct lmr_err *err)
{
    memset(resp, 0, sizeof *resp);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream function's response is not valid JSON (%s)", jerr.text);
    enum lmr_result r = LMR_OK;
    json_t *state = json_object_get(root, "state");
    json_t *failures = json_object_get(root, "batchItemFailures");
    if (!json_is_object(state)) {
        r = lmr_fail(err, LMR_ERR_FORMAT,
                     "the stream function's response has no \"state\" object; with tumbling windows Lambda treats "
                     "that as a failed invocation");
        goto done;
    }
    resp->state_json = json_dumps(state, JSON_COMPACT);
    resp->state_full = json_object_get(state, "full") != NULL;
    if (!resp->state_json) {
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading the stream function's response");
        goto done;
    }
    if (failures && !json_is_null(failures)) {
        if (!json_is_array(failures)) {
            r = lmr_fail(err, LMR_ERR_FORMAT, "the response's \"batchItemFailures\" must be an array");
            goto done;
        }
        size_t n = json_array_size(failures);
        resp->failed_ids = calloc(n ? n : 1, sizeof *resp->failed_ids);
        if (!resp->failed_ids) {
            r = LMR_ERR_NOMEM;
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *id = json_object_get(json_array_get(failures, i), "itemIdentifier");
            /* As on AWS, a failure without a usable itemIdentifier fails the whole batch. */
            if (!json_is_string(id) || !json_string_length(id)) {
                r = lmr_fail(err, LMR_ERR_FORMAT,
                             "batchItemFailures[%zu] has no itemIdentifier: the whole batch counts as failed", i);
                goto done;
            }
            if (!(resp->failed_ids[resp->n_failed] = strdup(json_string_value(id)))) {
                r = LMR_ERR_NOMEM;
                goto done;
            }
            resp->n_failed++;
        }
    }
done:
    json_decref(root);
    if (r) {
        enum lmr_result keep = r;
        lmr_stream_response_clean_up(resp);
        return keep;
    }
    return LMR_OK;
}
