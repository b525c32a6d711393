/*
 * lmr_format_double (common/job/fields.c: an exact integer fast path for 1e-4 <= |v| < 1e15, then
 * double-conversion's shortest digits) against double-conversion itself and against the printf
 * definition (the shortest of %.15g, %.16g, %.17g that reads back), on millions of doubles of
 * the kinds that reach it: Query 2's sums, every exponent of the fast range with random
 * significands, short decimals and their neighbours 1-3 ulps away (the 16-17 digit cases), values
 * around powers of ten and of two, dyadic values whose decimals end in 5 (ties of the nearest
 * n-digit decimal), and the edges of the fast range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "job/fields.h"
#include "util/dtoa.h"
#include "test_printf_shortest.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; /* xorshift64 */
    return rng;
}

/* The significant digits of a formatted number (no leading or trailing zeros) and the decimal
   point's position (|x| = 0.DIGITS x 10^point), read back from the text. */
static void decompose(const char *s, char *digits, int *point)
{
    if (*s == '-')
        s++;
    size_t n = 0;
    int before = 0, exp10 = 0;
    bool seen_point = false;
    for (; *s && *s != 'e'; s++) {
        if (*s == '.') {
            seen_point = true;
            continue;
        }
        digits[n++] = *s;
        if (!seen_point)
            before++;
    }
    if (*s == 'e')
        exp10 = atoi(s + 1);
    digits[n] = '\0';
    size_t lead = 0;
    while (lead < n && digits[lead] == '0')
        lead++;
    memmove(digits, digits + lead, n - lead + 1);
    n -= lead;
    while (n > 0 && digits[n - 1] == '0')
        digits[--n] = '\0';
    *point = before - (int)lead + exp10;
}

static uint64_t checked, printf_checked, powers_of_two;

/* v formatted reads back as v, has double-conversion's shortest digits and point, and (every
   printf_every-th value) is exactly printf's text. */
static void check(double v, int printf_every)
{
    if (!isfinite(v))
        return;
    char out[40], digits[40], want[40];
    size_t n = lmr_format_double(v, out, sizeof out);
    if (n != strlen(out))
        fail_msg("%.17g: length %zu for '%s'", v, n, out);
    if (strtod(out, NULL) != v)
        fail_msg("%.17g: '%s' does not read back", v, out);
    if (v != 0) {
        int point, want_point;
        decompose(out, digits, &point);
        size_t wn = lmr_dtoa_shortest(v, want, &want_point);
        want[wn] = '\0';
        if (strcmp(digits, want) || point != want_point)
            fail_msg("%.17g: '%s' has digits %s point %d; double-conversion %s point %d", v, out, digits, point, want,
                     want_point);
    }
    checked++;
    /* printf's %.15g may print more digits than the shortest for subnormals (fewer than 15 significant
       digits there); the digits are checked above */
    if (printf_every && (checked % (uint64_t)printf_every == 0) && fabs(v) >= DBL_MIN) {
        format_printf_shortest(v, want, sizeof want);
        if (strcmp(out, want)) {
            /* Below a power of two the rounding interval is half as wide, so the nearest 16-digit
               decimal (printf's %.16g) may miss it while a farther one above does not:
               double-conversion's shortest has 16 digits there, printf's 17. Only there may they
               differ; the layout must still agree. */
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            int point, printf_point;
            char printf_digits[40];
            decompose(out, digits, &point);
            decompose(want, printf_digits, &printf_point);
            if ((bits & ((1ull << 52) - 1)) != 0 || strlen(digits) != 16 || strlen(printf_digits) != 17)
                fail_msg("%.17g: formatted '%s', printf '%s'", v, out, want);
            powers_of_two++;
        }
        printf_checked++;
    }
}

/* A random double with 2^bexp <= |v| < 2^(bexp+1). */
static double with_exponent(int bexp)
{
    uint64_t bits = (next_u64() & ((1ull << 52) - 1)) | (uint64_t)(bexp + 1023) << 52;
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static void test_edges(void **unused)
{
    (void)unused;
    const struct {
        double v;
        const char *want;
    } cases[] = {{0.1, "0.1"},
                 {0.1 + 0.2, "0.30000000000000004"},
                 {1234.5, "1234.5"},
                 {-0.0, "0"},
                 {0, "0"},
                 {1e21, "1e+21"},
                 {100, "100"},
                 {1.0 / 3, "0.3333333333333333"},
                 {2.0 / 3, "0.6666666666666666"},
                 {706.49532, "706.49532"},
                 {706.49532 + 976.26601, "1682.76133"},
                 {-558.71914, "-558.71914"},
                 {1e-4, "0.0001"},
                 {1e15, "1e+15"},
                 {999999999999999.0, "999999999999999"},
                 {123456789012345.0, "123456789012345"},
                 {0.001, "0.001"},
                 {1 + 0x1p-15, "1.000030517578125"}, /* its nearest 15-digit decimal is a tie */
                 {0x1p-10, "0.0009765625"},
                 {0x1p40, "1099511627776"},
                 {9007199254740993.0, "9007199254740992"},
                 {1e16, "1e+16"},
                 {1.7976931348623157e308, "1.7976931348623157e+308"},
                 {5e-324, "5e-324"}};
    char out[40];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lmr_format_double(cases[i].v, out, sizeof out);
        assert_string_equal(out, cases[i].want);
        check(cases[i].v, 1);
    }
    /* the fast range's ends and every power of ten and of two inside it, a few ulps either side */
    for (int k = -6; k <= 17; k++) {
        double p = pow(10, k), up = p, down = p;
        for (int j = 0; j < 40; j++) {
            check(up, 1), check(down, 1), check(-up, 1);
            up = nextafter(up, INFINITY), down = nextafter(down, 0);
        }
    }
    for (int k = -16; k <= 52; k++) {
        double p = ldexp(1, k), up = p, down = p;
        for (int j = 0; j < 40; j++) {
            check(up, 1), check(down, 1);
            up = nextafter(up, INFINITY), down = nextafter(down, 0);
        }
    }
    /* dyadic values whose exact decimals have 16-19 significant digits ending in 5: ties of the
       nearest 15-, 16- or 17-digit decimal */
    for (int k = 10; k <= 30; k++)
        for (int j = 1; j < 2000; j += 2) {
            check(1 + j * ldexp(1, -k), 1);
            check(1000 + j * ldexp(1, -k), 1);
            check(ldexp(j, -k), 1);
        }
}

static void test_query2_sums(void **unused)
{
    (void)unused;
    /* sums of 1-12 revenues of 5 decimals below 1000, as Query 2 prints them */
    for (int i = 0; i < 1500000; i++) {
        double v = 0;
        for (int k = (int)(next_u64() % 12); k >= 0; k--)
            v += (double)(next_u64() % 100000000) / 1e5;
        check(i % 3 ? v : -v, 64);
    }
}

static void test_random_doubles(void **unused)
{
    (void)unused;
    /* every exponent of the fast range (2^-14 .. 2^49) and around it, random significands: mostly
       16-17 digits */
    for (int i = 0; i < 1500000; i++)
        check(with_exponent((int)(next_u64() % 70) - 17), 64);
    /* short decimals m / 10^k and their neighbours 1-3 ulps away */
    for (int i = 0; i < 1000000; i++) {
        int digits = 1 + (int)(next_u64() % 17), k = (int)(next_u64() % 23);
        uint64_t m = next_u64() % (uint64_t)pow(10, digits);
        if (m >= 1ull << 53)
            m >>= 4;
        double v = (double)m / pow(10, k); /* both exact: correctly rounded */
        check(v, 64);
        double w = v;
        for (int j = (int)(next_u64() % 3); j >= 0; j--)
            w = nextafter(w, next_u64() & 1 ? INFINITY : 0);
        check(w, 64);
    }
    /* random bit patterns: every exponent (the slow path) */
    for (int i = 0; i < 500000; i++) {
        uint64_t bits = next_u64();
        double v;
        memcpy(&v, &bits, sizeof v);
        check(v, 64);
    }
    print_message("checked %llu doubles against double-conversion, %llu of them against printf\n",
                  (unsigned long long)checked, (unsigned long long)printf_checked);
    assert_true(checked > 5000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_query2_sums),
        cmocka_unit_test(test_random_doubles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
