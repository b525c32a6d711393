/*
 * The size parser takes whole numbers with binary units only; UTF-8 validation; job arguments
 * that are not UTF-8 survive the trip through JSON byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "job/args.h"
#include "util/misc.h"

static void test_parse_size(void **state)
{
    static const struct {
        const char *in;
        uint64_t want; /* 0: refused */
    } cases[] = {
        {"1", 1},
        {"65536", 65536},
        {"64K", 64u << 10},
        {"64KiB", 64u << 10},
        {"64kb", 64u << 10},
        {"64M", 64u << 20},
        {"1G", 1u << 30},
        {"2T", 2ull << 40},
        {"10B", 10},
        {"1.5", 0},
        {"1.5G", 0},
        {"1e3", 0},
        {"-1", 0},
        {"+1", 0},
        {" 1", 0},
        {"1 ", 0},
        {"0", 0},
        {"0x10", 0},
        {"", 0},
        {"K", 0},
        {"64Q", 0},
        {"64KK", 0},
        {"18446744073709551616", 0},
        {"99999999999999999999", 0},
        {"8193T", 0},
        {"9007199254740993", 0},
        {"nan", 0},
        {"inf", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        enum lmr_result r = lmr_parse_size(cases[i].in, &v);
        if (cases[i].want ? (r != LMR_OK || v != cases[i].want) : r == LMR_OK)
            fail_msg("lmr_parse_size(\"%s\"): result %d, value %llu (want %llu)", cases[i].in, r, (unsigned long long)v,
                     (unsigned long long)cases[i].want);
    }
    assert_int_equal(lmr_parse_size(NULL, &(uint64_t){0}), LMR_ERR_INVALID);
}

static void test_utf8_valid(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain.txt", true},
        {"na\xc3\xafve", true},
        {"\xe2\x82\xac", true},
        {"\xf0\x9f\x98\x80", true},
        {"\xff.txt", false},
        {"\xc3", false},
        {"\xc0\xaf", false},
        {"\xe0\x80\xaf", false},
        {"\xed\xa0\x80", false},
        {"\xf4\x90\x80\x80", false},
        {"\x80", false},
        {"\xe2\x82", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (lmr_utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("case %zu: want %s", i, cases[i].ok ? "valid" : "invalid");
    char out[64];
    assert_string_equal(lmr_escape_bytes("a\xff\\b\n", out, sizeof out), "a\\xff\\x5cb\\x0a");
}

static void test_args_bytes_round_trip(void **state)
{
    struct lmr_job_args *a = lmr_job_args_new();
    assert_int_equal(lmr_job_args_set(a, "delimiter", "\xff"), LMR_OK);
    assert_int_equal(lmr_job_args_set(a, "where", "2=\xff"), LMR_OK);
    assert_int_equal(lmr_job_args_set(a, "op", "sum"), LMR_OK);
    assert_int_equal(lmr_job_args_set(a, "\xff", "x"), LMR_ERR_INVALID);
    json_t *j = lmr_job_args_to_json(a);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(text); /* jansson refuses to dump invalid UTF-8: the encoding must avoid it */
    assert_string_equal(text, "{\"delimiter\":{\"base64\":\"/w==\"},\"op\":\"sum\",\"where\":{\"base64\":\"Mj3/\"}}");
    json_t *back_j = json_loads(text, 0, NULL);
    struct lmr_job_args *back = NULL;
    struct lmr_err err = {0};
    assert_int_equal(lmr_job_args_from_json(back_j, &back, &err), LMR_OK);
    assert_string_equal(lmr_job_arg(back, "delimiter"), "\xff");
    assert_string_equal(lmr_job_arg(back, "where"), "2=\xff");
    assert_string_equal(lmr_job_arg(back, "op"), "sum");
    /* malformed encodings are refused, not dropped */
    json_t *bad = json_pack("{s:{s:s}}", "delimiter", "base64", "not base64!");
    struct lmr_job_args *none = NULL;
    assert_int_equal(lmr_job_args_from_json(bad, &none, &err), LMR_ERR_FORMAT);
    json_decref(bad);
    bad = json_pack("{s:{s:s}}", "delimiter", "base64", "AA==");
    assert_int_equal(lmr_job_args_from_json(bad, &none, &err), LMR_ERR_FORMAT); /* a NUL byte */
    json_decref(bad);
    bad = json_pack("{s:i}", "delimiter", 1);
    assert_int_equal(lmr_job_args_from_json(bad, &none, &err), LMR_ERR_FORMAT);
    json_decref(bad);
    free(text);
    json_decref(j);
    json_decref(back_j);
    lmr_job_args_destroy(back);
    lmr_job_args_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_args_bytes_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
