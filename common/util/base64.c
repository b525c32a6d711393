/*
 * Base64 (see base64.h) with table codecs: 3 bytes to 4 characters and back through lookup
 * tables, no per-call setup, so that the stream path (one call per Kinesis record, tens of bytes
 * each) pays only for the bytes. OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock did the same work
 * with more per-call overhead and a lenient decoder this file had to wrap in checks. On x86-64
 * with AVX2 (checked at run time) runs of 24 bytes / 32 characters go through vector codecs
 * (the pshufb/multiply-add method of W. Muła and D. Lemire): an aggregated stream record is
 * hundreds of kilobytes, where the tables took ~5 instructions per character.
 */
#include "util/base64.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LMR_BASE64_AVX2 1
#endif

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

#ifdef LMR_BASE64_AVX2
static bool have_avx2;
static pthread_once_t avx2_once = PTHREAD_ONCE_INIT;
static void avx2_init(void)
{
    __builtin_cpu_init();
    /* LMR_BASE64_SCALAR=1 keeps to the tables (tests run both codecs). */
    const char *e = getenv("LMR_BASE64_SCALAR");
    have_avx2 = __builtin_cpu_supports("avx2") && !(e && !strcmp(e, "1"));
}

static bool use_avx2(void)
{
    pthread_once(&avx2_once, avx2_init);
    return have_avx2;
}

/* Encode 24-byte runs while 28 bytes can be read (two 16-byte loads, 12 bytes used of each). @return bytes done. */
__attribute__((target("avx2"))) static size_t encode_avx2(char *out, const uint8_t *in, size_t n)
{
    const __m256i shuf = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1, 0, 2, 1, 4, 3, 5, 4, 7,
                                          6, 8, 7, 10, 9, 11, 10);
    const __m256i shift_lut = _mm256_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                               '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0,
                                               'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                               '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
    size_t i = 0;
    for (; i + 28 <= n; i += 24, out += 32) {
        __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(in + i))),
                                            _mm_loadu_si128((const __m128i *)(in + i + 12)), 1);
        v = _mm256_shuffle_epi8(v, shuf); /* each 3 bytes b0 b1 b2 as b1 b0 b2 b1 */
        __m256i t0 = _mm256_and_si256(v, _mm256_set1_epi32(0x0fc0fc00));
        __m256i t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x04000040));
        __m256i t2 = _mm256_and_si256(v, _mm256_set1_epi32(0x003f03f0));
        __m256i t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x01000010));
        __m256i idx = _mm256_or_si256(t1, t3); /* one 6-bit value per byte, in output order */
        __m256i r = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
        __m256i less = _mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx);
        r = _mm256_or_si256(r, _mm256_and_si256(less, _mm256_set1_epi8(13)));
        r = _mm256_add_epi8(_mm256_shuffle_epi8(shift_lut, r), idx);
        _mm256_storeu_si256((__m256i *)out, r);
    }
    return i;
}

/* Decode 32-character runs of [0, n) (no padding in them). @return characters done, or (size_t)-1 when one is not
   base64. */
__attribute__((target("avx2"))) static size_t decode_avx2(uint8_t *out, const uint8_t *in, size_t n)
{
    const __m256i lut_lo = _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a,
                                            0x1b, 0x1b, 0x1b, 0x1a, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                            0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a);
    const __m256i lut_hi = _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
                                            0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08,
                                            0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    const __m256i lut_roll = _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4,
                                              -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i mask_2f = _mm256_set1_epi8(0x2f);
    const __m256i pack = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5, 4, 10,
                                          9, 8, 14, 13, 12, -1, -1, -1, -1);
    size_t i = 0;
    for (; i + 32 <= n; i += 32, out += 24) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(in + i));
        __m256i hi_nib = _mm256_and_si256(_mm256_srli_epi32(v, 4), mask_2f);
        __m256i lo_nib = _mm256_and_si256(v, mask_2f);
        __m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nib);
        __m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nib);
        if (!_mm256_testz_si256(lo, hi))
            return (size_t)-1;
        __m256i eq_2f = _mm256_cmpeq_epi8(v, mask_2f);
        __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(eq_2f, hi_nib));
        v = _mm256_add_epi8(v, roll); /* 6-bit values */
        v = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
        v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x00011000));
        v = _mm256_shuffle_epi8(v, pack);
        v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7));
        _mm_storeu_si128((__m128i *)out, _mm256_castsi256_si128(v));
        _mm_storel_epi64((__m128i *)(out + 16), _mm256_extracti128_si256(v, 1));
    }
    return i;
}
#endif

size_t lmr_base64_encode_to(char *out, const void *data, size_t n)
{
    pthread_once(&enc2_once, enc2_init);
    const uint8_t *p = data;
    char *o = out;
    size_t i = 0;
#ifdef LMR_BASE64_AVX2
    if (n >= 28 && use_avx2()) {
        i = encode_avx2(o, p, n);
        o += i / 3 * 4;
    }
#endif
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
#ifdef LMR_BASE64_AVX2
    if (full >= 32 && use_avx2()) {
        i = decode_avx2(out, p, full);
        if (i == (size_t)-1)
            return LMR_ERR_FORMAT;
        o = i / 4 * 3;
    }
#endif
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
