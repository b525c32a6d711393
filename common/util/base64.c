/* Base64 on OpenSSL (see base64.h): this file only adds the size bookkeeping and the strictness. */
#include "util/base64.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/evp.h>

/* EVP_*Block take an int length: larger inputs go through in chunks of whole groups. */
#define ENCODE_CHUNK_BYTES ((size_t)3 << 28) /* a multiple of 3, < INT_MAX */
#define DECODE_CHUNK_CHARS ((size_t)1 << 30) /* a multiple of 4, < INT_MAX */

enum lmr_result lmr_base64_append(struct lmr_buf *out, const void *data, size_t n)
{
    enum lmr_result r = lmr_buf_reserve(out, lmr_base64_len(n));
    if (r)
        return r;
    const unsigned char *p = data;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < ENCODE_CHUNK_BYTES ? n - done : ENCODE_CHUNK_BYTES;
        /* Writes lmr_base64_len(k) characters and a NUL: reserve() keeps room for the terminator. */
        out->len += (size_t)EVP_EncodeBlock((unsigned char *)out->data + out->len, p + done, (int)k);
        done += k;
    }
    out->data[out->len] = '\0';
    return LMR_OK;
}

static bool in_alphabet(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

enum lmr_result lmr_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
    if (n % 4)
        return LMR_ERR_FORMAT;
    if (n == 0) {
        *out_len = 0;
        return LMR_OK;
    }
    /*
     * OpenSSL decodes '=' anywhere as a zero sextet and trims whitespace at both ends; everything
     * else outside the alphabet it rejects. So: '=' only as the last one or two characters (and
     * "x=y" is not padding), and the first and last characters must be real ones, so that nothing
     * gets trimmed.
     */
    size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
    if (memchr(in, '=', n - pad) || !in_alphabet(in[0]) || (!pad && !in_alphabet(in[n - 1])))
        return LMR_ERR_FORMAT;
    size_t o = 0;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < DECODE_CHUNK_CHARS ? n - done : DECODE_CHUNK_CHARS;
        int got = EVP_DecodeBlock(out + o, (const unsigned char *)in + done, (int)k);
        if (got < 0)
            return LMR_ERR_FORMAT;
        o += (size_t)got;
        done += k;
    }
    *out_len = o - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    return LMR_OK;
}
