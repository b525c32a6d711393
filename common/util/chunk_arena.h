/*
 * A bump allocator over a list of chunks from lmr_big_alloc: the combining table's long keys and
 * large accumulators, the map output's buffered pairs. Memory budgets stay with the caller: it
 * asks what the next chunk would add (lmr_chunk_arena_growth_bytes) before it grows the arena.
 * A reset keeps the first chunk, so a table or buffer that is emptied again and again (after a
 * spill, or a window's end) does not map and unmap a huge page each time.
 */
#ifndef LMR_UTIL_CHUNK_ARENA_H
#define LMR_UTIL_CHUNK_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "util/big_alloc.h"

struct lmr_chunk {
    struct lmr_chunk *next;
    size_t cap;
    uint8_t data[];
};

/* The largest default chunk: a chunk and its header fill exactly one huge page. */
#define LMR_CHUNK_ARENA_MAX_CHUNK_BYTES (LMR_HUGE_BYTES - sizeof(struct lmr_chunk))

struct lmr_chunk_arena {
    struct lmr_chunk *first, *cur; /* cur is the last chunk */
    size_t cur_used;               /* bytes taken of cur */
    size_t bytes;                  /* every chunk with its header */
    size_t chunk_bytes;            /* Required: a new chunk's size (a larger request gets a chunk of its own size) */
};

/** n bytes (a multiple of 8) from the current chunk, or NULL when it has not that much left. */
static inline uint8_t *lmr_chunk_arena_take(struct lmr_chunk_arena *a, size_t n)
{
    if (!a->cur || n > a->cur->cap - a->cur_used)
        return NULL;
    uint8_t *p = a->cur->data + a->cur_used;
    a->cur_used += n;
    return p;
}

/** What lmr_chunk_arena_grow(a, n) would add to a->bytes. */
static inline size_t lmr_chunk_arena_growth_bytes(const struct lmr_chunk_arena *a, size_t n)
{
    return (n > a->chunk_bytes ? n : a->chunk_bytes) + sizeof(struct lmr_chunk);
}

/** A new chunk, with its first n bytes taken; NULL when out of memory. */
uint8_t *lmr_chunk_arena_grow(struct lmr_chunk_arena *a, size_t n);

/** Forget every allocation; the first chunk is kept, the others freed. */
void lmr_chunk_arena_reset(struct lmr_chunk_arena *a);

/** Free every chunk (the arena can be used again: it starts empty). */
void lmr_chunk_arena_free(struct lmr_chunk_arena *a);

#endif
