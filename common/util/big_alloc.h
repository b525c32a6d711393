/* Large zeroed blocks on 2 MiB-aligned, MADV_HUGEPAGE pages: the hash tables' slot arrays and arenas. */
#ifndef LMR_UTIL_BIG_ALLOC_H
#define LMR_UTIL_BIG_ALLOC_H

#include <stddef.h>

/* Blocks of this size or more come from mmap, 2 MiB-aligned and marked MADV_HUGEPAGE. */
#define LMR_HUGE_BYTES ((size_t)2 << 20)

/**
 * A zeroed block of n bytes, or NULL when out of memory. Below LMR_HUGE_BYTES it is cache-line
 * aligned heap memory (a 32-byte slot never straddles two lines); from LMR_HUGE_BYTES on it is a
 * private anonymous mapping on huge-page boundaries, so that random probes into a table of a
 * few hundred thousand keys do not miss the TLB as often as the cache. Free with lmr_big_free and
 * the same n.
 */
void *lmr_big_alloc(size_t n);

/** Free a block of lmr_big_alloc(n); NULL is ignored. */
void lmr_big_free(void *p, size_t n);

#endif
