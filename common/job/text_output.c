#include "job/text_output.h"

#include <stdlib.h>
#include <string.h>

#define TEXT_OUTPUT_BUFFER_BYTES (1u << 20)

static void flush(struct lmr_text_output *out)
{
    if (out->status || out->len == 0)
        return;
    out->status = lmr_store_write(out->writer, out->buf, out->len, &out->err);
    out->len = 0;
}

static void put(struct lmr_text_output *out, const void *p, size_t n)
{
    while (n && !out->status) {
        size_t room = out->cap - out->len;
        if (room == 0) {
            flush(out);
            continue;
        }
        size_t c = n < room ? n : room;
        memcpy(out->buf + out->len, p, c);
        out->len += c;
        p = (const uint8_t *)p + c;
        n -= c;
    }
}

/* n <= 32 bytes from src to dst in at most two overlapping copies of a fixed size (reads and writes
   stay within the n bytes). */
static inline void copy_small(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n >= 16) {
        memcpy(dst, src, 16);
        memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n) {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

static void text_emit(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct lmr_text_output *out = (struct lmr_text_output *)self;
    if (key.len <= 32 && value.len <= 32 && out->cap - out->len >= 66) {
        /* short key and value (an aggregate's sum): copies of fixed sizes, no calls */
        uint8_t *p = out->buf + out->len;
        copy_small(p, key.ptr, key.len);
        p += key.len;
        if (value.len) {
            *p++ = '\t';
            copy_small(p, value.ptr, value.len);
            p += value.len;
        }
        *p++ = '\n';
        out->len = (size_t)(p - out->buf);
    } else if (out->len + key.len + value.len + 2 <= out->cap) { /* fast path: fits in the buffer */
        uint8_t *p = out->buf + out->len;
        memcpy(p, key.ptr, key.len);
        p += key.len;
        if (value.len) {
            *p++ = '\t';
            memcpy(p, value.ptr, value.len);
            p += value.len;
        }
        *p++ = '\n';
        out->len = (size_t)(p - out->buf);
    } else {
        put(out, key.ptr, key.len);
        if (value.len) {
            put(out, "\t", 1);
            put(out, value.ptr, value.len);
        }
        put(out, "\n", 1);
    }
    out->records++;
    out->bytes += key.len + value.len + (value.len ? 2 : 1);
}

enum lmr_result lmr_text_output_init(struct lmr_text_output *out, struct lmr_store *store, const char *key,
                                     struct lmr_err *err)
{
    memset(out, 0, sizeof *out);
    out->emitter.emit = text_emit;
    out->cap = TEXT_OUTPUT_BUFFER_BYTES;
    out->buf = malloc(out->cap);
    out->key = strdup(key);
    if (!out->buf || !out->key) {
        lmr_text_output_clean_up(out);
        return LMR_ERR_NOMEM;
    }
    enum lmr_result r = lmr_store_open_write(store, key, LMR_PUT_CREATE_ONLY, &out->writer, err);
    if (r)
        lmr_text_output_clean_up(out);
    return r;
}

enum lmr_result lmr_text_output_commit(struct lmr_text_output *out, bool *already_committed, struct lmr_err *err)
{
    *already_committed = false;
    flush(out);
    if (out->status) {
        if (err)
            *err = out->err;
        return out->status;
    }
    struct lmr_store_writer *w = out->writer;
    out->writer = NULL;
    enum lmr_result r = lmr_store_commit(w, err);
    if (r == LMR_ERR_EXISTS) {
        *already_committed = true;
        lmr_err_clear(err);
        r = LMR_OK;
    }
    return r;
}

void lmr_text_output_clean_up(struct lmr_text_output *out)
{
    if (out->writer)
        lmr_store_abort(out->writer);
    out->writer = NULL;
    free(out->buf);
    free(out->key);
    out->buf = NULL;
    out->key = NULL;
}
