/*
 * The range partitioner (text form, ascending check, upper-bound search, boundaries from a
 * sorted sample) and the join pieces (hash table with its cap, the reduce-side join of tagged
 * groups with a buffer small enough to spill, composite keys).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "job/join.h"
#include "job/join_table.h"
#include "shuffle/range_partition.h"

static struct lmr_slice S(const char *s) {
    return lmr_slice_make(s, strlen(s));
}

static void
test_range_partition(void **st)
{
    (void)st;
    struct lmr_range_partitioner rp;
    struct lmr_err err = {0};
    /* "b", "dd" */
    assert_int_equal(lmr_range_partitioner_parse(&rp, "62,6464", &err), LMR_OK);
    assert_int_equal(rp.nbounds, 2);
    assert_int_equal(lmr_range_partition(&rp, S("a"), 3), 0);
    assert_int_equal(lmr_range_partition(&rp, S(""), 3), 0);
    assert_int_equal(lmr_range_partition(&rp, S("b"), 3), 1); /* a boundary starts its range */
    assert_int_equal(lmr_range_partition(&rp, S("d"), 3), 1);
    assert_int_equal(lmr_range_partition(&rp, S("dd"), 3), 2);
    assert_int_equal(lmr_range_partition(&rp, S("zzz"), 3), 2);
    assert_int_equal(lmr_range_partition(&rp, S("zzz"), 2), 1); /* capped at nparts - 1 */
    lmr_range_partitioner_clean_up(&rp);
    assert_int_equal(lmr_range_partitioner_parse(&rp, "6464,62", &err), LMR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "ascend"));
    assert_int_equal(lmr_range_partitioner_parse(&rp, "6x", &err), LMR_ERR_FORMAT);
    assert_int_equal(lmr_range_partitioner_parse(&rp, "", &err), LMR_OK);
    assert_int_equal(lmr_range_partition(&rp, S("q"), 4), 0);
    lmr_range_partitioner_clean_up(&rp);
}

static void test_range_bounds(void **st)
{
    (void)st;
    char keys[100][8];
    struct lmr_slice sorted[100];
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof keys[i], "k%03d", i);
        sorted[i] = S(keys[i]);
    }
    char *text = NULL;
    struct lmr_err err = {0};
    assert_int_equal(lmr_range_bounds_format(sorted, 100, 4, 256, &text, &err), LMR_OK);
    struct lmr_range_partitioner rp;
    assert_int_equal(lmr_range_partitioner_parse(&rp, text, &err), LMR_OK);
    assert_int_equal(rp.nbounds, 3);
    int count[4] = {0};
    for (int i = 0; i < 100; i++)
        count[lmr_range_partition(&rp, sorted[i], 4)]++;
    for (int p = 0; p < 4; p++)
        assert_int_equal(count[p], 25);
    lmr_range_partitioner_clean_up(&rp);
    free(text);
    /* cut to 2 bytes: still monotone (every key's partition never decreases) */
    assert_int_equal(lmr_range_bounds_format(sorted, 100, 4, 2, &text, &err), LMR_OK);
    assert_int_equal(lmr_range_partitioner_parse(&rp, text, &err), LMR_OK);
    uint32_t last = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t p = lmr_range_partition(&rp, sorted[i], 4);
        assert_true(p >= last);
        last = p;
    }
    lmr_range_partitioner_clean_up(&rp);
    free(text);
}

/* With the most reducers, long keys cut to lmr_range_bound_bytes still fit one job argument. */
static void test_range_bounds_fit(void **st)
{
    (void)st;
    uint32_t R = LMR_RANGE_MAX_BOUNDS + 1;
    static char long_key[300];
    memset(long_key, 'k', sizeof long_key - 1);
    struct lmr_slice *sorted = calloc(R, sizeof *sorted);
    for (uint32_t i = 0; i < R; i++)
        sorted[i] = S(long_key);
    size_t cap = lmr_range_bound_bytes(R, 256);
    assert_true(cap >= 1);
    assert_int_equal(lmr_range_bound_bytes(4, 256), 256);
    char *text = NULL;
    struct lmr_err err = {0};
    assert_int_equal(lmr_range_bounds_format(sorted, R, R, cap, &text, &err), LMR_OK);
    assert_true(strlen(text) <= LMR_RANGE_MAX_TEXT_BYTES && strlen(text) <= 64 * 1024);
    struct lmr_range_partitioner rp;
    assert_int_equal(lmr_range_partitioner_parse(&rp, text, &err), LMR_OK);
    assert_int_equal(rp.nbounds, R - 1);
    lmr_range_partitioner_clean_up(&rp);
    free(text);
    free(sorted);
}

static void test_join_table(void **st)
{
    (void)st;
    struct lmr_join_table *t = lmr_join_table_new(1u << 20);
    char k[16], v[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key%d", i % 1000);
        snprintf(v, sizeof v, "v%d", i);
        assert_int_equal(lmr_join_table_add(t, S(k), S(v)), LMR_OK);
    }
    struct lmr_join_iter it;
    struct lmr_slice val;
    assert_true(lmr_join_table_find(t, S("key7"), &it));
    int n = 0;
    while (lmr_join_table_next(&it, &val)) {
        snprintf(v, sizeof v, "v%d", 7 + 1000 * n++);
        assert_int_equal(val.len, strlen(v));
        assert_memory_equal(val.ptr, v, val.len);
    }
    assert_int_equal(n, 5);
    assert_false(lmr_join_table_find(t, S("key1000"), &it));
    assert_true(lmr_join_table_bytes(t) <= 1u << 20);
    lmr_join_table_destroy(t);
    /* the cap holds */
    t = lmr_join_table_new(64 * 1024);
    enum lmr_result r = LMR_OK;
    for (int i = 0; i < 100000 && !r; i++) {
        snprintf(k, sizeof k, "key%d", i);
        r = lmr_join_table_add(t, S(k), S("value"));
    }
    assert_int_equal(r, LMR_ERR_TOO_LARGE);
    assert_true(lmr_join_table_bytes(t) <= 64 * 1024);
    lmr_join_table_destroy(t);
}

/* A reducer's group: the values of one composite key. */
struct vals {
    struct lmr_values base;
    const char *const *v;
    size_t n, at;
};

static bool vals_next(struct lmr_values *self, struct lmr_slice *out)
{
    struct vals *vs = (struct vals *)self;
    if (vs->at == vs->n)
        return false;
    *out = S(vs->v[vs->at++]);
    return true;
}

struct matches {
    size_t n;
    char last[64];
};

static void on_match(void *ud, struct lmr_slice key, const struct lmr_slice *v, uint32_t nsides,
                     struct lmr_emitter *out)
{
    (void)out;
    struct matches *m = ud;
    assert_int_equal(nsides, 2);
    snprintf(m->last, sizeof m->last, "%.*s:%.*s:%.*s", (int)key.len, key.ptr, (int)v[0].len, v[0].ptr, (int)v[1].len,
             v[1].ptr);
    m->n++;
}

static void group(struct lmr_join_reducer *jr, const char *key, uint8_t side, const char *const *v, size_t n,
                  struct matches *m)
{
    uint8_t comp[32];
    size_t kl = strlen(key);
    memcpy(comp, key, kl);
    comp[kl] = side;
    struct vals vs = {.base.next = vals_next, .v = v, .n = n};
    lmr_join_reducer_group(jr, lmr_slice_make(comp, kl + 1), &vs.base, on_match, m, NULL);
}

static void test_join_reducer_spills(void **st)
{
    (void)st;
    struct lmr_join_reducer jr;
    lmr_join_reducer_init(&jr, 2, 4096);
    static const char *many[3000];
    char(*text)[16] = calloc(3000, 16);
    for (int i = 0; i < 3000; i++) {
        snprintf(text[i], 16, "left%d", i);
        many[i] = text[i];
    }
    static const char *const right[] = {"r1", "r2"}, *const lonely[] = {"x"};
    struct matches m = {0};
    group(&jr, "a", 0, many, 3000, &m); /* far past 4 KiB: spilled */
    group(&jr, "a", 1, right, 2, &m);
    assert_true(jr.spilled_rows > 0);
    assert_false(jr.failed);
    assert_int_equal(m.n, 6000);
    assert_string_equal(m.last, "a:left2999:r2");
    group(&jr, "b", 1, lonely, 1, &m); /* no left rows for b: inner join emits nothing */
    assert_int_equal(m.n, 6000);
    group(&jr, "c", 0, lonely, 1, &m);
    group(&jr, "c", 1, right, 1, &m);
    assert_int_equal(m.n, 6001);
    assert_string_equal(m.last, "c:x:r1");
    lmr_join_reducer_clean_up(&jr);
    free(text);
}

static void test_join_keys(void **st)
{
    (void)st;
    uint8_t *buf = NULL;
    size_t cap = 0;
    struct rec {
        struct lmr_emitter base;
        uint8_t key[16];
        size_t len;
    } rec = {0};
    rec.base.emit = NULL;
    /* a key with a byte below the side count is refused */
    assert_false(lmr_join_emit_tagged(&rec.base, lmr_slice_make("a\001b", 3), 0, 2, S("v"), &buf, &cap));
    free(buf);
    /* the partition ignores the side byte */
    uint8_t k0[] = {'k', 'e', 'y', 0}, k1[] = {'k', 'e', 'y', 1};
    assert_int_equal(lmr_join_partition(lmr_slice_make(k0, 4), 97), lmr_join_partition(lmr_slice_make(k1, 4), 97));
    char *n = lmr_join_normalize_location("s3://b/p/");
    assert_string_equal(n, "s3://b/p/");
    assert_true(lmr_join_location_contains(n, "s3://b/p/x"));
    free(n);
    assert_true(lmr_join_location_contains("/d/rankings", "/d/rankings/part-0"));
    assert_false(lmr_join_location_contains("/d/rank", "/d/rankings/part-0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_partition),     cmocka_unit_test(test_range_bounds),
        cmocka_unit_test(test_range_bounds_fit),    cmocka_unit_test(test_join_table),
        cmocka_unit_test(test_join_reducer_spills), cmocka_unit_test(test_join_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
