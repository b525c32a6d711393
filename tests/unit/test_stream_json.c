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

static bool scan_ok(const char *text)
{
    struct lmr_json_scan s;
    lmr_json_scan_init(&s, text, strlen(text));
    return lmr_json_scan_skip(&s) && lmr_json_scan_peek(&s) == '\0';
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_reject_like_jansson),
        cmocka_unit_test(test_strings_decode_like_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
