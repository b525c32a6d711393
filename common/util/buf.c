#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lmr_buf_init(struct lmr_buf *b, size_t max_bytes)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max_bytes = max_bytes;
}

void lmr_buf_clean_up(struct lmr_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

enum lmr_result lmr_buf_reserve(struct lmr_buf *b, size_t extra)
{
    if (extra > b->max_bytes || b->len > b->max_bytes - extra)
        return LMR_ERR_TOO_LARGE;
    size_t need = b->len + extra;
    if (need <= b->cap && b->data)
        return LMR_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max_bytes)
        cap = b->max_bytes;
    char *p = realloc(b->data, cap + 1);
    if (!p)
        return LMR_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    b->data[b->len] = '\0';
    return LMR_OK;
}

enum lmr_result lmr_buf_append(struct lmr_buf *b, const void *data, size_t len)
{
    enum lmr_result r = lmr_buf_reserve(b, len);
    if (r)
        return r;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return LMR_OK;
}

enum lmr_result lmr_buf_append_str(struct lmr_buf *b, const char *s)
{
    return lmr_buf_append(b, s, strlen(s));
}

enum lmr_result lmr_buf_printf(struct lmr_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    enum lmr_result r = n < 0 ? LMR_ERR_INVALID : lmr_buf_reserve(b, (size_t)n);
    if (!r) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return r;
}

void lmr_buf_reset(struct lmr_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *lmr_buf_detach(struct lmr_buf *b, size_t *len)
{
    if (!b->data && lmr_buf_reserve(b, 0))
        return NULL;
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
