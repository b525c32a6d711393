#include "stream/event.h"
#include "stream/json_scan.h"
#include "stream/kpl.h"
#include "util/base64.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE || v > LMR_STREAM_EPOCH_MAX_S)
            return LMR_ERR_INVALID;
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

bool lmr_stream_epoch_s_to_ms(double s, uint64_t *ms)
{
    if (!(s >= 0 && s <= (double)LMR_STREAM_EPOCH_MAX_S + 0.999))
        return false; /* also NaN */
    *ms = (uint64_t)(s * 1000.0 + 0.5);
    return true;
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
    size_t plain = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12"
                              "\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f");
    if (!s[plain]) {
        enum lmr_result r = lmr_buf_reserve(out, plain + 2);
        if (r)
            return r;
        char *o = out->data + out->len;
        o[0] = '"';
        memcpy(o + 1, s, plain);
        o[plain + 1] = '"';
        out->len += plain + 2;
        out->data[out->len] = '\0';
        return LMR_OK;
    }
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

/* Does s need no escaping inside a JSON string? (8 bytes at a time: no control byte, '"' or '\\'.) */
static inline uint64_t needs_escape8(const char *s)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t v;
    memcpy(&v, s, 8);
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    /* A zero byte in q or b, or a byte below 0x20 (bytes >= 0x80 are fine). */
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & high;
}

static bool json_plain(const char *s, size_t n)
{
    size_t i = 0;
    if (n >= 8) {
        uint64_t hit = 0;
        for (; n - i >= 8; i += 8)
            hit |= needs_escape8(s + i);
        hit |= needs_escape8(s + n - 8); /* the rest, overlapping */
        return !hit;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return false;
    }
    return true;
}

/* Write s as a JSON string literal at o (room for json_str_bytes(s)); @return the end. */
static char *json_str_write(char *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[*p >> 4];
            o[5] = hex[*p & 15];
            o += 6;
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    return o;
}

static inline char *put(char *o, const void *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* The base64 of data at o (room for lmr_base64_len(n) + 1: a NUL is written after it); @return the end. */
static inline char *base64_write(char *o, const void *data, size_t n)
{
    return o + lmr_base64_encode_to(o, data, n);
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

/* "1607497475.123" without printf (this runs once per record). */
static int format_ts(char *out, uint64_t ms)
{
    char tmp[24];
    int n = 0;
    uint64_t sec = ms / 1000;
    do {
        tmp[n++] = (char)('0' + sec % 10);
        sec /= 10;
    } while (sec);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    unsigned frac = (unsigned)(ms % 1000);
    out[n] = '.';
    out[n + 1] = (char)('0' + frac / 100);
    out[n + 2] = (char)('0' + frac / 10 % 10);
    out[n + 3] = (char)('0' + frac % 10);
    out[n + 4] = '\0';
    return n + 4;
}

/* Digits of "1607497475.123" for ms (what format_ts writes). */
static size_t ts_bytes(uint64_t ms)
{
    size_t n = 1;
    for (uint64_t sec = ms / 1000; sec >= 10; sec /= 10)
        n++;
    return n + 4;
}

size_t lmr_stream_event_record_overhead(const struct lmr_stream_event_info *info)
{
    const char *shard = or_default(info->shard_id, DEFAULT_SHARD);
    return sizeof REC_A - 1 + sizeof REC_B - 1 + sizeof REC_C - 1 + sizeof REC_D - 1 + sizeof REC_E - 1 +
           strlen(shard) + 1 + sizeof REC_F - 1 +
           json_str_bytes(or_default(info->invoke_identity_arn, DEFAULT_IDENTITY)) + sizeof REC_G - 1 +
           json_str_bytes(or_default(info->region, DEFAULT_REGION)) + sizeof REC_H - 1 +
           json_str_bytes(or_default(info->event_source_arn, DEFAULT_ARN)) + sizeof REC_I - 1 + 1 /* comma */;
}

size_t lmr_stream_event_record_bytes_after(size_t overhead, const struct lmr_stream_record *r)
{
    const char *pk = r->partition_key ? r->partition_key : "";
    size_t pk_len = strlen(pk);
    return overhead + (json_plain(pk, pk_len) ? pk_len + 2 : json_str_bytes(pk)) + 2 * strlen(r->sequence_number) +
           lmr_base64_len(r->len) + ts_bytes(r->arrival_ms);
}

size_t lmr_stream_event_record_bytes(const struct lmr_stream_event_info *info, const struct lmr_stream_record *r)
{
    return lmr_stream_event_record_bytes_after(lmr_stream_event_record_overhead(info), r);
}

/* The state object, with extra members (if any) written before its closing brace. */
static enum lmr_result append_state(struct lmr_buf *out, const char *state, const char *extra)
{
    if (!state || !*state)
        state = "{}";
    if (!extra || !*extra)
        return lmr_buf_append_str(out, state);
    size_t n = strlen(state);
    while (n && (state[n - 1] == ' ' || state[n - 1] == '\n' || state[n - 1] == '\t' || state[n - 1] == '\r'))
        n--;
    if (!n || state[n - 1] != '}')
        return LMR_ERR_INVALID; /* not an object */
    size_t body = n - 1, i = 0;
    while (i < body && (state[i] == ' ' || state[i] == '\n' || state[i] == '\t' || state[i] == '\r'))
        i++;
    bool empty = true; /* nothing but blanks between the braces */
    for (size_t j = i + 1; j < body && empty; j++)
        empty = state[j] == ' ' || state[j] == '\n' || state[j] == '\t' || state[j] == '\r';
    enum lmr_result r = lmr_buf_append(out, state, body);
    if (!r && !empty)
        r = lmr_buf_append(out, ",", 1);
    if (!r)
        r = lmr_buf_append_str(out, extra);
    if (!r)
        r = lmr_buf_append(out, "}", 1);
    return r;
}

/* What every record of one event shares (see lmr_stream_event_build). */
struct rec_writer {
    const struct lmr_buf *mid, *tail;
    char ts[32];
    size_t ts_len;
    uint64_t ts_ms;
    size_t n; /* records written */
};

/* One JSON record: rec's partition key, sequence number and time, with data[0..len) as its data. */
static enum lmr_result write_record(struct lmr_buf *out, struct rec_writer *w, const struct lmr_stream_record *rec,
                                    const void *data, size_t len)
{
    const char *pk = rec->partition_key ? rec->partition_key : "";
    size_t pk_len = strlen(pk), seq_len = strlen(rec->sequence_number);
    bool pk_plain = json_plain(pk, pk_len);
    size_t need = 1 + sizeof REC_A - 1 + (pk_plain ? pk_len + 2 : json_str_bytes(pk)) + sizeof REC_B - 1 + seq_len +
                  sizeof REC_C - 1 + lmr_base64_len(len) + 1 + sizeof REC_D - 1 + 24 + w->mid->len + seq_len +
                  w->tail->len;
    enum lmr_result r = lmr_buf_reserve(out, need);
    if (r)
        return r;
    char *o = out->data + out->len;
    if (w->n++)
        *o++ = ',';
    o = put(o, REC_A, sizeof REC_A - 1);
    if (pk_plain) {
        *o++ = '"';
        o = put(o, pk, pk_len);
        *o++ = '"';
    } else {
        o = json_str_write(o, pk);
    }
    o = put(o, REC_B, sizeof REC_B - 1);
    o = put(o, rec->sequence_number, seq_len);
    o = put(o, REC_C, sizeof REC_C - 1);
    o = base64_write(o, data, len);
    o = put(o, REC_D, sizeof REC_D - 1);
    if (rec->arrival_ms != w->ts_ms || !w->ts_len) { /* records read together share their time */
        w->ts_ms = rec->arrival_ms;
        w->ts_len = (size_t)format_ts(w->ts, w->ts_ms);
    }
    o = put(o, w->ts, w->ts_len);
    o = put(o, w->mid->data, w->mid->len);
    o = put(o, rec->sequence_number, seq_len);
    o = put(o, w->tail->data, w->tail->len);
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return LMR_OK;
}

enum lmr_stream_agg_place lmr_stream_agg_place(struct lmr_stream_agg_cursor *c, size_t agg_records_max,
                                               const struct lmr_stream_record *r)
{
    size_t ub = lmr_kpl_user_record_bytes(r->len);
    if (c->n && (!agg_records_max || c->n < agg_records_max) &&
        c->bytes + ub + c->pk_len <= LMR_STREAM_RECORD_MAX_BYTES) {
        c->bytes += ub;
        c->n++;
        return LMR_STREAM_AGG_JOIN;
    }
    size_t pk_len = r->partition_key ? strlen(r->partition_key) : 0, fixed = lmr_kpl_fixed_bytes(pk_len);
    if (fixed + ub + pk_len > LMR_STREAM_RECORD_MAX_BYTES) {
        c->bytes = c->n = 0; /* too long to aggregate: a plain record, and the next one starts afresh */
        return LMR_STREAM_AGG_ALONE;
    }
    c->bytes = fixed + ub;
    c->n = 1;
    c->pk_len = pk_len;
    return LMR_STREAM_AGG_START;
}

size_t lmr_stream_event_agg_bytes(size_t overhead, enum lmr_stream_agg_place place, const struct lmr_stream_record *r)
{
    /* base64 of the whole record is at most the sum of its pieces' 4/3, each rounded up, plus 3. */
    size_t user = (4 * lmr_kpl_user_record_bytes(r->len) + 2) / 3;
    if (place == LMR_STREAM_AGG_JOIN)
        return user;
    if (place == LMR_STREAM_AGG_ALONE)
        return lmr_stream_event_record_bytes_after(overhead, r);
    size_t pk_len = r->partition_key ? strlen(r->partition_key) : 0;
    return lmr_stream_event_record_bytes_after(overhead, r) - lmr_base64_len(r->len) +
           (4 * lmr_kpl_fixed_bytes(pk_len) + 2) / 3 + user + 3;
}

/* Complete aggregated records waiting for their digests (lmr_stream_event_build). */
#define AGG_PENDING 8
struct agg_pending {
    struct lmr_buf *agg;
    size_t n;
    size_t first[AGG_PENDING]; /* index of its first record */
    size_t start[AGG_PENDING], end[AGG_PENDING];
};

/* Digest the waiting aggregated records together, write them into the event in order, empty agg. */
static enum lmr_result agg_flush(struct lmr_buf *out, struct rec_writer *w, const struct lmr_stream_record *records,
                                 struct agg_pending *pend)
{
    if (!pend->n)
        return LMR_OK;
    uint8_t *base = (uint8_t *)pend->agg->data;
    const uint8_t *msg[AGG_PENDING];
    size_t len[AGG_PENDING];
    uint8_t dig[AGG_PENDING][LMR_KPL_DIGEST_BYTES];
    for (size_t k = 0; k < pend->n; k++) {
        msg[k] = base + pend->start[k] + LMR_KPL_MAGIC_BYTES;
        len[k] = pend->end[k] - pend->start[k] - LMR_KPL_MAGIC_BYTES - LMR_KPL_DIGEST_BYTES;
    }
    enum lmr_result r = lmr_kpl_md5_many(msg, len, pend->n, dig) ? LMR_OK : LMR_ERR_INTERNAL;
    for (size_t k = 0; k < pend->n && !r; k++) {
        memcpy(base + pend->end[k] - LMR_KPL_DIGEST_BYTES, dig[k], LMR_KPL_DIGEST_BYTES);
        r = write_record(out, w, &records[pend->first[k]], base + pend->start[k], pend->end[k] - pend->start[k]);
    }
    pend->n = 0;
    lmr_buf_reset(pend->agg);
    return r;
}

enum lmr_result lmr_stream_event_build(struct lmr_buf *out, const struct lmr_stream_event_info *info,
                                       const struct lmr_stream_record *records, size_t n, struct lmr_err *err)
{
    const char *shard = or_default(info->shard_id, DEFAULT_SHARD);
    const char *arn = or_default(info->event_source_arn, DEFAULT_ARN);
    const char *region = or_default(info->region, DEFAULT_REGION);
    const char *identity = or_default(info->invoke_identity_arn, DEFAULT_IDENTITY);
    enum lmr_result r = lmr_buf_append_str(out, "{\"Records\":[");
    /* The part of every record after its eventID's sequence number is the same: build it once. */
    struct lmr_buf tail;
    lmr_buf_init(&tail, 64 * 1024);
    if (!r)
        r = lmr_buf_append(&tail, REC_F, sizeof REC_F - 1);
    if (!r)
        r = json_str_append(&tail, identity);
    if (!r)
        r = lmr_buf_append(&tail, REC_G, sizeof REC_G - 1);
    if (!r)
        r = json_str_append(&tail, region);
    if (!r)
        r = lmr_buf_append(&tail, REC_H, sizeof REC_H - 1);
    if (!r)
        r = json_str_append(&tail, arn);
    if (!r)
        r = lmr_buf_append(&tail, REC_I, sizeof REC_I - 1);
    /* "},...,\"eventID\":\"<shard>:" before each record's sequence number, also built once. */
    struct lmr_buf mid;
    lmr_buf_init(&mid, 64 * 1024);
    if (!r)
        r = lmr_buf_append(&mid, REC_E, sizeof REC_E - 1);
    if (!r)
        r = lmr_buf_append_str(&mid, shard);
    if (!r)
        r = lmr_buf_append(&mid, ":", 1);
    struct rec_writer w = {.mid = &mid, .tail = &tail};
    if (!info->aggregate) {
        /* One reservation per record, then plain copies: this loop runs 10,000 times per event. */
        for (size_t i = 0; i < n && !r; i++)
            r = write_record(out, &w, &records[i], records[i].data, records[i].len);
    } else {
        /* Consecutive records packed into aggregated records as lmr_stream_agg_place groups them. Up to
           AGG_PENDING complete ones wait in agg, so that their digests are computed together
           (lmr_kpl_md5_many), then go into the event in order. */
        struct lmr_buf agg;
        lmr_buf_init(&agg, (size_t)AGG_PENDING * (LMR_STREAM_RECORD_MAX_BYTES + 64));
        struct agg_pending pend = {.agg = &agg};
        struct lmr_stream_agg_cursor c = {0};
        size_t start = 0;
        bool open = false;
        for (size_t i = 0; i <= n && !r; i++) {
            enum lmr_stream_agg_place place =
                i < n ? lmr_stream_agg_place(&c, info->agg_records_max, &records[i]) : LMR_STREAM_AGG_START;
            if (place == LMR_STREAM_AGG_JOIN) {
                r = lmr_kpl_add(&agg, records[i].data, records[i].len);
                continue;
            }
            if (open) { /* the open aggregated record is complete */
                r = lmr_kpl_finish_later(&agg);
                open = false;
                if (!r) {
                    pend.end[pend.n - 1] = agg.len;
                    if (pend.n == AGG_PENDING)
                        r = agg_flush(out, &w, records, &pend);
                }
            }
            if (r)
                break;
            if (i == n || place == LMR_STREAM_AGG_ALONE) {
                r = agg_flush(out, &w, records, &pend); /* what waits goes first: the order is the records' */
                if (!r && i < n)
                    r = write_record(out, &w, &records[i], records[i].data, records[i].len);
                continue;
            }
            r = lmr_kpl_begin(&agg, records[i].partition_key ? records[i].partition_key : "", &start);
            if (!r) {
                pend.first[pend.n] = i;
                pend.start[pend.n++] = start;
                open = true;
                r = lmr_kpl_add(&agg, records[i].data, records[i].len);
            }
        }
        lmr_buf_clean_up(&agg);
    }
    lmr_buf_clean_up(&mid);
    lmr_buf_clean_up(&tail);
    char start[40], end[40];
    if (!r)
        r = lmr_buf_printf(out, "],\"window\":{\"start\":\"%s\",\"end\":\"%s\"},\"state\":",
                           lmr_stream_iso8601(info->window_start_ms, start, sizeof start),
                           lmr_stream_iso8601(info->window_end_ms, end, sizeof end));
    if (!r)
        r = append_state(out, info->state_json, info->state_extra);
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

void lmr_stream_event_clean_up(struct lmr_stream_event *ev)
{
    if (!ev)
        return;
    free(ev->records);
    free(ev->arena);
    memset(ev, 0, sizeof *ev);
}

/* A string value into the arena, NUL-terminated. */
static bool take_string(struct lmr_json_scan *s, char **arena_pos, const char **out)
{
    const char *raw;
    size_t len;
    bool esc;
    if (!lmr_json_scan_string(s, &raw, &len, &esc))
        return false;
    char *o = *arena_pos;
    if (esc) {
        len = lmr_json_unescape(raw, len, o);
        if (len == (size_t)-1)
            return false;
    } else {
        memcpy(o, raw, len);
    }
    o[len] = '\0';
    *out = o;
    *arena_pos = o + len + 1;
    return true;
}

static bool take_bool(struct lmr_json_scan *s, bool *v)
{
    char c = lmr_json_scan_peek(s);
    *v = c == 't';
    return lmr_json_scan_skip(s);
}

static bool parse_time_string(struct lmr_json_scan *s, uint64_t *ms)
{
    const char *raw;
    size_t len;
    bool esc;
    char buf[64];
    if (!lmr_json_scan_string(s, &raw, &len, &esc) || esc || len >= sizeof buf)
        return false;
    memcpy(buf, raw, len);
    buf[len] = '\0';
    return lmr_stream_parse_time(buf, ms) == LMR_OK;
}

/* approximateArrivalTimestamp: epoch seconds with a fraction, as milliseconds. */
static bool scan_epoch_ms(struct lmr_json_scan *s, uint64_t *ms)
{
    const char *p = s->p;
    while (p < s->end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    uint64_t sec = 0, frac = 0;
    const char *q = p;
    while (q < s->end && *q >= '0' && *q <= '9' && q - p < 15)
        sec = sec * 10 + (uint64_t)(*q++ - '0');
    if (q - p > 1 && *p == '0')
        q = p; /* a leading zero ("0123") is not JSON: take the slow path to fail */
    unsigned digits = 0;
    if (q > p && q < s->end && *q == '.') {
        const char *f = ++q;
        while (q < s->end && *q >= '0' && *q <= '9') {
            if (digits < 3) {
                frac = frac * 10 + (uint64_t)(*q - '0');
                digits++;
            }
            q++;
        }
        if (q == f)
            q = p; /* "12." is not JSON: take the slow path to fail */
    }
    if (q > p && q < s->end && (*q == ',' || *q == '}' || *q == ' ' || *q == '\n' || *q == '\r' || *q == '\t') &&
        sec <= LMR_STREAM_EPOCH_MAX_S) {
        while (digits < 3) {
            frac *= 10;
            digits++;
        }
        *ms = sec * 1000 + frac;
        s->p = q;
        return true;
    }
    double ts;
    return lmr_json_scan_number(s, &ts) && lmr_stream_epoch_s_to_ms(ts, ms);
}

static bool parse_record_slow(struct lmr_json_scan *s, struct lmr_stream_parsed_record *pr, char **arena);

/* Take the literal lit (no blanks before it). */
/* a[0..n) == b[0..n), 8 bytes at a time (inlined: n is a constant at every literal). */
static inline bool bytes_equal(const char *a, const char *b, size_t n)
{
    uint64_t diff = 0, x, y;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    if (i < n) { /* the last 8 bytes again, overlapping (n >= 8), or byte by byte */
        if (n >= 8) {
            memcpy(&x, a + n - 8, 8);
            memcpy(&y, b + n - 8, 8);
            diff |= x ^ y;
        } else {
            for (; i < n; i++)
                diff |= (uint64_t)(uint8_t)(a[i] ^ b[i]);
        }
    }
    return !diff;
}

static inline bool take_lit(struct lmr_json_scan *s, const char *lit, size_t n)
{
    if ((size_t)(s->end - s->p) < n || !bytes_equal(s->p, lit, n))
        return false;
    s->p += n;
    return true;
}
#define TAKE_LIT(s, lit) take_lit((s), (lit), sizeof(lit) - 1)

/* kinesis.data: base64 (escapes allowed: "\/" is JSON for '/') decoded into the arena. */
static bool take_data(struct lmr_json_scan *s, struct lmr_stream_parsed_record *pr, char **arena)
{
    const char *raw;
    size_t len, got;
    bool esc;
    if (!lmr_json_scan_string(s, &raw, &len, &esc))
        return false;
    if (esc) {
        char *tmp = *arena;
        len = lmr_json_unescape(raw, len, tmp);
        if (len == (size_t)-1)
            return false;
        raw = tmp;
    }
    if (lmr_base64_decode(raw, len, (uint8_t *)*arena, &got) != LMR_OK)
        return false;
    pr->data = (const uint8_t *)*arena;
    pr->len = got;
    *arena += got + 1;
    return true;
}

static bool skip_string(struct lmr_json_scan *s)
{
    const char *raw;
    size_t len;
    return lmr_json_scan_string(s, &raw, &len, NULL);
}

/*
 * What the fast path learnt from the records before: the text of the last timestamp and of the
 * last record's tail (from "eventName" to its closing brace: the same in every record of an
 * event). Bytes equal to text that was scanned and accepted in the same place are accepted again
 * without scanning: they are the same tokens.
 */
struct fast_ctx {
    const char *ts, *tail, *eid; /* eid: the eventID before the sequence number ("<shardId>:") */
    size_t ts_len, tail_len, eid_len;
    uint64_t ts_ms;
};

/* Printable ASCII without '"' and '\\': any valid string content may follow it in a string. */
static bool plain_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* The eventID string: "<the prefix learnt before><this record's sequence number, as written>". */
static bool take_event_id(struct lmr_json_scan *s, struct fast_ctx *fc, const char *seq_raw, size_t seq_len)
{
    const char *p = s->p;
    size_t left = (size_t)(s->end - p);
    if (fc->eid_len && left >= fc->eid_len + seq_len + 2 && p[0] == '"' && !memcmp(p + 1, fc->eid, fc->eid_len) &&
        !memcmp(p + 1 + fc->eid_len, seq_raw, seq_len) && p[1 + fc->eid_len + seq_len] == '"') {
        s->p = p + fc->eid_len + seq_len + 2;
        return true;
    }
    const char *raw;
    size_t len;
    if (!lmr_json_scan_string(s, &raw, &len, NULL))
        return false;
    if (len > seq_len && !memcmp(raw + len - seq_len, seq_raw, seq_len) && raw[len - seq_len - 1] == ':' &&
        plain_ascii(raw, len - seq_len)) {
        fc->eid = raw;
        fc->eid_len = len - seq_len;
    }
    return true;
}

#define REC_TAIL_NAME ",\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":"

/*
 * A record laid out exactly as AWS (and lambdamr's poller) writes it, key for key without blanks:
 * the keys and fixed values are compared as literals and only the values are scanned, which is
 * what makes a 10,000-record event cheap. @return false (the scanner back where it was) when the
 * record is laid out any other way; the general parser then reads it.
 */
static bool parse_record_fast(struct lmr_json_scan *s, struct lmr_stream_parsed_record *pr, char **arena,
                              struct fast_ctx *fc)
{
    memset(pr, 0, sizeof *pr);
    const char *start = s->p;
    char *arena0 = *arena;
    if (!TAKE_LIT(s, REC_A))
        return false;
    const char *seq_at = NULL;
    bool ok = s->p < s->end && *s->p == '"' && take_string(s, arena, &pr->partition_key) &&
              TAKE_LIT(s, ",\"sequenceNumber\":") && s->p < s->end && *s->p == '"' && (seq_at = s->p) &&
              take_string(s, arena, &pr->sequence_number);
    size_t seq_raw_len = ok ? (size_t)(s->p - seq_at) - 2 : 0; /* as written, without its quotes */
    ok = ok && TAKE_LIT(s, ",\"data\":") && s->p < s->end && *s->p == '"' && take_data(s, pr, arena) &&
         take_lit(s, REC_D + 1, sizeof REC_D - 2);
    if (ok) {
        if (fc->ts_len && (size_t)(s->end - s->p) > fc->ts_len && s->p[fc->ts_len] == '}' &&
            !memcmp(s->p, fc->ts, fc->ts_len)) {
            pr->arrival_ms = fc->ts_ms;
            s->p += fc->ts_len;
        } else {
            const char *t0 = s->p;
            ok = scan_epoch_ms(s, &pr->arrival_ms) && s->p < s->end && *s->p == '}';
            if (ok) {
                fc->ts = t0;
                fc->ts_len = (size_t)(s->p - t0);
                fc->ts_ms = pr->arrival_ms;
            }
        }
    }
    ok = ok && TAKE_LIT(s, "},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":") &&
         s->p < s->end && *s->p == '"' && take_event_id(s, fc, seq_at + 1, seq_raw_len);
    if (ok && fc->tail_len && (size_t)(s->end - s->p) >= fc->tail_len && !memcmp(s->p, fc->tail, fc->tail_len)) {
        s->p += fc->tail_len;
        return true;
    }
    const char *tail = s->p;
    ok = ok && TAKE_LIT(s, REC_TAIL_NAME) && s->p < s->end && *s->p == '"' && skip_string(s) &&
         TAKE_LIT(s, ",\"awsRegion\":") && s->p < s->end && *s->p == '"' && skip_string(s) &&
         TAKE_LIT(s, ",\"eventSourceARN\":") && s->p < s->end && *s->p == '"' && skip_string(s) && TAKE_LIT(s, "}");
    if (ok) {
        fc->tail = tail;
        fc->tail_len = (size_t)(s->p - tail);
        return true;
    }
    s->p = start;
    s->failed = false;
    *arena = arena0;
    return false;
}

static bool parse_record(struct lmr_json_scan *s, struct lmr_stream_parsed_record *pr, char **arena,
                         struct fast_ctx *fc)
{
    (void)lmr_json_scan_peek(s);
    if (parse_record_fast(s, pr, arena, fc))
        return true;
    return parse_record_slow(s, pr, arena);
}

static bool parse_record_slow(struct lmr_json_scan *s, struct lmr_stream_parsed_record *pr, char **arena)
{
    bool first = true, k_first;
    const char *key, *raw;
    size_t klen, len;
    bool esc, have_data = false;
    if (!lmr_json_scan_expect(s, '{'))
        return false;
    memset(pr, 0, sizeof *pr);
    pr->partition_key = "";
    while (lmr_json_scan_member(s, &first, &key, &klen)) {
        if (!LMR_JSON_KEY_IS(key, klen, "kinesis")) {
            if (!lmr_json_scan_skip(s))
                return false;
            continue;
        }
        if (!lmr_json_scan_expect(s, '{'))
            return false;
        k_first = true;
        while (lmr_json_scan_member(s, &k_first, &key, &klen)) {
            bool ok;
            if (LMR_JSON_KEY_IS(key, klen, "data")) {
                ok = lmr_json_scan_string(s, &raw, &len, &esc);
                if (ok && esc) {
                    /* Base64 never needs escapes, but "\/" is legal JSON for '/'. */
                    char *tmp = *arena;
                    len = lmr_json_unescape(raw, len, tmp);
                    raw = tmp;
                    ok = len != (size_t)-1;
                }
                size_t got;
                ok = ok && lmr_base64_decode(raw, len, (uint8_t *)*arena, &got) == LMR_OK;
                if (ok) {
                    pr->data = (const uint8_t *)*arena;
                    pr->len = got;
                    *arena += got + 1;
                    have_data = true;
                }
            } else if (LMR_JSON_KEY_IS(key, klen, "sequenceNumber")) {
                ok = take_string(s, arena, &pr->sequence_number);
            } else if (LMR_JSON_KEY_IS(key, klen, "partitionKey")) {
                ok = take_string(s, arena, &pr->partition_key);
            } else if (LMR_JSON_KEY_IS(key, klen, "approximateArrivalTimestamp")) {
                ok = scan_epoch_ms(s, &pr->arrival_ms);
            } else {
                ok = lmr_json_scan_skip(s);
            }
            if (!ok)
                return false;
        }
        if (s->failed)
            return false;
    }
    return !s->failed && have_data && pr->sequence_number;
}

enum lmr_result lmr_stream_event_parse(const char *json, size_t len, struct lmr_stream_event *ev, struct lmr_err *err)
{
    memset(ev, 0, sizeof *ev);
    /* Every decoded string and data block is shorter than its JSON form: len bytes suffice. */
    ev->arena = malloc(len + 1);
    size_t cap = 64;
    ev->records = malloc(cap * sizeof *ev->records);
    if (!ev->arena || !ev->records)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory parsing a stream event of %zu bytes", len);
    char *arena = ev->arena;
    struct fast_ctx fc = {0};
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, json, len);
    bool first = true;
    const char *key;
    size_t klen;
    if (!lmr_json_scan_expect(&s, '{'))
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream event must be a JSON object");
    while (lmr_json_scan_member(&s, &first, &key, &klen)) {
        bool ok = true;
        if (LMR_JSON_KEY_IS(key, klen, "Records")) {
            bool el_first = true;
            ok = lmr_json_scan_expect(&s, '[');
            while (ok && lmr_json_scan_element(&s, &el_first)) {
                if (ev->n_records == cap) {
                    cap *= 2;
                    struct lmr_stream_parsed_record *r = realloc(ev->records, cap * sizeof *r);
                    if (!r)
                        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory parsing a stream event");
                    ev->records = r;
                }
                if (!parse_record(&s, &ev->records[ev->n_records], &arena, &fc))
                    return lmr_fail(err, LMR_ERR_FORMAT,
                                    "record %zu of the stream event is malformed: it needs kinesis.data (base64) and "
                                    "kinesis.sequenceNumber, and a kinesis.approximateArrivalTimestamp, if any, "
                                    "in epoch seconds from 0 to %llu",
                                    ev->n_records, (unsigned long long)LMR_STREAM_EPOCH_MAX_S);
                ev->n_records++;
            }
            ok = ok && !s.failed;
        } else if (LMR_JSON_KEY_IS(key, klen, "window")) {
            bool w_first = true;
            ok = lmr_json_scan_expect(&s, '{');
            int got = 0;
            while (ok && lmr_json_scan_member(&s, &w_first, &key, &klen)) {
                if (LMR_JSON_KEY_IS(key, klen, "start")) {
                    ok = parse_time_string(&s, &ev->window_start_ms);
                    got |= 1;
                } else if (LMR_JSON_KEY_IS(key, klen, "end")) {
                    ok = parse_time_string(&s, &ev->window_end_ms);
                    got |= 2;
                } else {
                    ok = lmr_json_scan_skip(&s);
                }
            }
            if (!ok || s.failed || got != 3)
                return lmr_fail(err, LMR_ERR_FORMAT, "the stream event's window needs ISO-8601 \"start\" and \"end\"");
            ev->has_window = true;
        } else if (LMR_JSON_KEY_IS(key, klen, "state")) {
            char c = lmr_json_scan_peek(&s);
            const char *start = s.p;
            ok = lmr_json_scan_skip(&s);
            if (ok && c == '{') {
                ev->state_text = start;
                ev->state_len = (size_t)(s.p - start);
            } else if (ok && c != 'n') {
                return lmr_fail(err, LMR_ERR_FORMAT, "the stream event's \"state\" must be an object");
            }
        } else if (LMR_JSON_KEY_IS(key, klen, "shardId") && lmr_json_scan_peek(&s) == '"') {
            ok = take_string(&s, &arena, &ev->shard_id);
        } else if (LMR_JSON_KEY_IS(key, klen, "eventSourceARN") && lmr_json_scan_peek(&s) == '"') {
            ok = take_string(&s, &arena, &ev->event_source_arn);
        } else if (LMR_JSON_KEY_IS(key, klen, "isFinalInvokeForWindow")) {
            ok = take_bool(&s, &ev->is_final_invoke);
        } else if (LMR_JSON_KEY_IS(key, klen, "isWindowTerminatedEarly")) {
            ok = take_bool(&s, &ev->is_terminated_early);
        } else {
            ok = lmr_json_scan_skip(&s);
        }
        if (!ok)
            break;
    }
    if (s.failed || !lmr_json_scan_at_end(&s))
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream event is not valid JSON (near byte %zu)",
                        (size_t)(s.p - json));
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

/* The state object's markers (JSON text): "full", "lost", and whether it carries its entries ("kv"). */
static bool state_markers(const char *text, size_t len, struct lmr_stream_response *resp)
{
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, text, len);
    bool first = true;
    const char *key;
    size_t klen;
    resp->state_full = resp->state_has_kv = resp->state_lost = false;
    if (!lmr_json_scan_expect(&s, '{'))
        return false;
    while (lmr_json_scan_member(&s, &first, &key, &klen)) {
        if (LMR_JSON_KEY_IS(key, klen, "full"))
            resp->state_full = true;
        else if (LMR_JSON_KEY_IS(key, klen, "kv"))
            resp->state_has_kv = true;
        else if (LMR_JSON_KEY_IS(key, klen, "lost"))
            resp->state_lost = true;
        if (!lmr_json_scan_skip(&s))
            return false;
    }
    return !s.failed;
}

enum lmr_result lmr_stream_response_parse(const char *json, size_t len, struct lmr_stream_response *resp,
                                          struct lmr_err *err)
{
    memset(resp, 0, sizeof *resp);
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, json, len);
    bool first = true, have_state = false;
    const char *key;
    size_t klen;
    enum lmr_result r = LMR_OK;
    if (!lmr_json_scan_expect(&s, '{'))
        return lmr_fail(err, LMR_ERR_FORMAT, "the stream function's response is not a JSON object");
    while (!r && lmr_json_scan_member(&s, &first, &key, &klen)) {
        if (LMR_JSON_KEY_IS(key, klen, "state") && lmr_json_scan_peek(&s) == '{') {
            const char *start = s.p;
            if (!lmr_json_scan_skip(&s))
                break;
            size_t n = (size_t)(s.p - start);
            free(resp->state_json);
            if (!(resp->state_json = strndup(start, n)))
                r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading the stream function's response");
            else if (!state_markers(start, n, resp))
                s.failed = true;
            have_state = true;
        } else if (LMR_JSON_KEY_IS(key, klen, "batchItemFailures") && lmr_json_scan_peek(&s) == '[') {
            bool el_first = true;
            s.p++;
            size_t i = 0;
            while (!r && lmr_json_scan_element(&s, &el_first)) {
                const char *id = NULL, *raw;
                size_t id_len = 0, rlen;
                bool m_first = true, esc;
                char *ids_arena = NULL;
                if (!lmr_json_scan_expect(&s, '{'))
                    break;
                while (lmr_json_scan_member(&s, &m_first, &key, &klen)) {
                    if (LMR_JSON_KEY_IS(key, klen, "itemIdentifier") && lmr_json_scan_peek(&s) == '"') {
                        if (!lmr_json_scan_string(&s, &raw, &rlen, &esc))
                            break;
                        free(ids_arena);
                        ids_arena = malloc(rlen + 1);
                        if (!ids_arena)
                            break;
                        id_len = esc ? lmr_json_unescape(raw, rlen, ids_arena) : rlen;
                        if (!esc)
                            memcpy(ids_arena, raw, rlen);
                        if (id_len == (size_t)-1)
                            id_len = 0;
                        ids_arena[id_len] = '\0';
                        id = ids_arena;
                    } else if (!lmr_json_scan_skip(&s)) {
                        break;
                    }
                }
                /* As on AWS, a failure without a usable itemIdentifier fails the whole batch. */
                if (!s.failed && (!id || !id_len)) {
                    free(ids_arena);
                    r = lmr_fail(err, LMR_ERR_FORMAT,
                                 "batchItemFailures[%zu] has no itemIdentifier: the whole batch counts as failed", i);
                    break;
                }
                char **ids = realloc(resp->failed_ids, (resp->n_failed + 1) * sizeof *ids);
                if (!ids) {
                    free(ids_arena);
                    r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading the stream function's response");
                    break;
                }
                resp->failed_ids = ids;
                resp->failed_ids[resp->n_failed++] = ids_arena;
                i++;
            }
        } else if (!lmr_json_scan_skip(&s)) {
            break;
        }
    }
    if (!r && (s.failed || !lmr_json_scan_at_end(&s)))
        r = lmr_fail(err, LMR_ERR_FORMAT, "the stream function's response is not valid JSON (near byte %zu)",
                     (size_t)(s.p - json));
    if (!r && !have_state)
        r = lmr_fail(err, LMR_ERR_FORMAT,
                     "the stream function's response has no \"state\" object; with tumbling windows Lambda treats "
                     "that as a failed invocation");
    if (r)
        lmr_stream_response_clean_up(resp);
    return r;
}
