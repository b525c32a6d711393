/*
 * Base64 (RFC 4648 section 4: standard alphabet, padded) with table codecs (base64.c). The
 * decoder is strict: the input is a whole number of 4-character groups, '=' appears only as the
 * last one or two characters, and whitespace or any other character outside the alphabet is an
 * error.
 */
#ifndef LMR_UTIL_BASE64_H
#define LMR_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/result.h"

/** Encoded length of n bytes (without a terminator). */
static inline size_t lmr_base64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/**
 * Append the base64 of data (n bytes) to out; out stays NUL-terminated.
 * @return LMR_ERR_TOO_LARGE past out's max_bytes, LMR_ERR_NOMEM; out is unchanged on failure.
 */
enum lmr_result lmr_base64_append(struct lmr_buf *out, const void *data, size_t n);

/**
 * Write the base64 of data (n bytes) at out, which has room for lmr_base64_len(n) + 1 bytes (a NUL
 * follows). For writers that reserved their room already. @return lmr_base64_len(n).
 */
size_t lmr_base64_encode_to(char *out, const void *data, size_t n);

/**
 * Decode n base64 characters into out (capacity >= n / 4 * 3); *out_len gets the decoded length.
 * @return LMR_ERR_FORMAT if n is not a multiple of 4, '=' stands anywhere but the last one or two
 *         characters, or a character is outside the alphabet (whitespace included).
 */
enum lmr_result lmr_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len);

#endif
