/* The chunk list of a bump allocator (see chunk_arena.h). */
#include "util/chunk_arena.h"

uint8_t *lmr_chunk_arena_grow(struct lmr_chunk_arena *a, size_t n)
{
    size_t cap = n > a->chunk_bytes ? n : a->chunk_bytes;
    struct lmr_chunk *c = lmr_big_alloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->next = NULL;
    c->cap = cap;
    if (a->cur)
        a->cur->next = c; /* cur is the last chunk (a reset frees the ones after the first) */
    else
        a->first = c;
    a->cur = c;
    a->cur_used = n;
    a->bytes += cap + sizeof *c;
    return c->data;
}

void lmr_chunk_arena_reset(struct lmr_chunk_arena *a)
{
    if (!a->first)
        return;
    struct lmr_chunk *c = a->first->next;
    while (c) {
        struct lmr_chunk *n = c->next;
        a->bytes -= c->cap + sizeof *c;
        lmr_big_free(c, c->cap + sizeof *c);
        c = n;
    }
    a->first->next = NULL;
    a->cur = a->first;
    a->cur_used = 0;
}

void lmr_chunk_arena_free(struct lmr_chunk_arena *a)
{
    lmr_chunk_arena_reset(a);
    if (a->first) {
        a->bytes -= a->first->cap + sizeof *a->first;
        lmr_big_free(a->first, a->first->cap + sizeof *a->first);
    }
    a->first = a->cur = NULL;
    a->cur_used = 0;
}
