/*
 * Varints (common/util/varint.h): the reader's caps (each caller's length limit, 64 bits), a
 * truncated varint, and the reader against the writer over values around every 7-bit boundary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/varint.h"

/* Read bytes[0..n) with cap max_bytes: whether it reads, the value, the bytes used. */
static bool get(const uint8_t *bytes, size_t n, unsigned max_bytes, uint64_t *v, size_t *used)
{
    const uint8_t *p = bytes;
    bool ok = lmr_varint_get(&p, bytes + n, max_bytes, v);
    *used = (size_t)(p - bytes);
    return ok;
}

static void test_caps(void **unused)
{
    (void)unused;
    uint64_t v = 0;
    size_t used;
    const uint8_t five[] = {0xff, 0xff, 0xff, 0xff, 0x7f}; /* 2^35 - 1: the state's largest */
    assert_true(get(five, sizeof five, 5, &v, &used));
    assert_int_equal(v, (1ull << 35) - 1);
    assert_int_equal(used, 5);
    const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_false(get(six, sizeof six, 5, &v, &used)); /* past the state's cap */
    assert_int_equal(used, 0);                        /* nothing consumed */
    assert_true(get(six, sizeof six, LMR_VARINT_MAX_BYTES, &v, &used));
    assert_int_equal(v, 1ull << 35);
    const uint8_t max64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_true(get(max64, sizeof max64, LMR_VARINT_MAX_BYTES, &v, &used));
    assert_int_equal(v, UINT64_MAX);
    const uint8_t past64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    assert_false(get(past64, sizeof past64, LMR_VARINT_MAX_BYTES, &v, &used));
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_false(get(eleven, sizeof eleven, LMR_VARINT_MAX_BYTES, &v, &used));
    const uint8_t cut[] = {0x80, 0x80};
    assert_false(get(cut, sizeof cut, LMR_VARINT_MAX_BYTES, &v, &used)); /* truncated */
    assert_false(get(cut, 0, LMR_VARINT_MAX_BYTES, &v, &used));          /* empty */
}

static void test_roundtrip(void **unused)
{
    (void)unused;
    for (unsigned bit = 0; bit < 64; bit++) {
        uint64_t base = 1ull << bit;
        uint64_t values[] = {base - 1, base, base + 1, base | (base - 1)};
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            uint8_t b[LMR_VARINT_MAX_BYTES + 1];
            uint8_t *end = lmr_varint_put(b, values[i]);
            assert_int_equal((size_t)(end - b), lmr_varint_bytes(values[i]));
            uint64_t v = 0;
            size_t used;
            assert_true(get(b, (size_t)(end - b), LMR_VARINT_MAX_BYTES, &v, &used));
            assert_int_equal(v, values[i]);
            assert_int_equal(used, (size_t)(end - b));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
