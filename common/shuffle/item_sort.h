/*
 * The ONE sort of the shuffle's buffered entries (the map-side collector's spills and finish, the
 * combining table's sorted view): items {sort key, entry pointer} in order of the 64-bit sort
 * key, items with equal sort keys in the order of a comparison of their entries.
 *
 * With a scratch array of n items it is a least-significant-digit radix sort on the sort key's
 * 64 bits in 6 digits of 11 bits (one counting pass for all digits, then one stable scatter per
 * digit that is not the same in every item; 8 digits of 8 bits below 16,384 items or if the 96 KiB
 * of counts cannot be allocated), so the entries are only touched for ties; without one (or for a few items)
 * a quicksort on (sort key, comparison). Either way, runs of equal sort keys are then ordered by
 * the comparison (insertion sort for short runs, the quicksort for long ones: a job with its own
 * key order has sort keys that carry the partition only).
 */
#ifndef LMR_SHUFFLE_ITEM_SORT_H
#define LMR_SHUFFLE_ITEM_SORT_H

#include <stddef.h>

#include "shuffle/combine_table.h" /* struct lmr_combine_item */

/* The order of two items whose sort keys are equal: < 0, 0, > 0 as a before, equal to, after b. */
typedef int (*lmr_item_tie_fn)(void *user, const struct lmr_combine_item *a, const struct lmr_combine_item *b);

/**
 * Sort items[0, n) by sort key, ties by tie(user, a, b) (NULL: ties keep no particular order).
 * scratch: Optional, n items of memory the sort may overwrite (NULL: the comparison sort).
 */
void lmr_item_sort(struct lmr_combine_item *items, size_t n, struct lmr_combine_item *scratch, lmr_item_tie_fn tie,
                   void *user);

#endif
