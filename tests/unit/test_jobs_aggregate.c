/*
 * aggregate (Query 2): every op against a direct computation over the same rows, combiner
 * algebra (split over "mappers" and merged in any order), malformed rows, strict mode,
 * argument errors; and the number helpers it relies on (parse, shortest round-trip format).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "job/fields.h"
#include "job/registry.h"
#include "test_jobs_common.h"
#include "test_printf_shortest.h"

#define NROWS 3000

static char *rows[NROWS];

/* Random uservisits-like rows: ip,url,revenue plus ~2% malformed ones. */
static void make_rows(void)
{
    srand(42);
    for (int i = 0; i < NROWS; i++) {
        char buf[128];
        int kind = rand() % 50;
        if (kind == 0)
            snprintf(buf, sizeof buf, "10.0.%d.1,only-two-fields", rand() % 4);
        else if (kind == 1)
            snprintf(buf, sizeof buf, "10.0.%d.1,u,notanumber,9", rand() % 4);
        else
            snprintf(buf, sizeof buf, "1%d.%d.%d.%d,http://x/%d,%d.%05d,%d", rand() % 3, rand() % 20, rand() % 256,
                     rand() % 256, i, rand() % 1000, rand() % 100000, rand() % 100);
        rows[i] = strdup(buf);
    }
}

/* A tiny combining table standing in for a mapper's hash table. */
struct table {
    struct lmr_emitter base;
    const struct lmr_job_ops *ops;
    void *state;
    char keys[4096][16];
    uint8_t accs[4096][16];
    size_t n;
};

static void table_emit(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct table *t = (struct table *)self;
    assert_true(key.len < 16);
    assert_int_equal(value.len, t->ops->value_size);
    for (size_t i = 0; i < t->n; i++) {
        if (strlen(t->keys[i]) == key.len && !memcmp(t->keys[i], key.ptr, key.len)) {
            t->ops->combine(t->state, t->accs[i], value);
            return;
        }
    }
    assert_true(t->n < 4096);
    memcpy(t->keys[t->n], key.ptr, key.len);
    t->keys[t->n][key.len] = '\0';
    memcpy(t->accs[t->n], value.ptr, value.len);
    t->n++;
}

struct oracle {
    char key[16];
    double sum, min, max;
    uint64_t count;
};

/* task: set up as a task is (lmr_job_setup: 8-byte accumulators unless avg), else with the job's setup. */
static void check_op(const char *op, const char *keyspec, size_t prefix, bool task)
{
    const struct lmr_job_ops *ops = &lmr_job_aggregate;
    void *state = NULL;
    char err[256] = "";
    struct lmr_job_args *args = make_args("delimiter", ",", "key", keyspec, "value", "3", "op", op, NULL);
    if (task)
        assert_int_equal(lmr_job_setup(&ops, &state, args, err, sizeof err), 0);
    else
        assert_int_equal(ops->setup(&state, args, err, sizeof err), 0);
    lmr_job_args_destroy(args);
    assert_string_equal(ops->name, "aggregate");
    assert_int_equal(ops->value_size, task && strcmp(op, "avg") ? 8 : 16);

    /* Two mappers with their own tables, rows dealt alternately. */
    static struct table t[2];
    struct lmr_job_counters counters = {0};
    for (int m = 0; m < 2; m++) {
        memset(&t[m], 0, sizeof t[m]);
        t[m].base.emit = table_emit;
        t[m].ops = ops;
        t[m].state = state;
    }
    for (int i = 0; i < NROWS; i++)
        assert_int_equal(ops->map(state, str_slice(rows[i]), &t[i % 2].base, &counters), 0);

    /* Oracle: direct computation. */
    static struct oracle want[4096];
    size_t nwant = 0, malformed = 0;
    for (int i = 0; i < NROWS; i++) {
        const char *c1 = strchr(rows[i], ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        char *end;
        double v = c2 ? strtod(c2 + 1, &end) : 0;
        if (!c2 || (*end != ',' && *end != '\0')) {
            malformed++;
            continue;
        }
        size_t klen = (size_t)(c1 - rows[i]);
        if (prefix && klen > prefix)
            klen = prefix;
        size_t j = 0;
        while (j < nwant && !(strlen(want[j].key) == klen && !memcmp(want[j].key, rows[i], klen)))
            j++;
        if (j == nwant) {
            memcpy(want[j].key, rows[i], klen);
            want[j].key[klen] = '\0';
            want[j].sum = 0, want[j].min = INFINITY, want[j].max = -INFINITY, want[j].count = 0;
            nwant++;
        }
        want[j].sum += v;
        want[j].min = fmin(want[j].min, v);
        want[j].max = fmax(want[j].max, v);
        want[j].count++;
    }
    assert_int_equal(counters.malformed_records, malformed);
    assert_true(malformed > 0);

    /* Reduce each key over the accumulators of both mappers. */
    size_t seen = 0;
    for (size_t j = 0; j < nwant; j++) {
        struct lmr_slice vals[2];
        size_t nv = 0;
        for (int m = 0; m < 2; m++)
            for (size_t i = 0; i < t[m].n; i++)
                if (!strcmp(t[m].keys[i], want[j].key))
                    vals[nv++] = lmr_slice_make(t[m].accs[i], ops->value_size);
        assert_true(nv >= 1);
        seen += nv;
        struct slice_values it = {.base.next = slice_values_next, .items = vals, .n = nv};
        struct recorder rec;
        recorder_init(&rec);
        ops->reduce(state, str_slice(want[j].key), &it.base, &rec.base);
        assert_int_equal(rec.n, 1);
        assert_string_equal(rec.pairs[0].key, want[j].key);
        const char *text = (const char *)rec.pairs[0].value;
        double got = strtod(text, NULL);
        if (!strcmp(op, "count")) {
            char w[32];
            snprintf(w, sizeof w, "%llu", (unsigned long long)want[j].count);
            assert_string_equal(text, w);
        } else if (!strcmp(op, "min")) {
            assert_true(got == want[j].min);
        } else if (!strcmp(op, "max")) {
            assert_true(got == want[j].max);
        } else {
            double w = !strcmp(op, "sum") ? want[j].sum : want[j].sum / (double)want[j].count;
            assert_true(fabs(got - w) <= 1e-12 * fabs(w));
        }
        recorder_clean_up(&rec);
    }
    assert_int_equal(seen, t[0].n + t[1].n);
    ops->teardown(state);
}

static void test_ops(void **unused)
{
    const char *ops[] = {"sum", "count", "min", "max", "avg"};
    for (int task = 0; task < 2; task++) {
        for (int i = 0; i < 5; i++) {
            check_op(ops[i], "1:8", 8, task);
            check_op(ops[i], "1:4", 4, task);
        }
        check_op("sum", "1", 0, task);
    }
}

static void test_count_needs_no_value_and_strict(void **unused)
{
    void *state = NULL;
    char err[256] = "";
    struct lmr_job_args *args = make_args("key", "2", "op", "count", "strict", "1", NULL);
    assert_int_equal(lmr_job_aggregate.setup(&state, args, err, sizeof err), 0);
    lmr_job_args_destroy(args);
    struct recorder rec;
    recorder_init(&rec);
    struct lmr_job_counters c = {0};
    assert_int_equal(lmr_job_aggregate.map(state, str_slice("a,b"), &rec.base, &c), 0);
    assert_int_not_equal(lmr_job_aggregate.map(state, str_slice("no-comma"), &rec.base, &c), 0);
    assert_int_equal(c.malformed_records, 1);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.pairs[0].key, "b");
    recorder_clean_up(&rec);
    lmr_job_aggregate.teardown(state);
}

static void test_bad_args(void **unused)
{
    struct {
        const char *key, *value, *op, *needle;
    } cases[] = {
        {"1:8", "4", NULL, "--op is required"},        {"1:8", "4", "median", "unknown --op 'median'"},
        {NULL, "4", "sum", "--key is required"},       {"1:x", "4", "sum", "is not a field"},
        {"0", "4", "sum", "is not a field"},           {"1:8", NULL, "sum", "needs --value"},
        {"1", "four", "max", "is not a field number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lmr_job_args *a = lmr_job_args_new();
        if (cases[i].key)
            lmr_job_args_set(a, "key", cases[i].key);
        if (cases[i].value)
            lmr_job_args_set(a, "value", cases[i].value);
        if (cases[i].op)
            lmr_job_args_set(a, "op", cases[i].op);
        void *state = NULL;
        char err[256] = "";
        assert_int_not_equal(lmr_job_aggregate.setup(&state, a, err, sizeof err), 0);
        assert_non_null(strstr(err, cases[i].needle));
        lmr_job_args_destroy(a);
    }
}

static void test_parse_number_matches_strtod(void **unused)
{
    srand(7);
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        int kind = rand() % 6;
        if (kind == 0)
            snprintf(buf, sizeof buf, "%d.%0*d", rand() % 100000, 1 + rand() % 9, rand() % 1000000000);
        else if (kind == 1)
            snprintf(buf, sizeof buf, "-%d", rand());
        else if (kind == 2)
            snprintf(buf, sizeof buf, "%.17g", (double)rand() / (double)(rand() + 1) * 1e3);
        else if (kind == 3)
            snprintf(buf, sizeof buf, "%d%d%d.%de%d", rand(), rand(), rand(), rand() % 1000, rand() % 40 - 20);
        else if (kind == 4) /* leading zeros, 17-22 digits in all: around the 19-digit exact limit */
            snprintf(buf, sizeof buf, "%0*d.%0*d", 8 + rand() % 8, rand() % 100000, 9, rand() % 1000000000);
        else /* 18-20 significant digits */
            snprintf(buf, sizeof buf, "%d%09d.%0*d", 1 + rand() % 9, rand() % 1000000000, 8 + rand() % 3,
                     rand() % 100000000);
        double got, want = strtod(buf, NULL);
        assert_true(lmr_parse_number(str_slice(buf), &got));
        if (got != want)
            fail_msg("%s: parsed %.17g, strtod %.17g", buf, got, want);
    }
    const char *bad[] = {"", "-", ".", "1e", "1e+", "abc", "0x10", "inf", "nan", " 1", "1 ", "1.2.3", "1,5", "+"};
    double v;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(lmr_parse_number(str_slice(bad[i]), &v));
    assert_true(lmr_parse_number(str_slice(".5"), &v) && v == 0.5);
    assert_true(lmr_parse_number(str_slice("5."), &v) && v == 5);
    /* A field slice inside a longer buffer stops at its length. */
    assert_true(lmr_parse_number(lmr_slice_make("12,34", 2), &v) && v == 12);
}

/* The grammar lmr_parse_number accepts: [+-] digits [. digits] [e [+-] digits] (at least one
   digit before the exponent), the whole of s[0..n). */
static bool number_grammar(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (!digits)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i == n || s[i] < '0' || s[i] > '9')
            return false;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == n;
}

/* Random strings (digits, points, signs, exponents, a few other bytes; 0-40 bytes, in an exact-size
   buffer so the sanitizer sees any read past the slice) and random decimals of 0-24 digits before
   and after the point: accepted exactly when they follow the grammar and strtod's value is finite,
   and then bit-equal to strtod's. */
static void test_parse_number_random_strings(void **unused)
{
    (void)unused;
    srand(17);
    static const char alphabet[] = "0123456789012345678901234567890123456789..--++eE x,:/\0";
    char text[64];
    for (int i = 0; i < 400000; i++) {
        size_t n;
        if (i % 2) {
            n = (size_t)(rand() % 41);
            for (size_t k = 0; k < n; k++)
                text[k] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        } else { /* [-]I.F with I, F of 0-24 digits (leading zeros likely), sometimes an exponent */
            n = 0;
            if (rand() % 4 == 0)
                text[n++] = '-';
            int ni = rand() % 25, nf = rand() % 25;
            if (rand() % 2)
                ni = rand() % 4, nf = rand() % 10; /* short: the common case */
            for (int k = 0; k < ni; k++)
                text[n++] = (char)('0' + (k == 0 && rand() % 2 ? 0 : rand() % 10));
            if (nf || rand() % 3)
                text[n++] = '.';
            for (int k = 0; k < nf; k++)
                text[n++] = (char)('0' + rand() % 10);
            if (rand() % 8 == 0)
                n += (size_t)snprintf(text + n, sizeof text - n, "e%d", rand() % 700 - 350);
        }
        char *exact = malloc(n ? n : 1);
        assert_non_null(exact);
        memcpy(exact, text, n);
        text[n] = '\0';
        double got = -1, want = strtod(text, NULL);
        bool ok = lmr_parse_number(lmr_slice_make(exact, n), &got);
        bool want_ok = number_grammar(text, n) && isfinite(want);
        free(exact);
        if (ok != want_ok)
            fail_msg("'%s': accepted %d, expected %d", text, ok, want_ok);
        if (ok && memcmp(&got, &want, sizeof got))
            fail_msg("'%s': parsed %a, strtod %a", text, got, want);
    }
}

/* The reference: the shortest of %.15g, %.16g, %.17g that reads back exactly. */
/* lmr_fields_split_line over a block of random lines = lmr_fields_split of each line without its
   terminator ("\n" or "\r\n"; the last line may have none), for every max; and the block
   iterator (lmr_fields_block_next) = lmr_fields_split_line, line by line. */
static void test_split_line_matches_split(void **unused)
{
    (void)unused;
    srand(7);
    static const char alphabet[] = "ab,,\r\t;xyz0123456789";
    for (int round = 0; round < 3000; round++) {
        char block[4096];
        size_t len = 0, nlines = (size_t)(rand() % 12);
        size_t starts[16], lens[16];
        for (size_t l = 0; l < nlines; l++) {
            starts[l] = len;
            size_t n = (size_t)(rand() % (rand() % 3 ? 40 : 200));
            for (size_t i = 0; i < n; i++)
                block[len++] = alphabet[rand() % (sizeof alphabet - 1)];
            lens[l] = n;
            int term = rand() % 3; /* 0: "\n", 1: "\r\n", 2: none (the last line only) */
            if (term == 2 && l + 1 < nlines)
                term = 0;
            if (term == 1)
                block[len++] = '\r';
            if (term != 2)
                block[len++] = '\n';
            /* the reader drops one "\r" before the line's end */
            if (term != 1 && n && block[starts[l] + n - 1] == '\r')
                lens[l]--;
        }
        /* the block iterator reads an exact copy (a sanitizer build catches reads past its end) */
        uint8_t *exact = malloc(len ? len : 1);
        assert_non_null(exact);
        memcpy(exact, block, len);
        for (size_t max = 0; max <= 5; max++) {
            const uint8_t *p = (const uint8_t *)block, *end = p + len;
            struct lmr_fields_block it;
            lmr_fields_block_init(&it, lmr_slice_make(exact, len), ',');
            for (size_t l = 0; l < nlines && p < end; l++) {
                struct lmr_slice got[8], want[8], rec, bf[8], brec;
                size_t ng = lmr_fields_split_line(p, end, ',', got, max, &rec, &p), nb = 0;
                assert_true(lmr_fields_block_next(&it, bf, max, &nb, &brec));
                assert_int_equal(nb, ng);
                assert_int_equal(brec.ptr - exact, rec.ptr - (const uint8_t *)block);
                assert_int_equal(brec.len, rec.len);
                for (size_t i = 0; i < ng; i++) {
                    assert_int_equal(bf[i].ptr - exact, got[i].ptr - (const uint8_t *)block);
                    assert_int_equal(bf[i].len, got[i].len);
                }
                struct lmr_slice line = {(const uint8_t *)block + starts[l], lens[l]};
                assert_int_equal(rec.len, line.len);
                assert_ptr_equal(rec.ptr, line.ptr);
                size_t nw = max ? lmr_fields_split(line, ',', want, max) : 0;
                assert_int_equal(ng, nw);
                for (size_t i = 0; i < nw; i++) {
                    assert_ptr_equal(got[i].ptr, want[i].ptr);
                    assert_int_equal(got[i].len, want[i].len);
                }
            }
            assert_ptr_equal(p, end);
            struct lmr_slice bf[8], brec;
            size_t nb;
            assert_false(lmr_fields_block_next(&it, bf, max, &nb, &brec));
        }
        free(exact);
    }
}

/* map_block over a block of rows = map over each row, for aggregate and scan (same pairs, same
   order, same malformed count). */
static void check_block_equals_lines(const char *job, struct lmr_job_args *args)
{
    const struct lmr_job_ops *ops;
    assert_int_equal(lmr_job_find(job, &ops, NULL), LMR_OK);
    assert_non_null(ops->map_block);
    void *state = NULL;
    char msg[256];
    assert_int_equal(ops->setup(&state, args, msg, sizeof msg), 0);
    size_t cap = 0;
    for (int i = 0; i < NROWS; i++)
        cap += strlen(rows[i]) + 2;
    char *block = malloc(cap);
    size_t len = 0;
    struct recorder a, b;
    recorder_init(&a);
    recorder_init(&b);
    struct lmr_job_counters ca = {0}, cb = {0};
    for (int i = 0; i < NROWS; i++) {
        size_t n = strlen(rows[i]);
        memcpy(block + len, rows[i], n);
        len += n;
        if (i % 3 == 0)
            block[len++] = '\r';
        block[len++] = '\n';
        assert_int_equal(ops->map(state, lmr_slice_make(rows[i], n), &a.base, &ca), 0);
    }
    assert_int_equal(ops->map_block(state, lmr_slice_make(block, len), &b.base, &cb), 0);
    assert_int_equal(a.n, b.n);
    assert_true(a.n > NROWS / 10);
    for (size_t i = 0; i < a.n; i++) {
        assert_int_equal(a.pairs[i].key_len, b.pairs[i].key_len);
        assert_memory_equal(a.pairs[i].key, b.pairs[i].key, a.pairs[i].key_len);
        assert_int_equal(a.pairs[i].value_len, b.pairs[i].value_len);
        assert_memory_equal(a.pairs[i].value, b.pairs[i].value, a.pairs[i].value_len);
    }
    assert_int_equal(ca.malformed_records, cb.malformed_records);
    assert_true(ca.malformed_records > 0);
    recorder_clean_up(&a);
    recorder_clean_up(&b);
    free(block);
    ops->teardown(state);
    lmr_job_args_destroy(args);
}

static void test_map_block_equals_map(void **unused)
{
    (void)unused;
    check_block_equals_lines("aggregate", make_args("key", "1:4", "value", "3", "op", "sum", NULL));
    check_block_equals_lines("scan", make_args("fields", "1,3", "where", "3>100", NULL));
    check_block_equals_lines("scan", make_args("between", "1,10.0.1,12.9", "where", "4<50", NULL));
}

static void test_format_double_shortest(void **unused)
{
    struct {
        double v;
        const char *want;
    } cases[] = {{0.1, "0.1"}, {0.1 + 0.2, "0.30000000000000004"}, {1234.5, "1234.5"}, {-0.0, "0"}, {1e21, "1e+21"},
                 {100, "100"}, {1.0 / 3, "0.3333333333333333"}};
    char out[40];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lmr_format_double(cases[i].v, out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
    srand(3);
    char want[40];
    for (int i = 0; i < 300000; i++) {
        double v;
        switch (i % 5) {
        case 0:
            v = (double)rand() / 7.0 * (rand() % 2 ? 1e-5 : 1e5);
            break;
        case 1: /* sums of 5-decimal revenues, as Query 2 prints */
            v = 0;
            for (int k = rand() % 6; k >= 0; k--)
                v += (double)(rand() % 100000000) / 1e5;
            break;
        case 2:
            v = -(double)(rand() % 1000000) / 1e3;
            break;
        case 3:
            v = ldexp((double)rand(), rand() % 120 - 60);
            break;
        default:
            v = (double)rand() * (double)rand();
        }
        size_t n = lmr_format_double(v, out, sizeof out);
        format_printf_shortest(v, want, sizeof want);
        assert_int_equal(n, strlen(out));
        if (strcmp(out, want) != 0)
            fail_msg("%.17g: formatted '%s', reference '%s'", v, out, want);
    }
    /* A million doubles from random bit patterns: every exponent, mostly 16-17 digit values, the
     * cases the double-conversion path (not the fixed fast path) formats. */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        double v;
        memcpy(&v, &x, sizeof v);
        if (!isfinite(v))
            continue;
        size_t n = lmr_format_double(v, out, sizeof out);
        format_printf_shortest(v, want, sizeof want);
        assert_int_equal(n, strlen(out));
        if (fabs(v) < DBL_MIN) {
            /* Subnormals carry fewer than 15 significant digits: the true shortest may be shorter
             * than what %.15g prints; it must still read back exactly. */
            if (strtod(out, NULL) != v || strlen(out) > strlen(want))
                fail_msg("%.17g: formatted '%s', reference '%s'", v, out, want);
        } else if (strcmp(out, want) != 0) {
            fail_msg("%.17g: formatted '%s', reference '%s'", v, out, want);
        }
    }
    const double edge[] = {1e-4,
                           9.99999e-5,
                           1e15,
                           999999999999999.0,
                           0.5,
                           1,
                           10,
                           1e-4 * 3,
                           123456789012345.0,
                           1e16,
                           1.2345678901234567e16,
                           1.7976931348623157e308,
                           2.2250738585072014e-308,
                           1e100,
                           1e-100,
                           0.1 + 0.7,
                           9007199254740993.0,
                           1e22,
                           1e23};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        lmr_format_double(edge[i], out, sizeof out);
        format_printf_shortest(edge[i], want, sizeof want);
        assert_string_equal(out, want);
    }
}

int main(void)
{
    make_rows();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_count_needs_no_value_and_strict),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_parse_number_matches_strtod),
        cmocka_unit_test(test_parse_number_random_strings),
        cmocka_unit_test(test_format_double_shortest),
        cmocka_unit_test(test_split_line_matches_split),
        cmocka_unit_test(test_map_block_equals_map),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < NROWS; i++)
        free(rows[i]);
    return rc;
}
