#include "stream/json_scan.h"

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

/* Bytes that end the fast scan of a string: '"', '\\' and control characters. */
static const uint8_t string_stop[256] = {
    [0] = 1,  [1] = 1,  [2] = 1,  [3] = 1,  [4] = 1,  [5] = 1,   [6] = 1,    [7] = 1,  [8] = 1,
    [9] = 1,  [10] = 1, [11] = 1, [12] = 1, [13] = 1, [14] = 1,  [15] = 1,   [16] = 1, [17] = 1,
    [18] = 1, [19] = 1, [20] = 1, [21] = 1, [22] = 1, [23] = 1,  [24] = 1,   [25] = 1, [26] = 1,
    [27] = 1, [28] = 1, [29] = 1, [30] = 1, [31] = 1, ['"'] = 1, ['\\'] = 1,
};

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
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
                int mask = _mm_movemask_epi8(hit);
                if (mask) {
                    p += __builtin_ctz((unsigned)mask);
                    break;
                }
                p += 16;
            }
        }
#endif
        /* Then 8 bytes at a time (SWAR): stop at a word holding '"', '\\' or a control byte. */
        while (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
            uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
            uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v);
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
        if (*p != '\\' || p + 1 >= end)
            return fail(s); /* a control character */
        esc = true;
        if (p[1] == 'u') {
            if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
                return fail(s);
            p += 6;
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
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s);
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s);
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    char buf[64];
    size_t n = (size_t)(p - s->p);
    if (v) {
        if (n >= sizeof buf)
            return fail(s);
        memcpy(buf, s->p, n);
        buf[n] = '\0';
        *v = strtod(buf, NULL);
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

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10);
    }
    return v;
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
