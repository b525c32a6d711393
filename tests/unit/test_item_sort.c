/*
 * The shuffle's item sort (common/shuffle/item_sort.h): the radix sort (with scratch) and the
 * comparison sort (without) give the order of qsort on (sort key, tie) for sizes around the
 * radix threshold and large ones, sort keys with every byte varying, with a few bits only (most
 * passes skipped), all equal (a job's own key order: everything is a tie), and partition bits
 * on top with the key's low bits dropped (the collector's ties).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shuffle/item_sort.h"

struct entry {
    uint64_t key; /* the full key; the sort key is derived from it */
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int tie_calls;

static int entry_tie(void *user, const struct lmr_combine_item *a, const struct lmr_combine_item *b)
{
    (void)user;
    tie_calls++;
    uint64_t x = ((const struct entry *)a->slot)->key, y = ((const struct entry *)b->slot)->key;
    return (x > y) - (x < y);
}

static int qsort_cmp(const void *pa, const void *pb)
{
    const struct lmr_combine_item *a = pa, *b = pb;
    if (a->sortkey != b->sortkey)
        return a->sortkey < b->sortkey ? -1 : 1;
    return entry_tie(NULL, a, b);
}

enum shape { ALL_BYTES, FEW_BITS, ALL_EQUAL, PARTITIONED };

/* Sort keys of the shape; every entry's key differs, so (sort key, tie) is a total order. */
static void make_items(enum shape shape, struct entry *e, struct lmr_combine_item *it, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        e[i].key = (rnd() & ~(uint64_t)0xfffff) | i; /* unique */
        uint64_t sk;
        switch (shape) {
        case ALL_BYTES:
            sk = e[i].key;
            break;
        case FEW_BITS:
            sk = (e[i].key >> 61) << 20 | (rnd() & 3); /* 5 bits in two bytes: ties galore */
            break;
        case ALL_EQUAL:
            sk = 7;
            break;
        default: /* 3 partition bits on top, the key's low 3 bits lost: equal sort keys are ties */
            sk = (rnd() % 5) << 61 | e[i].key >> 3;
            break;
        }
        it[i] = (struct lmr_combine_item){sk, (uint8_t *)&e[i]};
    }
}

static void check(enum shape shape, size_t n)
{
    struct entry *e = malloc((n ? n : 1) * sizeof *e);
    struct lmr_combine_item *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b),
                            *want = malloc((n ? n : 1) * sizeof *want), *scratch = malloc((n ? n : 1) * sizeof *a);
    assert_non_null(e);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(want);
    assert_non_null(scratch);
    make_items(shape, e, a, n);
    memcpy(b, a, n * sizeof *a);
    memcpy(want, a, n * sizeof *a);
    qsort(want, n, sizeof *want, qsort_cmp);
    tie_calls = 0;
    lmr_item_sort(a, n, scratch, entry_tie, NULL); /* radix (n >= its threshold) */
    int radix_ties = tie_calls;
    lmr_item_sort(b, n, NULL, entry_tie, NULL); /* comparison sort */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].sortkey, want[i].sortkey);
        assert_ptr_equal(a[i].slot, want[i].slot);
        assert_ptr_equal(b[i].slot, want[i].slot);
    }
    /* Distinct sort keys: the radix sort never compares entries. */
    if (shape == ALL_BYTES && n >= 64)
        assert_int_equal(radix_ties, 0);
    free(e);
    free(a);
    free(b);
    free(want);
    free(scratch);
}

static void test_orders(void **unused)
{
    (void)unused;
    /* around the radix threshold (64) and the 11-bit digits' (16,384), and large */
    const size_t sizes[] = {0, 1, 2, 17, 63, 64, 65, 1000, 4096, 16383, 16384, 100000};
    for (int shape = ALL_BYTES; shape <= PARTITIONED; shape++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            check((enum shape)shape, sizes[i]);
}

/* Without a tie function equal sort keys may come in any order, but the sort keys are ordered. */
static void test_no_tie(void **unused)
{
    (void)unused;
    size_t n = 5000;
    struct entry *e = malloc(n * sizeof *e);
    struct lmr_combine_item *a = malloc(n * sizeof *a), *scratch = malloc(n * sizeof *a);
    assert_non_null(e);
    assert_non_null(a);
    assert_non_null(scratch);
    make_items(FEW_BITS, e, a, n);
    lmr_item_sort(a, n, scratch, NULL, NULL);
    for (size_t i = 1; i < n; i++)
        assert_true(a[i - 1].sortkey <= a[i].sortkey);
    free(e);
    free(a);
    free(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_no_tie),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
