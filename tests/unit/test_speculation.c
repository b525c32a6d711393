/*
 * The straggler rule without processes (coordinator/speculation.h): the quantile of finished
 * tasks, the factor over their median duration, the floor in ms, the median itself, and the
 * validation of the options as a user gives them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "speculation.h"

static struct lmr_speculation spec(double quantile, double factor, unsigned min_ms)
{
    return (struct lmr_speculation){.enabled = true, .quantile = quantile, .factor = factor, .min_ms = min_ms};
}

static void test_median(void **state)
{
    (void)state;
    double odd[] = {300, 100, 200};
    assert_true(lmr_speculation_median_ms(odd, 3) == 200);
    double even[] = {400, 100, 300, 200};
    assert_true(lmr_speculation_median_ms(even, 4) == 250);
    double one[] = {42};
    assert_true(lmr_speculation_median_ms(one, 1) == 42);
    assert_true(lmr_speculation_median_ms(NULL, 0) == 0);
}

/* Table-driven: the case's name says which part of the rule decides it. */
static void test_rule(void **state)
{
    (void)state;
    static const double durations[] = {100, 110, 90, 100, 105, 95, 100, 120, 80, 100}; /* median 100 */
    struct {
        const char *name;
        struct lmr_speculation s;
        size_t nfinished, ntasks;
        double elapsed_ms;
        bool due;
    } cases[] = {
        {"a straggler after the quantile", spec(0.75, 3, 0), 9, 12, 301, true},
        {"exactly at the threshold", spec(0.75, 3, 0), 9, 12, 300, true},
        {"not yet three times the median", spec(0.75, 3, 0), 9, 12, 299, false},
        {"too few finished (8 of 12 < 75 %)", spec(0.75, 3, 0), 8, 12, 10000, false},
        {"the quantile exactly (3 of 4)", spec(0.75, 3, 0), 3, 4, 1000, true},
        {"below the quantile (2 of 4)", spec(0.75, 3, 0), 2, 4, 1000, false},
        {"quantile 1 with every task finished", spec(1.0, 3, 0), 9, 9, 1000, false},
        {"quantile 1 with one running", spec(1.0, 3, 0), 9, 10, 1000, false},
        {"the floor holds a short phase back", spec(0.75, 3, 2000), 9, 12, 1500, false},
        {"past the floor", spec(0.75, 3, 2000), 9, 12, 2000, true},
        {"factor 10", spec(0.5, 10, 0), 6, 12, 999, false},
        {"factor 10 reached", spec(0.5, 10, 0), 6, 12, 1000, true},
        {"nothing finished", spec(0.1, 1, 0), 0, 12, 1e9, false},
        {"every task finished", spec(0.75, 3, 0), 10, 10, 1e9, false},
        {"disabled", {.enabled = false, .quantile = 0.75, .factor = 3}, 9, 12, 1e9, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t nd = cases[c].nfinished < 10 ? cases[c].nfinished : 10;
        bool due = lmr_speculation_due(&cases[c].s, durations, nd, cases[c].ntasks, cases[c].elapsed_ms);
        bool due_m =
            lmr_speculation_due_median(&cases[c].s, 100, cases[c].nfinished, cases[c].ntasks, cases[c].elapsed_ms);
        if (due != cases[c].due || due_m != cases[c].due)
            fail_msg("case '%s': due %d (from the median: %d), expected %d", cases[c].name, due, due_m, cases[c].due);
    }
}

/* The durations are not modified (the phase keeps them in the order they finished). */
static void test_durations_untouched(void **state)
{
    (void)state;
    double d[] = {300, 100, 200};
    struct lmr_speculation s = spec(0.5, 2, 0);
    assert_true(lmr_speculation_due(&s, d, 3, 4, 400));
    assert_false(lmr_speculation_due(&s, d, 3, 4, 399));
    assert_true(d[0] == 300 && d[1] == 100 && d[2] == 200);
}

static void test_defaults_and_check(void **state)
{
    (void)state;
    struct lmr_speculation d = lmr_speculation_defaults();
    assert_true(d.enabled);
    assert_true(d.quantile == LMR_SPECULATION_QUANTILE_DEFAULT && d.factor == LMR_SPECULATION_FACTOR_DEFAULT);
    assert_int_equal(d.min_ms, LMR_SPECULATION_MIN_MS_DEFAULT);
    struct lmr_err err = {0};
    assert_int_equal(lmr_speculation_check(&d, &err), LMR_OK);
    struct {
        struct lmr_speculation s;
        const char *names;
    } bad[] = {
        {spec(0, 3, 0), "--speculation-quantile 0 "},       {spec(1.5, 3, 0), "--speculation-quantile 1.5 "},
        {spec(-0.2, 3, 0), "--speculation-quantile -0.2 "}, {spec(0.75, 0.5, 0), "--speculation-factor 0.5 "},
        {spec(0.75, 101, 0), "--speculation-factor 101 "},  {spec(0.75, 3, 900001), "--speculation-min-ms 900001 "},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(lmr_speculation_check(&bad[c].s, &err), LMR_ERR_INVALID);
        if (!strstr(err.msg, bad[c].names) || !strstr(err.msg, "default"))
            fail_msg("error for %s: '%s'", bad[c].names, err.msg);
    }
    struct lmr_speculation edge = spec(1, 1, 900000);
    assert_int_equal(lmr_speculation_check(&edge, NULL), LMR_OK);
    struct lmr_speculation nan = spec(NAN, 3, 0);
    assert_int_equal(lmr_speculation_check(&nan, NULL), LMR_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_median),
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_durations_untouched),
        cmocka_unit_test(test_defaults_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
