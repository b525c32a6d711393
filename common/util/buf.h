/*
 * A growable byte buffer with a hard maximum (curl's dynbuf idea): input can never make it
 * grow past max_bytes; appends beyond that fail with LMR_ERR_TOO_LARGE and leave it intact.
 * The data is always NUL-terminated (not counted in len) so text can be handed to C APIs.
 */
#ifndef LMR_UTIL_BUF_H
#define LMR_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

struct lmr_buf {
    char *data;       /* NULL until the first append */
    size_t len;       /* bytes used */
    size_t cap;       /* bytes allocated (excluding the terminator) */
    size_t max_bytes; /* hard cap on len */
};

/** Initialise an empty buffer that may hold at most max_bytes. No allocation yet. */
void lmr_buf_init(struct lmr_buf *b, size_t max_bytes);
/** Free the memory; the buffer is empty (same cap) and reusable afterwards. NULL-safe. */
void lmr_buf_clean_up(struct lmr_buf *b);
/** Make room for `extra` more bytes. @return LMR_ERR_TOO_LARGE past max_bytes, LMR_ERR_NOMEM. */
enum lmr_result lmr_buf_reserve(struct lmr_buf *b, size_t extra);
enum lmr_result lmr_buf_append(struct lmr_buf *b, const void *data, size_t len);
enum lmr_result lmr_buf_append_str(struct lmr_buf *b, const char *s);
enum lmr_result lmr_buf_printf(struct lmr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Forget the contents, keep the memory. */
void lmr_buf_reset(struct lmr_buf *b);
/** Hand the memory to the caller (free() it); the buffer is left empty. Never NULL on success. */
char *lmr_buf_detach(struct lmr_buf *b, size_t *len);

#endif
