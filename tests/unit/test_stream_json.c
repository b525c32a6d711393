/* The in-place JSON scanner against jansson as the oracle: accept/reject and decoded strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "stream/json_scan.h"

static bool scan_ok_len(const char *text, size_t len)
{
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, text, len);
    return lmr_json_scan_skip(&s) && lmr_json_scan_at_end(&s);
}

static bool scan_ok(const char *text)
{
    return scan_ok_len(text, strlen(text));
}

static bool jansson_ok(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    json_decref(j);
    return j != NULL;
}

static void test_accept_reject_like_jansson(void **unused)
{
    static const char *const docs[] = {
        "{}",
        "[]",
        "{\"a\":1}",
        "{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false}",
        "\"x\"",
        "-0.5e+10",
        "{\"a\":\"\\u00e9\\n\\\"\\\\\\/\"}",
        "{\"k\":\"0123456789abcdef0123456789abcdef\\\"after 16 bytes\"}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "[1,2",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"0123456789abcdef0123\x01\"}",
        "{\"a\":tru}",
        "[1] [2]",
        "{\"a\":-}",
        "  {  \"a\" :  [ ]  }  ",
        "{\"a\":\"unterminated}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        if (scan_ok(docs[i]) != jansson_ok(docs[i]))
            fail_msg("disagreement with jansson on %s", docs[i]);
    }
}

static void test_strings_decode_like_jansson(void **unused)
{
    /* Lengths around the 8- and 16-byte fast paths, escapes at every offset. */
    char doc[256], raw_text[128];
    for (int len = 0; len < 40; len++) {
        for (int esc_at = -1; esc_at < len; esc_at++) {
            int n = 0;
            for (int i = 0; i < len; i++) {
                if (i == esc_at)
                    n += sprintf(raw_text + n, "\\u00fc");
                else
                    raw_text[n++] = (char)('a' + i % 26);
            }
            raw_text[n] = '\0';
            snprintf(doc, sizeof doc, "[\"%s\"]", raw_text);
            struct lmr_json_scan s;
            lmr_json_scan_init(&s, doc, strlen(doc));
            bool first = true, esc;
            const char *raw;
            size_t rlen;
            assert_true(lmr_json_scan_expect(&s, '['));
            assert_true(lmr_json_scan_element(&s, &first));
            assert_true(lmr_json_scan_string(&s, &raw, &rlen, &esc));
            assert_int_equal(esc, esc_at >= 0);
            char out[128];
            size_t olen = lmr_json_unescape(raw, rlen, out);
            json_t *j = json_loads(doc, 0, NULL);
            assert_non_null(j);
            json_t *str = json_array_get(j, 0);
            assert_int_equal(olen, json_string_length(str));
            assert_memory_equal(out, json_string_value(str), olen);
            json_decref(j);
        }
    }
    /* A surrogate pair becomes one 4-byte UTF-8 character. */
    char out[16];
    size_t n = lmr_json_unescape("\\ud83d\\ude00", 12, out);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);
}

/* Issue 11 item 8: each of these the scanner used to accept although jansson refuses it. */
static void test_rejects_what_jansson_rejects(void **unused)
{
    static const struct {
        const char *text;
        size_t len;
    } docs[] = {
#define DOC(lit) {lit, sizeof(lit) - 1}
        DOC("\"\\ud800\""),                       /* lone high surrogate */
        DOC("\"\\udc00\""),                       /* lone low surrogate */
        DOC("\"\\ud800\\u0041\""),                /* high surrogate + not a low one */
        DOC("\"\\ud800x\""),                      /* high surrogate at the end of an escape run */
        DOC("\"\\u0000\""),                       /* U+0000 (jansson needs JSON_ALLOW_NUL) */
        DOC("\"\xff\""),                          /* raw bytes that are not UTF-8 */
        DOC("\"abc\xc3\""),                       /* truncated 2-byte sequence */
        DOC("\"\xc0\x80\""),                      /* overlong NUL */
        DOC("\"\xe0\x80\xaf\""),                  /* overlong '/' */
        DOC("\"\xed\xa0\x80\""),                  /* an encoded surrogate (CESU-8) */
        DOC("\"\xf4\x90\x80\x80\""),              /* above U+10FFFF */
        DOC("\"0123456789abcdef0123\xfe tail\""), /* invalid byte past the 16-byte fast path */
        DOC("1e999"),                             /* real overflow */
        DOC("-1e999"),
        DOC("{\"a\":[1e400]}"),
        DOC("12345678901234567890"), /* integer beyond int64 */
        DOC("-9223372036854775809"),
        DOC("{}\0"),      /* a NUL byte after the document is not the end */
        DOC("[1]\0 [2]"), /* nor is what follows it */
        /* And what both accept. */
        DOC("\"\\ud83d\\ude00\""),
        DOC("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 0123456789abcdef\""),
        DOC("\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\""),
        DOC("1e-999"),
        DOC("9223372036854775807"),
        DOC("-9223372036854775808"),
        DOC("1.7976931348623157e308"),
#undef DOC
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *j = json_loadb(docs[i].text, docs[i].len, JSON_DECODE_ANY, NULL);
        bool scanned = scan_ok_len(docs[i].text, docs[i].len);
        if (scanned != (j != NULL))
            fail_msg("document %zu: the scanner %s it, jansson %s it", i, scanned ? "accepts" : "refuses",
                     j ? "accepts" : "refuses");
        json_decref(j);
    }
}

/* Numbers decode to the value jansson gives (integer or real). */
static void test_numbers_decode_like_jansson(void **unused)
{
    static const char *const nums[] = {
        "0",   "-0",    "7",      "-12",  "123456789012345678", "9007199254740993",
        "0.5", "-2.25", "1e-999", "1E+2", "3.14159e-7",         "1.7976931348623157e308"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        struct lmr_json_scan s;
        lmr_json_scan_init(&s, nums[i], strlen(nums[i]));
        double v = -1;
        assert_true(lmr_json_scan_number(&s, &v));
        json_t *j = json_loads(nums[i], JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        double want = json_is_integer(j) ? (double)json_integer_value(j) : json_real_value(j);
        if (v != want)
            fail_msg("%s: scanner %.17g, jansson %.17g", nums[i], v, want);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_reject_like_jansson),
        cmocka_unit_test(test_strings_decode_like_jansson),
        cmocka_unit_test(test_rejects_what_jansson_rejects),
        cmocka_unit_test(test_numbers_decode_like_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
