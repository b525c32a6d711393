/* Test helpers shared by test_jobs_*.c: an emitter that records pairs, a values iterator, args. */
#ifndef LMR_TEST_JOBS_COMMON_H
#define LMR_TEST_JOBS_COMMON_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "job/args.h"
#include "lambdamr/job.h"

struct pair {
    char *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
};

struct recorder {
    struct lmr_emitter base;
    struct pair *pairs;
    size_t n, cap;
};

static void recorder_emit(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct recorder *r = (struct recorder *)self;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->pairs = realloc(r->pairs, r->cap * sizeof *r->pairs);
    }
    struct pair *p = &r->pairs[r->n++];
    p->key = malloc(key.len + 1);
    memcpy(p->key, key.ptr, key.len);
    p->key[key.len] = '\0';
    p->key_len = key.len;
    p->value = malloc(value.len + 1);
    memcpy(p->value, value.ptr, value.len);
    p->value[value.len] = '\0';
    p->value_len = value.len;
}

static void recorder_init(struct recorder *r)
{
    memset(r, 0, sizeof *r);
    r->base.emit = recorder_emit;
}

static void recorder_clean_up(struct recorder *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->pairs[i].key);
        free(r->pairs[i].value);
    }
    free(r->pairs);
    memset(r, 0, sizeof *r);
}

/* Values of one group from an array of slices. */
struct slice_values {
    struct lmr_values base;
    const struct lmr_slice *items;
    size_t n, pos;
};

static inline bool slice_values_next(struct lmr_values *self, struct lmr_slice *value)
{
    struct slice_values *v = (struct slice_values *)self;
    if (v->pos == v->n)
        return false;
    *value = v->items[v->pos++];
    return true;
}

/* Args from "name", "value", ..., NULL. */
static struct lmr_job_args *make_args(const char *name, ...)
{
    struct lmr_job_args *a = lmr_job_args_new();
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *))
        lmr_job_args_set(a, n, va_arg(ap, const char *));
    va_end(ap);
    return a;
}

static struct lmr_slice str_slice(const char *s)
{
    return lmr_slice_make(s, strlen(s));
}

#endif
