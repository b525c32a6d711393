/*
 * The stream report's caps and sums: a long run keeps its last windows in full (each with at
 * most so many invocations in full), the windows before them as summary lines (the oldest of
 * those dropped and counted), and every window in the totals; the function's "store" member is
 * read from the end of its response; the HTML page draws the windows kept in full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job/task.h"
#include "report/html.h"
#include "report/stream_report.h"

#define WINDOW_MS 1000

static void add(struct lmr_stream_report *r, uint64_t window, uint32_t lane, bool final, double init_ms,
                const char *payload)
{
    struct lmr_invoke_result res;
    lmr_invoke_result_init(&res, 1 << 20);
    res.duration_ms = 10.25;
    res.init_duration_ms = init_ms;
    res.memory_size_mb = 512;
    res.max_memory_used_mb = 40;
    snprintf(res.request_id, sizeof res.request_id, "req-%llu-%u", (unsigned long long)window, lane);
    if (payload)
        lmr_buf_append_str(&res.payload, payload);
    struct lmr_stream_invocation inv = {.shard_id = "shardId-000000000000",
                                        .lane = lane,
                                        .window_start_ms = window,
                                        .final = final,
                                        .records = final ? 0 : 100,
                                        .start_ms = window + 5,
                                        .end_ms = window + 20,
                                        .res = &res};
    lmr_stream_report_add_invocation(r, &inv, WINDOW_MS);
    lmr_invoke_result_clean_up(&res);
}

static void test_caps_and_totals(void **state)
{
    json_t *params = json_pack("{s:s, s:I}", "job", "wordcount", "window_ms", (json_int_t)WINDOW_MS);
    struct lmr_stream_report_options o = {
        .params = params, .windows_max = 3, .invocations_per_window_max = 4, .summaries_max = 5};
    struct lmr_stream_report *r;
    struct lmr_err err = {0};
    assert_int_equal(lmr_stream_report_new(&o, &r, &err), LMR_OK);
    json_decref(params);
    /* 10 closed windows of 6 invocations (the first cold, the last a final invoke that writes 2 PUTs), and one open. */
    const char *final_payload = "{\"state\":{},\"batchItemFailures\":[],\"store\":{\"get\":1,\"put\":2,\"list\":0,"
                                "\"head\":1,\"delete\":0,\"bytes_read\":7,\"bytes_written\":90,\"retries\":0}}";
    for (uint64_t w = 0; w < 10; w++) {
        uint64_t start = 1796000000000ull + w * WINDOW_MS;
        for (int i = 0; i < 6; i++)
            add(r, start, (uint32_t)(i % 2), i == 5, w == 0 && i == 0 ? 30.0 : 0, i == 5 ? final_payload : "{}");
        lmr_stream_report_window_closed(r, start, WINDOW_MS, 100 + w, false, "window=x/part-00000");
    }
    add(r, 1796000000000ull + 10 * WINDOW_MS, 0, false, 0, "{\"state\":{}}");
    /* A failed invocation in the open window: counted, kept with its error, drawn as failed. */
    struct lmr_stream_invocation bad = {.shard_id = "shardId-000000000000",
                                        .window_start_ms = 1796000000000ull + 10 * WINDOW_MS,
                                        .records = 100,
                                        .start_ms = 1796000000000ull + 10 * WINDOW_MS + 30,
                                        .end_ms = 1796000000000ull + 10 * WINDOW_MS + 40,
                                        .error = "Unhandled: <boom>"};
    lmr_stream_report_add_invocation(r, &bad, WINDOW_MS);

    struct lmr_stream_stats stats = {.records_read = 1234, .records_processed = 1234};
    struct lmr_prices prices;
    assert_int_equal(lmr_prices_load(NULL, "us-east-1", "x86_64", &prices, &err), LMR_OK);
    struct lmr_stream_report_end e = {.status = "drained", .stats = &stats, .prices = &prices};
    json_t *j = lmr_stream_report_json(r, &e);
    assert_non_null(j);
    assert_string_equal(lmr_json_str(j, "kind", ""), "stream");
    assert_int_equal(lmr_json_u64(j, "schema_version", 0), 2);
    json_t *ws = json_object_get(j, "windows");
    /* The last 3 closed windows in full (7, 8, 9), then the open one. */
    assert_int_equal(json_array_size(ws), 4);
    assert_int_equal(lmr_json_u64(json_array_get(ws, 0), "start_ms", 0), 1796000000000ull + 7 * WINDOW_MS);
    assert_string_equal(lmr_json_str(json_array_get(ws, 3), "status", ""), "open");
    assert_int_equal(lmr_json_u64(json_array_get(ws, 3), "failed_invocations", 0), 1);
    assert_string_equal(
        lmr_json_str(json_array_get(json_object_get(json_array_get(ws, 3), "invocations"), 1), "error", ""),
        "Unhandled: <boom>");
    json_t *w9 = json_array_get(ws, 2);
    assert_int_equal(lmr_json_u64(w9, "records", 0), 109);
    assert_int_equal(lmr_json_u64(w9, "invocation_count", 0), 6);
    assert_int_equal(json_array_size(json_object_get(w9, "invocations")), 4); /* capped */
    assert_int_equal(lmr_json_u64(w9, "invocations_dropped", 0), 2);
    assert_int_equal(lmr_json_u64(json_object_get(w9, "store"), "put", 0), 2); /* the final invoke's, though not kept */
    json_t *first = json_array_get(json_object_get(w9, "invocations"), 0);
    assert_int_equal(lmr_json_u64(first, "memory_size_mb", 0), 512);
    assert_true(lmr_json_double(first, "billed_duration_ms", 0) == 11); /* 10.25 ms rounded up */
    /* Windows 2..6 as summaries (5), windows 0 and 1 dropped from them. */
    json_t *sum = json_object_get(j, "earlier_windows");
    assert_int_equal(json_array_size(sum), 5);
    assert_int_equal(lmr_json_u64(json_array_get(sum, 0), "start_ms", 0), 1796000000000ull + 2 * WINDOW_MS);
    assert_int_equal(lmr_json_u64(json_object_get(j, "limits"), "earlier_windows_dropped", 0), 2);
    /* Totals: every invocation, the cold one in window 0 included. */
    json_t *t = json_object_get(j, "totals");
    assert_int_equal(lmr_json_u64(t, "invocations", 0), 62);
    assert_int_equal(lmr_json_u64(t, "failed_invocations", 0), 1);
    assert_int_equal(lmr_json_u64(t, "final_invokes", 0), 10);
    assert_int_equal(lmr_json_u64(t, "cold_starts", 0), 1);
    assert_int_equal(lmr_json_u64(t, "windows_closed", 0), 10);
    assert_int_equal(lmr_json_u64(json_object_get(t, "function_store"), "put", 0), 20);
    assert_int_equal(lmr_json_u64(json_object_get(t, "store"), "bytes_written", 0), 900);
    /* Billed: 60 x 11 ms, plus the cold one's Init (30 + 10.25 -> 41 instead of 11), plus the open one. */
    assert_true(lmr_json_double(t, "billed_duration_ms", 0) == 60 * 11 + 30 + 11);
    json_t *c = json_object_get(j, "cost");
    assert_int_equal(lmr_json_u64(c, "invocations", 0), 61); /* billed: the failed one had no REPORT */
    assert_int_equal(lmr_json_u64(json_object_get(json_object_get(c, "s3"), "put"), "requests", 0), 20);

    /* The page: one timeline per window in full, one bar per invocation kept. */
    char *page = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&page, &len);
    assert_int_equal(lmr_report_html_write(f, j, &err), LMR_OK);
    fclose(f);
    size_t sections = 0, bars = 0;
    for (const char *p = page; (p = strstr(p, "class=\"window-timeline\"")); p++)
        sections++;
    for (const char *p = page; (p = strstr(p, "<rect class=\"bar stream")); p++)
        bars++;
    assert_int_equal(sections, 4);
    assert_int_equal(bars, 4 * 3 + 2);
    assert_non_null(strstr(page, "<rect class=\"bar stream failed\""));
    assert_non_null(strstr(page, "FAILED: Unhandled: &lt;boom&gt;")); /* escaped */
    assert_null(strstr(page, "<script"));
    free(page);
    json_decref(j);
    lmr_stream_report_destroy(r);
}

static void test_payload_store(void **state)
{
    const char *ok = "{\"state\":{\"k\":\"\\\"store\\\":{\"},\"batchItemFailures\":[],\"store\":{\"put\":3}}";
    json_t *s = lmr_stream_report_payload_store(ok, strlen(ok));
    assert_non_null(s);
    assert_int_equal(lmr_json_u64(s, "put", 0), 3);
    json_decref(s);
    const char *none = "{\"state\":{},\"batchItemFailures\":[]}";
    assert_null(lmr_stream_report_payload_store(none, strlen(none)));
    const char *bad = "{\"state\":{},\"store\":{\"put\":}";
    assert_null(lmr_stream_report_payload_store(bad, strlen(bad)));
    assert_null(lmr_stream_report_payload_store(NULL, 0));
}

/* A long stream at the default caps: 25 windows of 600 invocations (each with its store figures).
 * The report keeps 20 x 500 of them; the JSON stays under 5 MB, the page under 4 MB (measured: 4.4 and 3.2). */
static void test_default_caps_size(void **state)
{
    json_t *params = json_pack("{s:s, s:I}", "job", "wordcount", "window_ms", (json_int_t)WINDOW_MS);
    struct lmr_stream_report_options o = {.params = params};
    struct lmr_stream_report *r;
    struct lmr_err err = {0};
    assert_int_equal(lmr_stream_report_new(&o, &r, &err), LMR_OK);
    json_decref(params);
    const char *payload = "{\"state\":{},\"batchItemFailures\":[],\"store\":{\"get\":0,\"put\":0,\"list\":0,"
                          "\"head\":0,\"delete\":0,\"bytes_read\":0,\"bytes_written\":0,\"retries\":0}}";
    for (uint64_t w = 0; w < 25; w++) {
        uint64_t start = 1796000000000ull + w * WINDOW_MS;
        for (int i = 0; i < 600; i++)
            add(r, start, (uint32_t)(i % 40), i >= 560, 0, payload);
        lmr_stream_report_window_closed(r, start, WINDOW_MS, 1000, false, "window=x/part-00000");
    }
    struct lmr_stream_stats stats = {0};
    struct lmr_prices prices;
    assert_int_equal(lmr_prices_load(NULL, "us-east-1", "x86_64", &prices, &err), LMR_OK);
    struct lmr_stream_report_end e = {.status = "drained", .stats = &stats, .prices = &prices};
    json_t *j = lmr_stream_report_json(r, &e);
    assert_int_equal(json_array_size(json_object_get(j, "windows")), LMR_STREAM_REPORT_WINDOWS);
    assert_int_equal(json_array_size(json_object_get(j, "earlier_windows")), 5);
    assert_int_equal(lmr_json_u64(json_object_get(j, "totals"), "invocations", 0), 25 * 600);
    char *text = json_dumps(j, JSON_COMPACT);
    char *page = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&page, &len);
    assert_int_equal(lmr_report_html_write(f, j, &err), LMR_OK);
    fclose(f);
    printf("report.json %zu bytes, page %zu bytes for %d invocations kept\n", strlen(text), len,
           LMR_STREAM_REPORT_WINDOWS * LMR_STREAM_REPORT_INVOCATIONS_PER_WINDOW);
    assert_true(strlen(text) < 5u * 1024 * 1024);
    assert_true(len < 4u * 1024 * 1024);
    free(text);
    free(page);
    json_decref(j);
    lmr_stream_report_destroy(r);
}

/* The store member in the function's own shape is read without a JSON parse; any other shape is
   parsed (so extra members stay in the kept invocation); a malformed one counts nothing. */
static void test_store_member_shapes(void **state)
{
    (void)state;
    struct lmr_stream_report_options o = {.invocations_per_window_max = 10};
    struct lmr_stream_report *r;
    struct lmr_err err = {0};
    assert_int_equal(lmr_stream_report_new(&o, &r, &err), LMR_OK);
    uint64_t w = 1796000000000ull;
    add(r, w, 0, false, 0,
        "{\"state\":{},\"store\":{\"get\":3,\"put\":4,\"list\":0,\"head\":0,\"delete\":0,\"bytes_read\":10,"
        "\"bytes_written\":1000,\"retries\":1}}");
    add(r, w, 0, false, 0,
        "{\"state\":{},\"store\":{ \"get\": 5, \"put\":0, \"list\":0, \"head\":0, \"delete\":0, \"bytes_read\":0, "
        "\"bytes_written\":20, \"retries\":0, \"extra\":7}}");
    add(r, w, 0, false, 0, "{\"state\":{},\"store\":{\"get\":01,\"put\":2}}"); /* not JSON: nothing counted */
    add(r, w, 0, false, 0,
        "{\"state\":{},\"store\":{\"get\":1,\"put\":1,\"list\":0,\"head\":0,\"delete\":0,\"bytes_read\":0,"
        "\"bytes_written\":99999999999999999999,\"retries\":0}}"); /* too big for JSON's integers here */
    struct lmr_stream_stats stats = {0};
    struct lmr_stream_report_end e = {.status = "drained", .stats = &stats};
    json_t *j = lmr_stream_report_json(r, &e);
    assert_non_null(j);
    json_t *win = json_array_get(json_object_get(j, "windows"), 0);
    json_t *store = json_object_get(win, "store");
    assert_int_equal(lmr_json_u64(store, "get", 0), 8);
    assert_int_equal(lmr_json_u64(store, "put", 0), 4);
    assert_int_equal(lmr_json_u64(store, "bytes_written", 0), 1020);
    assert_int_equal(lmr_json_u64(store, "retries", 0), 1);
    json_t *invs = json_object_get(win, "invocations");
    assert_int_equal(json_array_size(invs), 4);
    json_t *s0 = json_object_get(json_array_get(invs, 0), "store");
    assert_int_equal(json_object_size(s0), 8);
    assert_int_equal(lmr_json_u64(s0, "bytes_read", 0), 10);
    assert_int_equal(lmr_json_u64(json_object_get(json_array_get(invs, 1), "store"), "extra", 0), 7);
    assert_null(json_object_get(json_array_get(invs, 2), "store"));
    assert_null(json_object_get(json_array_get(invs, 3), "store"));
    json_decref(j);
    lmr_stream_report_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_and_totals),
        cmocka_unit_test(test_payload_store),
        cmocka_unit_test(test_default_caps_size),
        cmocka_unit_test(test_store_member_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
