/*
 * Base64 (see base64.h) with table codecs: 3 bytes to 4 characters and back through lookup
 * tables, no per-call setup, so that the stream path (one call per Kinesis record, tens of bytes
 * each) pays only for the bytes. OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock did the same work
 * with more per-call overhead and a lenient decoder this file had to wrap in checks.
 */
#include "util/base64.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static const char enc[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Character to its 6-bit value; 0xff for anything outside the alphabet ('=' included). */
static const uint8_t dec[256] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0x3e, 0xff, 0xff, 0xff, 0x3f, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c,
    0x3d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
    0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

/* Two characters per 12 bits: enc2[v] holds enc[v >> 6] and enc[v & 63] in memory order. */
static char enc2[4096][2];
static pthread_once_t enc2_once = PTHREAD_ONCE_INIT;
static void enc2_init(void)
{
    for (int v = 0; v < 4096; v++) {
        enc2[v][0] = enc[v >> 6];
        enc2[v][1] = enc[v & 63];
    }
}

/* dec4[k][c]: c's 6 bits shifted into place k of a 4-character group, or bit 31 when c is not base64. */
static uint32_t dec4[4][256];
static pthread_once_t dec4_once = PTHREAD_ONCE_INIT;
static void dec4_init(void)
{
    for (int k = 0; k < 4; k++)
        for (int c = 0; c < 256; c++)
            dec4[k][c] = dec[c] == 0xff ? 0x80000000u : (uint32_t)dec[c] << (18 - 6 * k);
}

size_t lmr_base64_encode_to(char *out, const void *data, size_t n)
{
    pthread_once(&enc2_once, enc2_init);
    const uint8_t *p = data;
    char *o = out;
    size_t i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        memcpy(o, enc2[v >> 12], 2);
        memcpy(o + 2, enc2[v & 4095], 2);
        o += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        o[0] = enc[v >> 18];
        o[1] = enc[(v >> 12) & 63];
        o[2] = '=';
        o[3] = '=';
        o += 4;
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        o[0] = enc[v >> 18];
        o[1] = enc[(v >> 12) & 63];
        o[2] = enc[(v >> 6) & 63];
        o[3] = '=';
        o += 4;
    }
    *o = '\0';
    return (size_t)(o - out);
}

enum lmr_result lmr_base64_append(struct lmr_buf *out, const void *data, size_t n)
{
    enum lmr_result r = lmr_buf_reserve(out, lmr_base64_len(n));
    if (r)
        return r;
    /* reserve() keeps room for the terminator the encoder writes. */
    out->len += lmr_base64_encode_to(out->data + out->len, data, n);
    return LMR_OK;
}

enum lmr_result lmr_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
    if (n % 4)
        return LMR_ERR_FORMAT;
    if (n == 0) {
        *out_len = 0;
        return LMR_OK;
    }
    /* '=' only as the last one or two characters ("x=y=" is not padding: its '=' is inside). */
    size_t pad = in[n - 1] == '=' ? (in[n - 2] == '=' ? 2 : 1) : 0;
    pthread_once(&dec4_once, dec4_init);
    const uint8_t *p = (const uint8_t *)in;
    size_t full = pad ? n - 4 : n, o = 0, i = 0;
    /* Four shifted tables: one OR makes the 24 bits, bit 31 flags a character outside the alphabet. */
    for (; i < full; i += 4) {
        uint32_t v = dec4[0][p[i]] | dec4[1][p[i + 1]] | dec4[2][p[i + 2]] | dec4[3][p[i + 3]];
        if (v & 0x80000000u)
            return LMR_ERR_FORMAT;
        out[o] = (uint8_t)(v >> 16);
        out[o + 1] = (uint8_t)(v >> 8);
        out[o + 2] = (uint8_t)v;
        o += 3;
    }
    if (pad) {
        const uint8_t *g = p + n - 4;
        uint32_t a = dec[g[0]], b = dec[g[1]], c = pad == 1 ? dec[g[2]] : 0;
        if ((a | b | c) & 0x80)
            return LMR_ERR_FORMAT;
        uint32_t v = a << 18 | b << 12 | c << 6;
        out[o++] = (uint8_t)(v >> 16);
        if (pad == 1)
            out[o++] = (uint8_t)(v >> 8);
    }
    *out_len = o;
    return LMR_OK;
}
