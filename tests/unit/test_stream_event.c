/* Stream handler contract: event/response encoding, window math, state size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "job/registry.h"
#include "stream/event.h"
#include "stream_function.h"
#include "stream/state.h"
#include "test_stream_common.h"

static void test_time(void **unused)
{
    char buf[40];
    uint64_t ms;
    /* The AWS documentation's example event window. */
    assert_int_equal(lmr_stream_parse_time("2020-12-09T07:04:00Z", &ms), LMR_OK);
    assert_int_equal(ms, 1607497440000ull);
    assert_string_equal(lmr_stream_iso8601(ms, buf, sizeof buf), "2020-12-09T07:04:00Z");
    assert_string_equal(lmr_stream_iso8601(ms + 5, buf, sizeof buf), "2020-12-09T07:04:00.005Z");
    assert_int_equal(lmr_stream_parse_time("2020-12-09T08:04:00.250+01:00", &ms), LMR_OK);
    assert_int_equal(ms, 1607497440250ull);
    assert_int_equal(lmr_stream_parse_time("1607497440", &ms), LMR_OK);
    assert_int_equal(ms, 1607497440000ull);
    assert_int_equal(lmr_stream_parse_time("2020-13-09T07:04:00Z", &ms), LMR_ERR_INVALID);
    assert_int_equal(lmr_stream_parse_time("2020-12-09 07:04:00", &ms), LMR_ERR_INVALID);
    assert_int_equal(lmr_stream_parse_time("2020-12-09T07:04:00Zjunk", &ms), LMR_ERR_INVALID);
    /* Windows align to multiples of their length since the epoch. */
    assert_int_equal(lmr_stream_window_start(1607497475000ull, 120000), 1607497440000ull);
    assert_int_equal(lmr_stream_window_start(1607497440000ull, 120000), 1607497440000ull);
    assert_int_equal(lmr_stream_window_start(1607497439999ull, 120000), 1607497320000ull);
}

/* Issue 11 item 8: out-of-range times are refused, not cast (a float-to-integer cast out of range is undefined). */
static void test_time_range_checked(void **unused)
{
    static const char *const bad[] = {
        "1e300",          "-1", "-1e300", "1e16", "253402300800", "1234567890123456789012",
        "0803748737.000", "01"}; /* leading zeros (found by fuzz_stream_event) */
    char doc[512];
    struct lmr_err err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(doc, sizeof doc,
                 "{\"Records\":[{\"kinesis\":{\"data\":\"eA==\",\"sequenceNumber\":\"1\","
                 "\"approximateArrivalTimestamp\":%s}}]}",
                 bad[i]);
        struct lmr_stream_event ev;
        if (lmr_stream_event_parse(doc, strlen(doc), &ev, &err) == LMR_OK)
            fail_msg("approximateArrivalTimestamp %s was accepted as %llu ms", bad[i],
                     (unsigned long long)ev.records[0].arrival_ms);
        assert_non_null(strstr(err.msg, "approximateArrivalTimestamp"));
        lmr_stream_event_clean_up(&ev);
    }
    /* The largest time taken, in both the fast and the slow path. */
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {{"253402300799", 253402300799000ull},
                {"253402300799.5", 253402300799500ull},
                {"2.534023007995e11", 253402300799500ull},
                {"0", 0},
                {"1607497475.1234", 1607497475123ull}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(doc, sizeof doc,
                 "{\"Records\":[{\"kinesis\":{\"data\":\"eA==\",\"sequenceNumber\":\"1\","
                 "\"approximateArrivalTimestamp\":%s}}]}",
                 good[i].text);
        struct lmr_stream_event ev;
        assert_int_equal(lmr_stream_event_parse(doc, strlen(doc), &ev, &err), LMR_OK);
        assert_int_equal(ev.records[0].arrival_ms, good[i].ms);
        lmr_stream_event_clean_up(&ev);
    }
    uint64_t ms = 0;
    assert_int_equal(lmr_stream_parse_time("99999999999999999999", &ms), LMR_ERR_INVALID);
    assert_int_equal(lmr_stream_parse_time("253402300800", &ms), LMR_ERR_INVALID);
    assert_false(lmr_stream_epoch_s_to_ms(1e300, &ms));
    assert_false(lmr_stream_epoch_s_to_ms(-0.5, &ms));
    assert_true(lmr_stream_epoch_s_to_ms(1.5, &ms));
    assert_int_equal(ms, 1500);
}

/* Parse text with the event parser and with jansson: both accept or both refuse, and the records agree. */
static void parse_like_jansson(const char *text)
{
    struct lmr_stream_event ev;
    struct lmr_err err;
    enum lmr_result r = lmr_stream_event_parse(text, strlen(text), &ev, &err);
    json_t *j = json_loads(text, 0, NULL);
    json_t *recs = json_object_get(j, "Records");
    bool want_ok = j != NULL;
    for (size_t i = 0; want_ok && i < json_array_size(recs); i++) {
        json_t *ts =
            json_object_get(json_object_get(json_array_get(recs, i), "kinesis"), "approximateArrivalTimestamp");
        want_ok = json_real_value(ts) >= 0; /* the parser's own range rule */
    }
    if (!want_ok) {
        assert_int_not_equal(r, LMR_OK);
    } else {
        assert_int_equal(r, LMR_OK);
        assert_int_equal(ev.n_records, json_array_size(recs));
        for (size_t i = 0; i < ev.n_records; i++) {
            json_t *k = json_object_get(json_array_get(recs, i), "kinesis");
            assert_string_equal(ev.records[i].sequence_number, json_string_value(json_object_get(k, "sequenceNumber")));
            assert_string_equal(ev.records[i].partition_key, json_string_value(json_object_get(k, "partitionKey")));
            uint64_t ms;
            assert_true(
                lmr_stream_epoch_s_to_ms(json_number_value(json_object_get(k, "approximateArrivalTimestamp")), &ms));
            assert_int_equal(ev.records[i].arrival_ms, ms);
        }
    }
    json_decref(j);
    lmr_stream_event_clean_up(&ev);
}

/* Replace the n-th (0-based) occurrence of what in text by with (into a static buffer). */
static const char *replace_nth(const char *text, const char *what, int nth, const char *with)
{
    static char out[1 << 16];
    const char *at = text;
    for (int i = 0; at && i <= nth; i++)
        at = strstr(i ? at + 1 : at, what);
    assert_non_null(at);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, with, at + strlen(what));
    return out;
}

/* The fast path (records in AWS's layout, pieces equal to earlier records' taken without scanning) agrees
   with jansson, also when a later record differs from the earlier ones in any of those pieces. */
static void test_event_fast_path(void **unused)
{
    struct lmr_stream_record recs[3] = {
        {"a b", 3, "00000000000000000001", "00000000000000000001", 1607497475123},
        {"c", 1, "key with \"quotes\"\t\\ 8+ bytes", "00000000000000000002", 1607497475123},
        {"d e", 3, "00000000000000000003", "00000000000000000003", 1607497475123}};
    struct lmr_stream_event_info info = {.shard_id = "shardId-000000000000",
                                         .event_source_arn = "arn:aws:kinesis:local:000000000000:stream/stdin",
                                         .region = "local",
                                         .window_start_ms = 1607497474000,
                                         .window_end_ms = 1607497476000};
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    assert_int_equal(lmr_stream_event_build(&b, &info, recs, 3, NULL), LMR_OK);
    const char *ev = b.data;
    json_t *whole = json_loads(ev, 0, NULL); /* the builder escapes the second record's partition key */
    assert_non_null(whole);
    json_decref(whole);
    parse_like_jansson(ev);
    /* The third record differs from the first two: its own time, region, eventID, sequence number. */
    parse_like_jansson(replace_nth(ev, "1607497475.123", 2, "1607497475.999"));
    parse_like_jansson(replace_nth(ev, "1607497475.123", 2, "1607497475.12"));
    parse_like_jansson(replace_nth(ev, "1607497475.123", 2, "1607497475.123 "));
    parse_like_jansson(replace_nth(ev, "\"local\"", 2, "\"loc\\u0061l\""));
    parse_like_jansson(replace_nth(ev, "\"local\"", 2,
                                   "\"lo\x01"
                                   "cal\""));                               /* a control byte: refused */
    parse_like_jansson(replace_nth(ev, "\"local\"", 2, "\"lo\xc3\x28l\"")); /* not UTF-8: refused */
    parse_like_jansson(replace_nth(ev, "shardId-000000000000:", 2, "shardId-000000000001:"));
    parse_like_jansson(replace_nth(ev, "shardId-000000000000:", 2, "shardId-\\u0030:"));
    parse_like_jansson(replace_nth(ev, "00000000000000000003\",\"data", 0, "0000000000000000000\\u0033\",\"data"));
    parse_like_jansson(replace_nth(ev, "stdin\"}", 2, "stdin\"} "));
    parse_like_jansson(replace_nth(ev, "stdin\"}", 2, "stdin\",\"x\":1}"));
    parse_like_jansson(replace_nth(ev, "stdin\"}", 2, "stdin\"")); /* cut: refused */
    lmr_buf_clean_up(&b);
}

static void test_event_roundtrip(void **unused)
{
    const char bin[] = {'a', '\0', '"', '\n', (char)0xff};
    struct lmr_stream_record recs[2] = {
        {"Hello, this is a test.", 22, "1", "49590338271490256608559692538361571095921575989136588898", 1607497475000},
        {bin, sizeof bin, "k\"ey", "49590338271490256608559692538361571095921575989136588899", 1607497475123},
    };
    struct lmr_stream_event_info info = {.shard_id = "shardId-000000000006",
                                         .event_source_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s",
                                         .window_start_ms = 1607497440000,
                                         .window_end_ms = 1607497560000,
                                         .state_json = "{\"1\":\"282\"}",
                                         .is_final_invoke = true};
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    assert_int_equal(lmr_stream_event_build(&b, &info, recs, 2, NULL), LMR_OK);
    size_t predicted = 0;
    for (int i = 0; i < 2; i++)
        predicted += lmr_stream_event_record_bytes(&info, &recs[i]);
    /* Exact per-record size (the comma is counted for every record, one too many). */
    size_t empty_len;
    {
        struct lmr_buf e;
        lmr_buf_init(&e, 1 << 20);
        assert_int_equal(lmr_stream_event_build(&e, &info, NULL, 0, NULL), LMR_OK);
        empty_len = e.len;
        lmr_buf_clean_up(&e);
    }
    assert_int_equal(b.len, empty_len + predicted - 1);

    /* Independent check of the shape with jansson. */
    json_t *root = json_loads(b.data, 0, NULL);
    assert_non_null(root);
    json_t *r0 = json_array_get(json_object_get(root, "Records"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r0, "kinesis"), "data")),
                        "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==");
    assert_string_equal(json_string_value(json_object_get(r0, "eventID")),
                        "shardId-000000000006:49590338271490256608559692538361571095921575989136588898");
    assert_string_equal(json_string_value(json_object_get(r0, "eventName")), "aws:kinesis:record");
    assert_string_equal(json_string_value(json_object_get(r0, "eventSource")), "aws:kinesis");
    assert_true(json_number_value(json_object_get(json_object_get(r0, "kinesis"), "approximateArrivalTimestamp")) ==
                1607497475.0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "window"), "end")),
                        "2020-12-09T07:06:00Z");
    assert_true(json_is_true(json_object_get(root, "isFinalInvokeForWindow")));
    assert_true(json_is_false(json_object_get(root, "isWindowTerminatedEarly")));
    json_decref(root);

    struct lmr_stream_event ev;
    assert_int_equal(lmr_stream_event_parse(b.data, b.len, &ev, NULL), LMR_OK);
    assert_int_equal(ev.n_records, 2);
    assert_int_equal(ev.records[1].len, sizeof bin);
    assert_memory_equal(ev.records[1].data, bin, sizeof bin);
    assert_string_equal(ev.records[1].partition_key, "k\"ey");
    assert_int_equal(ev.records[1].arrival_ms, 1607497475123ull);
    assert_int_equal(ev.window_start_ms, 1607497440000ull);
    assert_string_equal(ev.shard_id, "shardId-000000000006");
    assert_true(ev.is_final_invoke);
    assert_false(ev.is_terminated_early);
    lmr_stream_event_clean_up(&ev);

    /* A buffer cap makes building fail cleanly. */
    struct lmr_buf small;
    lmr_buf_init(&small, 100);
    struct lmr_err err;
    assert_int_equal(lmr_stream_event_build(&small, &info, recs, 2, &err), LMR_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "--batch-size"));
    lmr_buf_clean_up(&small);
    lmr_buf_clean_up(&b);
}

static void test_response(void **unused)
{
    struct lmr_buf b;
    lmr_buf_init(&b, 4096);
    const char *ids[] = {"123", "456"};
    assert_int_equal(lmr_stream_response_build(&b, "{\"a\":\"1\"}", ids, 2, NULL), LMR_OK);
    assert_string_equal(b.data, "{\"state\":{\"a\":\"1\"},\"batchItemFailures\":[{\"itemIdentifier\":\"123\"},"
                                "{\"itemIdentifier\":\"456\"}]}");
    struct lmr_stream_response resp;
    assert_int_equal(lmr_stream_response_parse(b.data, b.len, &resp, NULL), LMR_OK);
    assert_int_equal(resp.n_failed, 2);
    assert_string_equal(resp.failed_ids[1], "456");
    assert_string_equal(resp.state_json, "{\"a\":\"1\"}");
    lmr_stream_response_clean_up(&resp);
    /* No state: a failed invocation, as on AWS. */
    assert_int_equal(lmr_stream_response_parse("{\"batchItemFailures\":[]}", 24, &resp, NULL), LMR_ERR_FORMAT);
    /* An empty itemIdentifier fails the whole batch. */
    const char *bad = "{\"state\":{},\"batchItemFailures\":[{\"itemIdentifier\":\"\"}]}";
    assert_int_equal(lmr_stream_response_parse(bad, strlen(bad), &resp, NULL), LMR_ERR_FORMAT);
    lmr_buf_clean_up(&b);
}

static uint64_t get_count(struct lmr_stream_state *st, const char *key);

struct find_ctx {
    const char *key;
    uint64_t value;
    int found;
};
static void find_fn(void *user, struct lmr_slice key, struct lmr_slice acc)
{
    struct find_ctx *c = user;
    if (key.len == strlen(c->key) && !memcmp(key.ptr, c->key, key.len)) {
        memcpy(&c->value, acc.ptr, 8);
        c->found++;
    }
}
static uint64_t get_count(struct lmr_stream_state *st, const char *key)
{
    struct find_ctx c = {key, 0, 0};
    lmr_stream_state_foreach_sorted(st, &lmr_job_wordcount, find_fn, &c);
    assert_true(c.found <= 1);
    return c.value;
}

static void test_state_rollback_and_encoding(void **unused)
{
    struct lmr_stream_state *st = lmr_stream_state_new(8);
    uint64_t one = 1;
    struct lmr_slice v = lmr_slice_make(&one, 8);
    char key[32];
    /* Many keys (forces table growth), then a transaction that adds and changes keys, rolled back. */
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(lmr_stream_state_add(st, &lmr_job_wordcount, NULL, lmr_slice_make(key, (size_t)n), v), 0);
    }
    size_t bytes = lmr_stream_state_encoded_bytes(st);
    lmr_stream_state_begin(st);
    for (int i = 4000; i < 9000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(lmr_stream_state_add(st, &lmr_job_wordcount, NULL, lmr_slice_make(key, (size_t)n), v), 0);
    }
    assert_int_equal(get_count(st, "k4500"), 2);
    lmr_stream_state_rollback(st);
    assert_int_equal(lmr_stream_state_count(st), 5000);
    assert_int_equal(lmr_stream_state_encoded_bytes(st), bytes);
    for (int i = 0; i < 9000; i += 97) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(get_count(st, key), i < 5000 ? 1 : 0);
    }
    /* Every key is still findable after the backward-shift deletions. */
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(lmr_stream_state_add(st, &lmr_job_wordcount, NULL, lmr_slice_make(key, (size_t)n), v), 0);
    }
    assert_int_equal(lmr_stream_state_count(st), 5000);
    assert_int_equal(get_count(st, "k4999"), 2);

    /* Encode, exact size, merge back doubles every count. */
    struct lmr_buf b;
    lmr_buf_init(&b, 1 << 20);
    assert_int_equal(lmr_stream_state_encode(st, false, &b), LMR_OK);
    assert_int_equal(b.len, lmr_stream_state_encoded_bytes(st));
    bool full = true;
    assert_int_equal(lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, b.data, &full, NULL), LMR_OK);
    assert_false(full);
    assert_int_equal(get_count(st, "k17"), 4);
    /* Keys with any bytes survive. */
    struct lmr_stream_state *st2 = lmr_stream_state_new(8);
    const char odd[] = {'\0', '\t', '"', (char)0x80};
    lmr_stream_state_add(st2, &lmr_job_wordcount, NULL, lmr_slice_make(odd, sizeof odd), v);
    lmr_buf_reset(&b);
    assert_int_equal(lmr_stream_state_encode(st2, true, &b), LMR_OK);
    lmr_stream_state_clear(st2);
    assert_int_equal(lmr_stream_state_merge_text(st2, &lmr_job_wordcount, NULL, b.data, &full, NULL), LMR_OK);
    assert_true(full);
    struct lmr_buf lines;
    lmr_buf_init(&lines, 1 << 20);
    assert_int_equal(lmr_stream_state_reduce_lines(st2, &lmr_job_wordcount, NULL, &lines, NULL), LMR_OK);
    assert_int_equal(lines.len, sizeof odd + 3);
    assert_memory_equal(lines.data, odd, sizeof odd);
    assert_memory_equal(lines.data + sizeof odd, "\t1\n", 3);
    /* Corrupt states are refused. */
    assert_int_equal(
        lmr_stream_state_merge_text(st2, &lmr_job_wordcount, NULL, "{\"lmr\":\"1\",\"kv\":\"AQ==\"}", NULL, NULL),
        LMR_ERR_FORMAT);
    assert_int_equal(lmr_stream_state_merge_text(st2, &lmr_job_wordcount, NULL, "{\"x\":\"1\"}", NULL, NULL),
                     LMR_ERR_FORMAT);
    lmr_buf_clean_up(&lines);
    lmr_buf_clean_up(&b);
    lmr_stream_state_destroy(st2);
    lmr_stream_state_destroy(st);
}

/* Run the handler on records with extra state members (lambdamr's poller's "byref"), returning the parsed response. */
static enum lmr_result run_handler_x(struct lmr_stream_handler_config *cfg, const char *state, const char *extra,
                                     const char *const *lines, size_t n, bool final, struct lmr_stream_response *resp)
{
    struct lmr_stream_event_info info = {.window_start_ms = 0,
                                         .window_end_ms = 10000,
                                         .state_json = state,
                                         .state_extra = extra,
                                         .is_final_invoke = final};
    return test_stream_run_lines(cfg, info, "pk", lines, n, resp);
}

static enum lmr_result run_handler(struct lmr_stream_handler_config *cfg, const char *state, const char *const *lines,
                                   size_t n, bool final, struct lmr_stream_response *resp)
{
    return run_handler_x(cfg, state, NULL, lines, n, final, resp);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char text[1024];
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = '\0';
    return text;
}

/* lambdamr's poller asks for states by reference ("byref":"1"): the answer names the state without its
   entries and the environment keeps it; an environment that does not hold a named state answers "lost"
   and takes nothing; "byref":"snap" brings the whole state back. */
static void test_handler_by_reference(void **unused)
{
    struct lmr_stream_handler_config cfg;
    assert_int_equal(lmr_stream_handler_config_init(&cfg, &lmr_job_wordcount, NULL, NULL), LMR_OK);
    const char *byref = "\"byref\":\"1\"", *snap = "\"byref\":\"snap\"";
    const char *l1[] = {"a b a"}, *l2[] = {"b c"}, *l3[] = {"a"};
    struct lmr_stream_response r1, r2, r2b, r3, r4, r5;
    /* A seed with byref: taken, answered by reference. */
    assert_int_equal(run_handler_x(&cfg, "{\"lmr\":\"1\"}", byref, l1, 1, false, &r1), LMR_OK);
    assert_false(r1.state_has_kv);
    assert_false(r1.state_lost);
    assert_null(strstr(r1.state_json, "\"kv\""));
    assert_non_null(strstr(r1.state_json, "\"ref\":\""));
    assert_non_null(strstr(r1.state_json, "\"n\":\"1\""));
    assert_int_equal(run_handler_x(&cfg, r1.state_json, byref, l2, 1, false, &r2), LMR_OK);
    assert_false(r2.state_lost);
    assert_int_equal(r2.n_failed, 0);
    /* r1's state moved on (r2): sent again by reference it is lost; nothing taken, the first record named. */
    assert_int_equal(run_handler_x(&cfg, r1.state_json, byref, l2, 1, false, &r2b), LMR_OK);
    assert_true(r2b.state_lost);
    assert_int_equal(r2b.n_failed, 1);
    assert_string_equal(r2b.failed_ids[0], "00000000000000000001");
    lmr_stream_response_clean_up(&r2b);
    /* Also without the marker (a lane that went on by value while another window's state was a reference):
       a reference is never taken for an empty state. */
    assert_int_equal(run_handler_x(&cfg, r1.state_json, NULL, l2, 1, false, &r2b), LMR_OK);
    assert_true(r2b.state_lost);
    /* A snapshot: the whole state, with both batches. */
    assert_int_equal(run_handler_x(&cfg, r2.state_json, snap, l3, 1, false, &r3), LMR_OK);
    assert_true(r3.state_has_kv);
    struct lmr_stream_state *st = lmr_stream_state_new(8);
    assert_int_equal(lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, r3.state_json, NULL, NULL), LMR_OK);
    assert_int_equal(get_count(st, "a"), 3);
    assert_int_equal(get_count(st, "b"), 2);
    assert_int_equal(get_count(st, "c"), 1);
    /* The whole state sent by reference to an environment without it (the poller rebuilding): decoded. */
    char *forged = strdup(r3.state_json);
    char *at = strstr(forged, "\"ref\":\"");
    at[7] = at[7] == 'f' ? 'e' : 'f';
    assert_int_equal(run_handler_x(&cfg, forged, byref, l3, 1, false, &r4), LMR_OK);
    assert_false(r4.state_lost);
    assert_false(r4.state_has_kv);
    free(forged);
    /* The final invoke by reference writes the window from the kept state. */
    char dir[] = "/tmp/lmr-test-byref-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(lmr_stream_handler_config_set_output(&cfg, dir, NULL), LMR_OK);
    assert_int_equal(run_handler_x(&cfg, r4.state_json, byref, NULL, 0, true, &r5), LMR_OK);
    assert_false(r5.state_lost);
    char path[256];
    snprintf(path, sizeof path, "%s/window=1970-01-01T00:00:00Z/part-00000", dir);
    assert_non_null(read_text(path));
    assert_string_equal(read_text(path), "a\t4\nb\t2\nc\t1\n");
    lmr_stream_response_clean_up(&r5);
    /* The same final again: the environment let the state go, so it is lost (the poller rebuilds it). */
    assert_int_equal(run_handler_x(&cfg, r4.state_json, byref, NULL, 0, true, &r5), LMR_OK);
    assert_true(r5.state_lost);
    assert_int_equal(r5.n_failed, 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    struct lmr_stream_response *all[] = {&r1, &r2, &r2b, &r3, &r4, &r5};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        lmr_stream_response_clean_up(all[i]);
    lmr_stream_state_destroy(st);
    lmr_stream_handler_config_clean_up(&cfg);
}

static void test_handler_wordcount(void **unused)
{
    struct lmr_stream_handler_config cfg;
    assert_int_equal(lmr_stream_handler_config_init(&cfg, &lmr_job_wordcount, NULL, NULL), LMR_OK);
    const char *lines1[] = {"a b a", "c\nb a\n"};
    struct lmr_stream_response r1, r2;
    assert_int_equal(run_handler(&cfg, NULL, lines1, 2, false, &r1), LMR_OK);
    assert_int_equal(r1.n_failed, 0);
    const char *lines2[] = {"a d"};
    assert_int_equal(run_handler(&cfg, r1.state_json, lines2, 1, false, &r2), LMR_OK);
    struct lmr_stream_state *st = lmr_stream_state_new(8);
    assert_int_equal(lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, r2.state_json, NULL, NULL), LMR_OK);
    assert_int_equal(get_count(st, "a"), 4);
    assert_int_equal(get_count(st, "b"), 2);
    assert_int_equal(get_count(st, "c"), 1);
    assert_int_equal(get_count(st, "d"), 1);
    /* The same event again (a retry): this environment's kept state has moved on, so the state the event
       carries is decoded instead; the result is the same. */
    struct lmr_stream_response r2b;
    assert_int_equal(run_handler(&cfg, r1.state_json, lines2, 1, false, &r2b), LMR_OK);
    assert_non_null(strstr(r2b.state_json, "\"ref\":\""));
    assert_string_not_equal(r2b.state_json, r2.state_json); /* a new reference */
    lmr_stream_state_clear(st);
    assert_int_equal(lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, r2b.state_json, NULL, NULL), LMR_OK);
    assert_int_equal(get_count(st, "a"), 4);
    assert_int_equal(get_count(st, "d"), 1);
    /* A reference this environment never gave (a cold or different environment): decoded as well. */
    char *forged = strdup(r1.state_json);
    char *at = strstr(forged, "\"ref\":\"");
    assert_non_null(at);
    at[7] = at[7] == 'f' ? 'e' : 'f';
    struct lmr_stream_response r2c;
    assert_int_equal(run_handler(&cfg, forged, lines2, 1, false, &r2c), LMR_OK);
    lmr_stream_state_clear(st);
    assert_int_equal(lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, r2c.state_json, NULL, NULL), LMR_OK);
    assert_int_equal(get_count(st, "a"), 4);
    free(forged);
    lmr_stream_response_clean_up(&r2b);
    lmr_stream_response_clean_up(&r2c);
    /* The final invoke needs an output; with one, it takes its records, writes the shard's part and (one
       shard: the window is complete) merges the window output. */
    struct lmr_stream_response r3;
    assert_int_equal(run_handler(&cfg, r2.state_json, lines2, 1, true, &r3), LMR_ERR_INVALID);
    char dir[] = "/tmp/lmr-test-handler-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(lmr_stream_handler_config_set_output(&cfg, dir, NULL), LMR_OK);
    assert_int_equal(run_handler(&cfg, r2.state_json, lines2, 1, true, &r3), LMR_OK);
    char path[256], text[256] = "";
    snprintf(path, sizeof path, "%s/window=1970-01-01T00:00:00Z/part-00000", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = '\0';
    assert_string_equal(text, "a\t5\nb\t2\nc\t1\nd\t2\n");
    lmr_stream_response_clean_up(&r3);
    /* Retried: nothing written twice, no part left behind. */
    assert_int_equal(run_handler(&cfg, r2.state_json, lines2, 1, true, &r3), LMR_OK);
    lmr_stream_response_clean_up(&r3);
    f = fopen(path, "r");
    got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = '\0';
    assert_string_equal(text, "a\t5\nb\t2\nc\t1\nd\t2\n");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "test -z \"$(find %s/_lambdamr -name '*.kv')\" && rm -rf %s", dir, dir);
    assert_int_equal(system(cmd), 0);
    lmr_stream_response_clean_up(&r1);
    lmr_stream_response_clean_up(&r2);

    /* A poison record: reported with its sequence number, records before it are kept. */
    cfg.fail_match = strdup("POISON");
    const char *lines3[] = {"x", "y POISON", "z"};
    assert_int_equal(run_handler(&cfg, NULL, lines3, 3, false, &r1), LMR_OK);
    assert_int_equal(r1.n_failed, 1);
    assert_string_equal(r1.failed_ids[0], "00000000000000000002");
    lmr_stream_state_clear(st);
    lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, r1.state_json, NULL, NULL);
    assert_int_equal(lmr_stream_state_count(st), 1);
    assert_int_equal(get_count(st, "x"), 1);
    lmr_stream_response_clean_up(&r1);
    lmr_stream_state_destroy(st);
    lmr_stream_handler_config_clean_up(&cfg);
}

static void test_handler_state_limit(void **unused)
{
    struct lmr_stream_handler_config cfg;
    assert_int_equal(lmr_stream_handler_config_init(&cfg, &lmr_job_wordcount, NULL, NULL), LMR_OK);
    cfg.state_max_bytes = 200;
    /* Each record brings new keys; the state fills up and the window is terminated early. */
    static char bufs[40][64];
    const char *lines[40];
    for (int i = 0; i < 40; i++) {
        snprintf(bufs[i], sizeof bufs[i], "w%da w%db", i, i);
        lines[i] = bufs[i];
    }
    struct lmr_stream_response r;
    assert_int_equal(run_handler(&cfg, NULL, lines, 40, false, &r), LMR_OK);
    assert_int_equal(r.n_failed, 1);
    assert_true(strlen(r.state_json) <= 200 + strlen(",\"full\":\"1\""));
    assert_non_null(strstr(r.state_json, "\"full\":\"1\""));
    struct lmr_stream_state *st = lmr_stream_state_new(8);
    bool full;
    lmr_stream_state_merge_text(st, &lmr_job_wordcount, NULL, r.state_json, &full, NULL);
    assert_true(full);
    /* Every record before the failed one is in the state entirely, none after it. */
    size_t first_failed = (size_t)strtoull(r.failed_ids[0], NULL, 10) - 1;
    assert_true(first_failed > 0 && first_failed < 40);
    assert_int_equal(lmr_stream_state_count(st), 2 * first_failed);
    lmr_stream_response_clean_up(&r);
    /* One record larger than the limit on an empty state is a function error. */
    static char big[400];
    memset(big, 'q', sizeof big - 1);
    const char *one[] = {big};
    assert_int_equal(run_handler(&cfg, NULL, one, 1, false, &r), LMR_ERR_TOO_LARGE);
    lmr_stream_state_destroy(st);
    lmr_stream_handler_config_clean_up(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_time_range_checked),
        cmocka_unit_test(test_event_roundtrip),
        cmocka_unit_test(test_event_fast_path),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_state_rollback_and_encoding),
        cmocka_unit_test(test_handler_wordcount),
        cmocka_unit_test(test_handler_state_limit),
        cmocka_unit_test(test_handler_by_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
