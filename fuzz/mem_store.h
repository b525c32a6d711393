/*
 * An object store holding one object in memory, for fuzz targets that read through the store
 * interface (store.h vtable; only head and ranged reads are implemented). Header-only so each
 * fuzz target stays one file.
 */
#ifndef LMR_FUZZ_MEM_STORE_H
#define LMR_FUZZ_MEM_STORE_H

#include <stdlib.h>
#include <string.h>

#include "store/store.h"

struct mem_object {
    const uint8_t *data;
    size_t len;
};

struct mem_reader {
    struct lmr_store_reader base;
    size_t pos, end;
};

static enum lmr_result mem_head(struct lmr_store *s, const char *key, uint64_t *size_bytes, struct lmr_err *err)
{
    *size_bytes = ((struct mem_object *)s->impl)->len;
    return LMR_OK;
}

static enum lmr_result mem_open_read(struct lmr_store *s, const char *key, uint64_t offset, uint64_t length,
                                     struct lmr_store_reader **out, struct lmr_err *err)
{
    const struct mem_object *o = s->impl;
    if (offset > o->len)
        return lmr_fail(err, LMR_ERR_INVALID, "range starts past the end of %s", key);
    struct mem_reader *r = calloc(1, sizeof *r);
    if (!r)
        return LMR_ERR_NOMEM;
    r->base.store = s;
    r->pos = (size_t)offset;
    r->end = length == LMR_STORE_TO_END || length > o->len - offset ? o->len : (size_t)(offset + length);
    *out = &r->base;
    return LMR_OK;
}

/* Short reads of varying size, as a network store gives. */
static enum lmr_result mem_read(struct lmr_store_reader *rb, void *buf, size_t cap, size_t *got, struct lmr_err *err)
{
    struct mem_reader *r = (struct mem_reader *)rb;
    const struct mem_object *o = rb->store->impl;
    size_t n = r->end - r->pos;
    size_t step = 1 + (r->pos * 7919) % 4096;
    if (n > cap)
        n = cap;
    if (n > step)
        n = step;
    memcpy(buf, o->data + r->pos, n);
    r->pos += n;
    *got = n;
    return LMR_OK;
}

static void mem_close_read(struct lmr_store_reader *r)
{
    free(r);
}

static const struct lmr_store_vtable mem_vtable = {
    .scheme = "mem",
    .head = mem_head,
    .open_read = mem_open_read,
    .read = mem_read,
    .close_read = mem_close_read,
};

/** A store whose only object is data[0..len) (under every key). */
static inline void mem_store_init(struct lmr_store *s, struct mem_object *o, const uint8_t *data, size_t len)
{
    memset(s, 0, sizeof *s);
    o->data = data;
    o->len = len;
    s->vtable = &mem_vtable;
    s->impl = o;
    s->root_uri = (char *)"mem://fuzz";
}

#endif
