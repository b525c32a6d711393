/*
 * The cost model against hand computations: x86_64 and arm64 in two regions, Init billed,
 * rounding to 1 ms, S3 request classes; price files; and the HTML page of a 10,000-invocation
 * job staying small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "job/task.h"
#include "report/cost.h"
#include "report/html.h"

static json_t *inv(double duration, double init, double billed, int memory)
{
    return json_pack("{s:f, s:f, s:f, s:i}", "duration_ms", duration, "init_duration_ms", init, "billed_duration_ms",
                     billed, "memory_size_mb", memory);
}

/* Three invocations: a cold one (Init 150.25 ms + 1000.5 ms at 1024 MB: billed 1151 ms), a
 * warm one (99.1 ms at 2048 MB: billed 100 ms), and a cold one whose REPORT already billed Init
 * (AWS's own figure, 301 ms, kept: 200 + 100.2 rounds up to 301). */
static json_t *three(void)
{
    json_t *a = json_array();
    json_array_append_new(a, inv(1000.5, 150.25, 1001, 1024));
    json_array_append_new(a, inv(99.1, 0, 100, 2048));
    json_array_append_new(a, inv(200, 100.2, 301, 512));
    return a;
}

static void check(const char *region, const char *arch, double gb_second, double put, double get, double ephemeral)
{
    struct lmr_prices p;
    struct lmr_err err = {0};
    assert_int_equal(lmr_prices_load(NULL, region, arch, &p, &err), LMR_OK);
    assert_string_equal(p.region, region);
    assert_string_equal(p.architecture, arch);
    assert_true(p.lambda_gb_second == gb_second);
    assert_true(p.lambda_ephemeral_gb_second ==
                ephemeral); /* checked figures: common/report/prices.json "verification" */
    json_t *invs = three();
    struct lmr_request_counts q = {.get = 1000, .put = 200, .list = 3, .head = 40, .del = 77};
    json_t *c = lmr_cost_batch(&p, invs, &q);
    /* By hand: billed ms 1151 + 100 + 301; GB-s = 1.151*1 + 0.100*2 + 0.301*0.5. */
    double gbs = 1.151 * 1.0 + 0.100 * 2.0 + 0.301 * 0.5;
    double lambda = gbs * gb_second + 3 * 0.20 / 1e6;
    double s3 = (200 + 3) * put / 1000 + (1000 + 40) * get / 1000;
    assert_true(lmr_json_double(c, "billed_duration_ms", 0) == 1552);
    assert_true(fabs(lmr_json_double(c, "gb_seconds", 0) - gbs) < 1e-12);
    assert_true(fabs(lmr_json_double(c, "init_gb_seconds", 0) - (0.15025 + 0.1002 * 0.5)) < 1e-12);
    assert_true(fabs(lmr_json_double(c, "lambda_usd", 0) - lambda) < 1e-15);
    assert_true(fabs(lmr_json_double(c, "s3_usd", 0) - s3) < 1e-15);
    assert_true(fabs(lmr_json_double(c, "total_usd", 0) - (lambda + s3)) < 1e-15);
    assert_true(lmr_json_double(json_object_get(json_object_get(c, "s3"), "delete"), "usd", -1) == 0);
    assert_string_equal(lmr_json_str(json_object_get(c, "prices"), "date", ""), "2026-12-01");
    json_decref(c);
    json_decref(invs);
}

static void test_x86_us_east_1(void **state)
{
    check("us-east-1", "x86_64", 0.0000166667, 0.005, 0.0004, 0.0000000309);
}

static void test_arm64_us_east_1(void **state)
{
    check("us-east-1", "arm64", 0.0000133334, 0.005, 0.0004, 0.0000000309);
}

static void test_x86_eu_central_1(void **state)
{
    check("eu-central-1", "x86_64", 0.0000166667, 0.0054, 0.00043, 0.0000000367);
}

static void test_arm64_eu_central_1(void **state)
{
    check("eu-central-1", "arm64", 0.0000133334, 0.0054, 0.00043, 0.0000000367);
}

static void test_billed_ms(void **state)
{
    assert_true(lmr_billed_ms(10.0, 0, 10) == 10);    /* exact stays */
    assert_true(lmr_billed_ms(10.01, 0, 0) == 11);    /* rounds up */
    assert_true(lmr_billed_ms(10.5, 5.25, 11) == 16); /* Init added */
    assert_true(lmr_billed_ms(1, 0, 5) == 5);         /* never below what the service billed */
}

static void test_unknown_region_and_price_file(void **state)
{
    struct lmr_prices p;
    struct lmr_err err = {0};
    assert_int_equal(lmr_prices_load(NULL, "mars-north-1", "x86_64", &p, &err), LMR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "mars-north-1"));
    assert_non_null(strstr(err.msg, "--price-file"));
    assert_non_null(strstr(err.msg, "us-east-1"));
    assert_int_equal(lmr_prices_load(NULL, "us-east-1", "sparc", &p, &err), LMR_ERR_INVALID);

    char path[] = "/tmp/lmr-prices-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *table = "{\"date\":\"2030-01-02\",\"default_region\":\"mars-north-1\",\"regions\":{\"mars-north-1\":"
                        "{\"lambda\":{\"gb_second\":{\"x86_64\":1,\"arm64\":0.5},\"per_million_requests\":2},"
                        "\"s3\":{\"per_1000_put_copy_post_list\":3,\"per_1000_get_and_other\":4},"
                        "\"kinesis\":{\"shard_hour\":5,\"per_million_put_payload_units\":6}}}}";
    assert_true(write(fd, table, strlen(table)) == (ssize_t)strlen(table));
    close(fd);
    err = (struct lmr_err){0};
    assert_int_equal(lmr_prices_load(path, NULL, "arm64", &p, &err), LMR_OK);
    assert_string_equal(p.region, "mars-north-1");
    assert_string_equal(p.date, "2030-01-02");
    assert_true(p.lambda_gb_second == 0.5 && p.s3_per_1000_get == 4 && p.kinesis_shard_hour == 5);
    /* Stream cost adds Kinesis: 2 shard-hours and 3 million payload units. */
    json_t *invs = json_array();
    json_array_append_new(invs, inv(999.2, 0, 1000, 1024));
    struct lmr_request_counts q = {0};
    json_t *c = lmr_cost_stream(&p, invs, &q, 2.0, 3000000);
    assert_true(fabs(lmr_json_double(c, "total_usd", 0) - (1.0 * 0.5 + 2.0 / 1e6 + 2 * 5 + 3 * 6)) < 1e-12);
    json_decref(c);
    json_decref(invs);
    /* A table missing a figure is refused with what is missing. */
    fd = open(path, O_WRONLY | O_TRUNC);
    const char *bad = "{\"regions\":{\"r\":{\"lambda\":{\"gb_second\":{\"x86_64\":1}}}},\"default_region\":\"r\"}";
    assert_true(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
    close(fd);
    assert_int_equal(lmr_prices_load(path, NULL, "x86_64", &p, &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "per_million_requests"));
    unlink(path);
}

/* A job of 10,000 invocations: one bar each, and the page stays under 4 MB. */
static void test_html_large_job(void **state)
{
    json_t *invs = json_array();
    for (int i = 0; i < 10000; i++) {
        json_t *v =
            json_pack("{s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:i, s:i}", "phase", i < 8000 ? "map" : "reduce",
                      "task", i, "attempt", 1, "slot", i % 1000, "start_ms", 1.7e12 + i, "end_ms", 1.7e12 + i + 500,
                      "duration_ms", 500.0, "init_duration_ms", i < 1000 ? 120.0 : 0.0, "billed_duration_ms", 500.0,
                      "memory_size_mb", 1769, "max_memory_used_mb", 200);
        json_array_append_new(invs, v);
    }
    struct lmr_prices p;
    assert_int_equal(lmr_prices_load(NULL, NULL, "x86_64", &p, NULL), LMR_OK);
    struct lmr_request_counts q = {.get = 100000, .put = 20000};
    json_t *report = json_pack("{s:i, s:s, s:s, s:s, s:f, s:f, s:o, s:o, s:{}}", "schema_version", 2, "job", "big",
                               "job_id", "j<1>", "status", "succeeded", "wall_ms", 11000.0, "start_ms", 1.7e12, "cost",
                               lmr_cost_batch(&p, invs, &q), "invocations", invs, "phases");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(lmr_report_html_write(f, report, NULL), LMR_OK);
    fclose(f);
    size_t bars = 0;
    for (const char *s = text; (s = strstr(s, "<rect class=\"bar ")); s++)
        bars++;
    assert_int_equal(bars, 10000);
    assert_true(len < 4u * 1024 * 1024);
    assert_non_null(strstr(text, "j&lt;1&gt;")); /* escaped */
    assert_null(strstr(text, "<script"));
    free(text);
    json_decref(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x86_us_east_1),    cmocka_unit_test(test_arm64_us_east_1),
        cmocka_unit_test(test_x86_eu_central_1), cmocka_unit_test(test_arm64_eu_central_1),
        cmocka_unit_test(test_billed_ms),        cmocka_unit_test(test_unknown_region_and_price_file),
        cmocka_unit_test(test_html_large_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
