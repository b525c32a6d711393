/* Large zeroed blocks on huge-page boundaries (see big_alloc.h). */
#include "util/big_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *lmr_big_alloc(size_t n)
{
    if (n < LMR_HUGE_BYTES) {
        void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
        if (p)
            memset(p, 0, n);
        return p;
    }
    size_t len = (n + LMR_HUGE_BYTES - 1) & ~(LMR_HUGE_BYTES - 1);
    /* Map one huge page more than needed and trim both ends to the first 2 MiB boundary. */
    uint8_t *raw = mmap(NULL, len + LMR_HUGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + LMR_HUGE_BYTES - 1) & ~(uintptr_t)(LMR_HUGE_BYTES - 1);
    size_t head = start - (uintptr_t)raw, tail = LMR_HUGE_BYTES - head;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((uint8_t *)start + len, tail);
    madvise((void *)start, len, MADV_HUGEPAGE);
    return (void *)start;
}

void lmr_big_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n < LMR_HUGE_BYTES)
        free(p);
    else
        munmap(p, (n + LMR_HUGE_BYTES - 1) & ~(LMR_HUGE_BYTES - 1));
}
