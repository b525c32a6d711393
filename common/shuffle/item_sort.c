/*
 * The shuffle's item sort (see item_sort.h): LSD radix sort on the 64-bit sort key (11-bit digits),
 * comparison only for ties; a quicksort when there is no scratch array.
 */
#include <stdlib.h>
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

/* a[0, n) by sort key alone, stable, through tmp[0, n): 6 digits of 11 bits (the top one 9), one
   counting pass for all of them (the counts in a 96 KiB table from the heap; for fewer items, or
   when there is no heap to be had, 8 digits of 8 bits counted in 16 KiB on the stack), a pass per
   digit not every item shares. */
#define RADIX_BITS 11
#define RADIX_DIGITS ((64 + RADIX_BITS - 1) / RADIX_BITS)
#define RADIX_WIDE_MIN 16384
static void radix_sort_with(struct lmr_combine_item *a, size_t n, struct lmr_combine_item *tmp, unsigned bits,
                            unsigned digits, size_t *count)
{
    size_t buckets = (size_t)1 << bits, mask = buckets - 1;
    memset(count, 0, digits * buckets * sizeof *count);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = a[i].sortkey;
        for (unsigned d = 0; d < digits; d++)
            count[d * buckets + ((k >> (bits * d)) & mask)]++;
    }
    struct lmr_combine_item *src = a, *dst = tmp;
    for (unsigned d = 0; d < digits; d++) {
        size_t *c = count + d * buckets;
        unsigned shift = bits * d;
        if (c[(src[0].sortkey >> shift) & mask] == n)
            continue; /* every item has this digit: the pass would not move anything */
        size_t off = 0;
        for (size_t b = 0; b < buckets; b++) {
            size_t t = c[b];
            c[b] = off;
            off += t;
        }
        for (size_t i = 0; i < n; i++) {
            struct lmr_combine_item it = src[i];
            dst[c[(it.sortkey >> shift) & mask]++] = it;
        }
        struct lmr_combine_item *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
}

static void radix_sort(struct lmr_combine_item *a, size_t n, struct lmr_combine_item *tmp)
{
    /* below RADIX_WIDE_MIN items the 6 x 2,048 counts would cost more than the two passes saved */
    size_t *count = n >= RADIX_WIDE_MIN ? malloc(((size_t)RADIX_DIGITS << RADIX_BITS) * sizeof *count) : NULL;
    if (count) {
        radix_sort_with(a, n, tmp, RADIX_BITS, RADIX_DIGITS, count);
        free(count);
        return;
    }
    size_t small[8 * 256];
    radix_sort_with(a, n, tmp, 8, 8, small);
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
