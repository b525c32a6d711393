/*
 * The shuffle's item sort (see item_sort.h): LSD radix sort on the 64-bit sort key, comparison
 * only for ties; a quicksort when there is no scratch array.
 */
#include <string.h>

#include "shuffle/item_sort.h"

#define RADIX_MIN_ITEMS 64 /* fewer: the quicksort (the histograms would cost more than the sort) */
#define INSERTION_MAX 16
#define TIE_AHEAD 16 /* items between a tie's prefetch and its comparison */

static inline int item_cmp(lmr_item_tie_fn tie, void *user, const struct lmr_combine_item *a,
                           const struct lmr_combine_item *b)
{
    if (a->sortkey != b->sortkey)
        return a->sortkey < b->sortkey ? -1 : 1;
    return tie ? tie(user, a, b) : 0;
}

static void insertion_sort(lmr_item_tie_fn tie, void *user, struct lmr_combine_item *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct lmr_combine_item t = a[i];
        size_t k = i;
        while (k > 0 && item_cmp(tie, user, &t, &a[k - 1]) < 0) {
            a[k] = a[k - 1];
            k--;
        }
        a[k] = t;
    }
}

/* Quicksort (median of three, the smaller part recursed into), insertion sort below 16 items. */
static void quick_sort(lmr_item_tie_fn tie, void *user, struct lmr_combine_item *a, size_t n)
{
    while (n > INSERTION_MAX) {
        struct lmr_combine_item *x = &a[0], *y = &a[n / 2], *z = &a[n - 1], *m;
        if (item_cmp(tie, user, x, y) < 0)
            m = item_cmp(tie, user, y, z) < 0 ? y : (item_cmp(tie, user, x, z) < 0 ? z : x);
        else
            m = item_cmp(tie, user, x, z) < 0 ? x : (item_cmp(tie, user, y, z) < 0 ? z : y);
        struct lmr_combine_item p = *m;
        size_t i = (size_t)-1, j = n;
        for (;;) {
            do
                i++;
            while (item_cmp(tie, user, &a[i], &p) < 0);
            do
                j--;
            while (item_cmp(tie, user, &a[j], &p) > 0);
            if (i >= j)
                break;
            struct lmr_combine_item t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        /* [0, j] and [j+1, n): recurse into the smaller part, loop on the larger */
        size_t left = j + 1, right = n - left;
        if (left < right) {
            quick_sort(tie, user, a, left);
            a += left;
            n = right;
        } else {
            quick_sort(tie, user, a + left, right);
            n = left;
        }
    }
    insertion_sort(tie, user, a, n);
}

/* a[0, n) by sort key alone, stable, through tmp[0, n). */
static void radix_sort(struct lmr_combine_item *a, size_t n, struct lmr_combine_item *tmp)
{
    size_t count[8][256];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = a[i].sortkey;
        for (unsigned d = 0; d < 8; d++)
            count[d][(k >> (8 * d)) & 0xff]++;
    }
    struct lmr_combine_item *src = a, *dst = tmp;
    for (unsigned d = 0; d < 8; d++) {
        size_t *c = count[d];
        unsigned shift = 8 * d;
        if (c[(src[0].sortkey >> shift) & 0xff] == n)
            continue; /* every item has this digit: the pass would not move anything */
        size_t off = 0;
        for (unsigned b = 0; b < 256; b++) {
            size_t t = c[b];
            c[b] = off;
            off += t;
        }
        for (size_t i = 0; i < n; i++) {
            struct lmr_combine_item it = src[i];
            dst[c[(it.sortkey >> shift) & 0xff]++] = it;
        }
        struct lmr_combine_item *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

void lmr_item_sort(struct lmr_combine_item *items, size_t n, struct lmr_combine_item *scratch, lmr_item_tie_fn tie,
                   void *user)
{
    if (!scratch || n < RADIX_MIN_ITEMS) {
        quick_sort(tie, user, items, n);
        return;
    }
    radix_sort(items, n, scratch);
    if (!tie)
        return;
    /* The entries of a tie are far apart in memory: a run's entries are prefetched TIE_AHEAD items ahead. */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && items[j].sortkey == items[i].sortkey)
            j++;
        for (size_t k = i + TIE_AHEAD; k < j + TIE_AHEAD && k + 1 < n; k++)
            if (items[k].sortkey == items[k + 1].sortkey) {
                __builtin_prefetch(items[k].slot);
                __builtin_prefetch(items[k + 1].slot);
            }
        if (j - i > 1)
            quick_sort(tie, user, items + i, j - i);
        i = j;
    }
}
