/* scan (Query 1): setup validation, projection, numeric and string conditions, malformed rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "job/registry.h"
#include "test_jobs_common.h"

struct run {
    void *state;
    struct recorder rec;
    struct lmr_job_counters counters;
    int failures;
};

/* Set up scan with args and map every row; returns setup's status. */
static int run_scan(struct run *r, const char *const *rows, size_t nrows, struct lmr_job_args *args, char *errbuf,
                    size_t errlen)
{
    memset(r, 0, sizeof *r);
    recorder_init(&r->rec);
    int rc = lmr_job_scan.setup(&r->state, args, errbuf, errlen);
    lmr_job_args_destroy(args);
    if (rc)
        return rc;
    for (size_t i = 0; i < nrows; i++)
        if (lmr_job_scan.map(r->state, str_slice(rows[i]), &r->rec.base, &r->counters))
            r->failures++;
    return 0;
}

static void end_run(struct run *r)
{
    if (r->state)
        lmr_job_scan.teardown(r->state);
    recorder_clean_up(&r->rec);
}

static const char *const rankings[] = {
    "http://a.com/1,1500,10", "http://b.org/2,999,20", "http://c.net/3,1000,30",
    "http://d.io/4,1001.5,4", "http://e.de/5,abc,50",  "too-few-fields",
    "http://f.fr/6,-3,60",    "http://g.jp/7,2e3,70",  "",
};
#define NROWS (sizeof rankings / sizeof rankings[0])

/* The independent oracle: split with strtok-free logic and strtod. */
static int oracle_field(const char *row, int field, char *out, size_t cap)
{
    const char *p = row;
    for (int i = 1; i < field; i++) {
        p = strchr(p, ',');
        if (!p)
            return 0;
        p++;
    }
    size_t len = strcspn(p, ",");
    if (len >= cap)
        return 0;
    memcpy(out, p, len);
    out[len] = '\0';
    return 1;
}

static void test_where_numeric_ops(void **unused)
{
    const char *ops[] = {">", ">=", "<", "<=", "=", "!="};
    for (size_t k = 0; k < 6; k++) {
        char where[32];
        snprintf(where, sizeof where, "2%s1000", ops[k]);
        struct run r;
        char err[256] = "";
        assert_int_equal(run_scan(&r, rankings, NROWS,
                                  make_args("delimiter", ",", "fields", "1,2", "where", where, NULL), err, sizeof err),
                         0);
        size_t expect = 0, malformed = 0;
        for (size_t i = 0; i < NROWS; i++) {
            char a[64], b[64], *end;
            if (!oracle_field(rankings[i], 1, a, sizeof a) || !oracle_field(rankings[i], 3, b, sizeof b)) {
                malformed++; /* fewer than 2 fields (the oracle asks for field 3 to be safe: all rows have 3) */
                continue;
            }
            oracle_field(rankings[i], 2, b, sizeof b);
            double v = strtod(b, &end);
            if (*end || end == b) {
                malformed++;
                continue;
            }
            int keep = k == 0   ? v > 1000
                       : k == 1 ? v >= 1000
                       : k == 2 ? v < 1000
                       : k == 3 ? v <= 1000
                       : k == 4 ? v == 1000
                                : v != 1000;
            if (keep) {
                char want[128];
                snprintf(want, sizeof want, "%s,%s", a, b);
                assert_true(expect < r.rec.n);
                assert_string_equal(r.rec.pairs[expect].key, want);
                assert_int_equal(r.rec.pairs[expect].value_len, 0);
                expect++;
            }
        }
        assert_int_equal(r.rec.n, expect);
        assert_int_equal(r.counters.malformed_records, malformed);
        assert_int_equal(r.failures, 0);
        end_run(&r);
    }
}

static void test_reordered_fields_and_string_where(void **unused)
{
    const char *rows[] = {"1.2.3.4,x,USA,7", "5.6.7.8,y,DEU,8", "9.9.9.9,z,USA,9"};
    struct run r;
    char err[256];
    assert_int_equal(run_scan(&r, rows, 3, make_args("fields", "4,1", "where", "3=USA", NULL), err, sizeof err), 0);
    assert_int_equal(r.rec.n, 2);
    assert_string_equal(r.rec.pairs[0].key, "7,1.2.3.4");
    assert_string_equal(r.rec.pairs[1].key, "9,9.9.9.9");
    end_run(&r);
    assert_int_equal(run_scan(&r, rows, 3, make_args("fields", "3", "where", "3!=USA", NULL), err, sizeof err), 0);
    assert_int_equal(r.rec.n, 1);
    assert_string_equal(r.rec.pairs[0].key, "DEU");
    end_run(&r);
}

static void test_whole_row_and_other_delimiter(void **unused)
{
    const char *rows[] = {"a|10", "b|20", "c|30"};
    struct run r;
    char err[256];
    assert_int_equal(run_scan(&r, rows, 3, make_args("delimiter", "|", "where", "2>=20", NULL), err, sizeof err), 0);
    assert_int_equal(r.rec.n, 2);
    assert_string_equal(r.rec.pairs[0].key, "b|20");
    assert_string_equal(r.rec.pairs[1].key, "c|30");
    end_run(&r);
    const char *tabs[] = {"a\tb\tc"};
    assert_int_equal(run_scan(&r, tabs, 1, make_args("delimiter", "tab", "fields", "3,2", NULL), err, sizeof err), 0);
    assert_string_equal(r.rec.pairs[0].key, "c\tb");
    end_run(&r);
}

static void test_strict(void **unused)
{
    struct run r;
    char err[256];
    assert_int_equal(run_scan(&r, rankings, NROWS, make_args("fields", "1,2", "where", "2>1000", "strict", "1", NULL),
                              err, sizeof err),
                     0);
    assert_int_equal(r.failures, 3); /* "abc", "too-few-fields", "" */
    assert_int_equal(r.counters.malformed_records, 3);
    end_run(&r);
}

static void test_bad_args(void **unused)
{
    struct {
        const char *name, *value, *needle;
    } cases[] = {
        {"where", "2~1000", "is not a condition"}, {"where", "2>abc", "is not a number"},
        {"where", "0>1", "is not a condition"},    {"fields", "1,,2", "is not a list of field numbers"},
        {"fields", "x", "is not a list"},          {"delimiter", ",,", "is not a single byte"},
        {"fields", "99999", "is not a list"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        char err[256] = "";
        assert_int_not_equal(run_scan(&r, NULL, 0, make_args(cases[i].name, cases[i].value, NULL), err, sizeof err), 0);
        assert_non_null(strstr(err, cases[i].needle));
        end_run(&r);
    }
    assert_true(lmr_job_scan.map_only);
    const struct lmr_job_ops *ops;
    assert_int_equal(lmr_job_find("scan", &ops, NULL), LMR_OK);
    assert_ptr_equal(ops, &lmr_job_scan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_where_numeric_ops),
        cmocka_unit_test(test_reordered_fields_and_string_where),
        cmocka_unit_test(test_whole_row_and_other_delimiter),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
