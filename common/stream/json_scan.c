#include "stream/json_scan.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

static inline void skip_ws(struct lmr_json_scan *s)
{
    (void)lmr_json_scan_peek(s);
}

static bool fail(struct lmr_json_scan *s)
{
    s->failed = true;
    return false;
}

/* Bytes that end the fast scan of a string: '"', '\\', control characters and every byte of a
 * multi-byte UTF-8 sequence (checked by utf8_seq). */
static const uint8_t string_stop[256] = {
    [0x00 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
    [0x80 ... 0xff] = 1,
};

/*
 * Length of the valid UTF-8 sequence at p (at most end - p bytes), 0 if invalid: the rules
 * jansson applies (RFC 3629: no overlong forms, no surrogates U+D800..U+DFFF, at most U+10FFFF).
 */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10);
    }
    return v;
}

bool lmr_json_scan_string(struct lmr_json_scan *s, const char **raw, size_t *raw_len, bool *escaped)
{
    if (!lmr_json_scan_expect(s, '"'))
        return false;
    const char *start = s->p, *p = s->p, *end = s->end;
    bool esc = false;
    for (;;) {
#ifdef __SSE2__
        /* Fast path, 16 bytes at a time: jump straight to the first '"', '\\' or control byte. */
        {
            const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1f);
            while (end - p >= 16) {
                __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
                __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                           _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
                int mask = _mm_movemask_epi8(hit) | _mm_movemask_epi8(v); /* | bytes >= 0x80 */
                if (mask) {
                    p += __builtin_ctz((unsigned)mask);
                    break;
                }
                p += 16;
            }
        }
#endif
        /* Then 8 bytes at a time (SWAR): stop at a word holding '"', '\\', a control byte or a byte >= 0x80. */
        while (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
            uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
            uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v) | v;
            if (hit & high)
                break;
            p += 8;
        }
        while (p < end && !string_stop[(uint8_t)*p])
            p++;
        if (p >= end)
            return fail(s);
        if (*p == '"')
            break;
        if ((unsigned char)*p >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (!n)
                return fail(s); /* not UTF-8: jansson refuses the document */
            p += n;
            continue;
        }
        if (*p != '\\' || p + 1 >= end)
            return fail(s); /* a control character */
        esc = true;
        if (p[1] == 'u') {
            if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
                return fail(s);
            int cp = hex4(p + 2);
            p += 6;
            if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
                return fail(s); /* U+0000 needs JSON_ALLOW_NUL; a low surrogate needs a high one before it */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate must be followed by an escaped low one. */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) ||
                    !is_hex(p[5]))
                    return fail(s);
                int lo = hex4(p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(s);
                p += 6;
            }
        } else if (p[1] && strchr("\"\\/bfnrt", p[1])) {
            p += 2;
        } else {
            return fail(s);
        }
    }
    *raw = start;
    *raw_len = (size_t)(p - start);
    s->p = p + 1;
    if (escaped)
        *escaped = esc;
    return true;
}

bool lmr_json_scan_number(struct lmr_json_scan *s, double *v)
{
    skip_ws(s);
    const char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end || *p < '0' || *p > '9')
        return fail(s);
    if (*p == '0')
        p++;
    else
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    bool is_real = false;
    if (p < s->end && *p == '.') {
        is_real = true;
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s);
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        is_real = true;
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s);
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    /* Short plain integers (the common case) cannot be out of range; anything else is converted
     * and checked the way jansson does: an integer must fit int64_t, a real may not overflow. */
    size_t n = (size_t)(p - s->p);
    if (n >= 19 || is_real || v) {
        char buf[64];
        if (n >= sizeof buf)
            return fail(s);
        memcpy(buf, s->p, n);
        buf[n] = '\0';
        errno = 0;
        double d;
        if (is_real) {
            d = strtod(buf, NULL);
            if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
                return fail(s);
        } else {
            long long i = strtoll(buf, NULL, 10);
            if (errno == ERANGE)
                return fail(s);
            d = (double)i;
            if (d == 0 && buf[0] == '-')
                d = -0.0;
        }
        if (v)
            *v = d;
    }
    s->p = p;
    return true;
}

static bool literal(struct lmr_json_scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n))
        return fail(s);
    s->p += n;
    return true;
}

static bool skip_depth(struct lmr_json_scan *s, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(s);
    char c = lmr_json_scan_peek(s);
    const char *raw;
    size_t len;
    bool first = true;
    switch (c) {
    case '"':
        return lmr_json_scan_string(s, &raw, &len, NULL);
    case '{':
        s->p++;
        while (lmr_json_scan_member(s, &first, &raw, &len))
            if (!skip_depth(s, depth + 1))
                return false;
        return !s->failed;
    case '[':
        s->p++;
        while (lmr_json_scan_element(s, &first))
            if (!skip_depth(s, depth + 1))
                return false;
        return !s->failed;
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        return lmr_json_scan_number(s, NULL);
    }
}

bool lmr_json_scan_skip(struct lmr_json_scan *s)
{
    return skip_depth(s, 0);
}

bool lmr_json_scan_member(struct lmr_json_scan *s, bool *first, const char **key, size_t *key_len)
{
    char c = lmr_json_scan_peek(s);
    if (c == '}') {
        s->p++;
        return false;
    }
    if (!*first && !lmr_json_scan_expect(s, ','))
        return false;
    *first = false;
    if (!lmr_json_scan_string(s, key, key_len, NULL) || !lmr_json_scan_expect(s, ':'))
        return false;
    return true;
}

bool lmr_json_scan_element(struct lmr_json_scan *s, bool *first)
{
    char c = lmr_json_scan_peek(s);
    if (c == ']') {
        s->p++;
        return false;
    }
    if (!*first && !lmr_json_scan_expect(s, ','))
        return false;
    *first = false;
    return true;
}

size_t lmr_json_unescape(const char *raw, size_t raw_len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < raw_len; i++) {
        if (raw[i] != '\\') {
            out[o++] = raw[i];
            continue;
        }
        if (++i >= raw_len)
            return (size_t)-1;
        char c = raw[i];
        switch (c) {
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u': {
            if (i + 4 >= raw_len)
                return (size_t)-1;
            uint32_t cp = (uint32_t)hex4(raw + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < raw_len && raw[i + 1] == '\\' && raw[i + 2] == 'u') {
                uint32_t lo = (uint32_t)hex4(raw + i + 3);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            /* A \uXXXX escape takes 6 input bytes and at most 4 output bytes. */
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xC0 | cp >> 6);
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out[o++] = (char)(0xE0 | cp >> 12);
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                out[o++] = (char)(0xF0 | cp >> 18);
                out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            out[o++] = c;
        }
    }
    return o;
}
