#include "job/fields.h"
#include "util/dtoa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

size_t lmr_fields_split(struct lmr_slice record, uint8_t delim, struct lmr_slice *out, size_t max)
{
    const uint8_t *p = record.ptr, *end = record.ptr + record.len;
    size_t n = 0;
    while (n < max) {
        const uint8_t *d = p < end ? memchr(p, delim, (size_t)(end - p)) : NULL;
        const uint8_t *stop = d ? d : end;
        out[n].ptr = p;
        out[n].len = (size_t)(stop - p);
        n++;
        if (!d)
            break;
        p = d + 1;
    }
    return n;
}

/* The first byte in [p, end) equal to a or b, or end. */
static inline const uint8_t *find2(const uint8_t *p, const uint8_t *end, uint8_t a, uint8_t b)
{
#ifdef __SSE2__
    const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)));
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && *p != a && *p != b)
        p++;
    return p;
}

size_t lmr_fields_split_line(const uint8_t *p, const uint8_t *end, uint8_t delim, struct lmr_slice *out, size_t max,
                             struct lmr_slice *record, const uint8_t **next)
{
    const uint8_t *start = p, *le = NULL;
    size_t n = 0;
    while (n < max) {
        const uint8_t *d = find2(p, end, delim, '\n');
        out[n].ptr = p;
        out[n].len = (size_t)(d - p);
        n++;
        if (d == end || *d == '\n') {
            le = d;
            break;
        }
        p = d + 1;
    }
    if (!le) {
        le = memchr(p, '\n', (size_t)(end - p));
        if (!le)
            le = end;
    }
    size_t len = (size_t)(le - start);
    if (len && le[-1] == '\r') {
        len--;
        /* the "\r" is not part of the line: the field that reached the line's end loses it */
        if (n && out[n - 1].ptr + out[n - 1].len == le)
            out[n - 1].len--;
    }
    *record = (struct lmr_slice){start, len};
    *next = le < end ? le + 1 : end;
    return n;
}

void lmr_fields_block_init(struct lmr_fields_block *b, struct lmr_slice block, uint8_t delim)
{
    b->p = block.ptr;
    b->end = block.ptr + block.len;
    b->win = block.ptr;
    b->delim = delim;
    b->dmask = b->nmask = 0;
    if (block.len)
        lmr_fields_window_masks_(b->win, b->end, delim, &b->dmask, &b->nmask);
}

bool lmr_fields_parse_delimiter(const char *s, uint8_t *out, char *errbuf, size_t errbuf_len)
{
    if (!s)
        s = ",";
    if (!strcmp(s, "\\t") || !strcmp(s, "tab") || !strcmp(s, "\t"))
        *out = '\t';
    else if (!strcmp(s, "space"))
        *out = ' ';
    else if (!strcmp(s, "comma"))
        *out = ',';
    else if (!strcmp(s, "pipe"))
        *out = '|';
    else if (strlen(s) == 1 && s[0] != '\n' && s[0] != '\r')
        *out = (uint8_t)s[0];
    else {
        snprintf(errbuf, errbuf_len,
                 "the delimiter '%s' is not a single byte; use one character such as ',' or '|', or 'tab'", s);
        return false;
    }
    return true;
}

bool lmr_fields_parse_index(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 5)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v < 1 || v > LMR_FIELDS_MAX)
        return false;
    *out = v;
    return true;
}

size_t lmr_fields_parse_list(const char *arg_name, const char *s, uint32_t *out, size_t max, char *errbuf,
                             size_t errbuf_len)
{
    size_t n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == max) {
            snprintf(errbuf, errbuf_len, "--%s lists more than %zu fields", arg_name, max);
            return 0;
        }
        if (!lmr_fields_parse_index(p, len, &out[n])) {
            snprintf(errbuf, errbuf_len,
                     "--%s '%s' is not a list of field numbers; give 1-based numbers from 1 to %d separated by "
                     "commas, e.g. '1,2'",
                     arg_name, s, LMR_FIELDS_MAX);
            return 0;
        }
        n++;
        if (!comma)
            return n;
        p = comma + 1;
    }
}

static const uint64_t pow10_u64[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* lmr_parse_number's slow path (characters already validated): strtod does the rounding. Out of
   line, so that the fast path needs no buffer on its stack. */
static __attribute__((noinline)) bool parse_slow(struct lmr_slice s, double *out)
{
    char buf[128];
    char *heap = NULL, *text = buf;
    if (s.len >= sizeof buf) {
        if (!(heap = malloc(s.len + 1)))
            return false;
        text = heap;
    }
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    char *stop;
    double v = strtod(text, &stop);
    bool ok = stop == text + s.len && isfinite(v);
    free(heap);
    if (ok)
        *out = v;
    return ok;
}

bool lmr_parse_number(struct lmr_slice s, double *out)
{
    const uint8_t *p = s.ptr, *end = s.ptr + s.len;
    if (p == end)
        return false;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    /* All digits into mant: exact while there are at most 19 of them (< 10^19 < 2^64); with more it
       wraps, and the slow path below decides. */
    uint64_t mant = 0, d;
    const uint8_t *digits = p;
    while (p < end && (d = (uint64_t)*p - '0') < 10)
        mant = mant * 10 + d, p++;
    size_t ndigits = (size_t)(p - digits), frac = 0;
    if (p < end && *p == '.') {
        const uint8_t *f = ++p;
        while (p < end && (d = (uint64_t)*p - '0') < 10)
            mant = mant * 10 + d, p++;
        frac = (size_t)(p - f);
        ndigits += frac;
    }
    if (!ndigits)
        return false;
    if (p == end && ndigits <= 19 && mant <= (1ull << 53) && frac <= 22) {
        /* Clinger's fast path: both operands exact, so one correctly rounded division. */
        double v = (double)mant / pow10_exact[frac];
        *out = neg ? -v : v;
        return true;
    }
    if (p < end) { /* only an exponent may follow */
        if (*p != 'e' && *p != 'E')
            return false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || *p < '0' || *p > '9')
            return false;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p != end)
            return false;
    }
    return parse_slow(s, out);
}

/* x < 10^8 as 8 ASCII digits, the most significant in the lowest byte: x split in two 4-digit
   halves, each half in two 2-digit lanes, each lane in two digits, every split in all lanes at
   once (x / 100 as x * 10486 >> 20 for x < 10^4, x / 10 as x * 103 >> 10 for x < 100). */
static inline uint64_t digits8(uint32_t x)
{
    uint64_t z = (uint64_t)(x / 10000) | (uint64_t)(x % 10000) << 32;
    uint64_t zh = ((z * 10486) >> 20) & 0x0000007F0000007Full;
    uint64_t w = zh | (z - zh * 100) << 16;
    uint64_t wh = ((w * 103) >> 10) & 0x000F000F000F000Full;
    return (wh | (w - wh * 10) << 8) | 0x3030303030303030ull;
}

/*
 * Fast path of lmr_format_double for 1e-4 <= |v| < 1e15, in exact integer arithmetic. With
 * |v| = f x 2^-s (f the 53-bit significand) and 10^E <= |v| < 10^(E+1), the n-digit decimal
 * nearest to |v| is m x 10^-d, d = n - 1 - E, m = round(f x 10^d / 2^s): one 64x64-bit product
 * and a shift, its remainder saying exactly how far m lies from |v|. It reads back as v when it
 * lies strictly inside v's rounding interval (half a unit in the last place either side; both
 * halves equal, as f is not a power of two here). Two decimals of at most 15 significant digits
 * never read back as the same double, so when the nearest 15-digit one does, it (its trailing
 * zeros removed) is the shortest; otherwise no decimal of 15 digits or fewer does, and the
 * nearest 16-digit one, then the 17-digit one, is the shortest and closest (what
 * double-conversion's shortest mode gives). Ties, candidates exactly on the interval's edge (where
 * reading back depends on round-half-even), powers of two (a narrower interval below), a
 * rounding up to a power of ten, 17 digits below 1e-3 (10^d past 64 bits) and |v| < 2^-11 (2^s
 * past 64 bits) are left to the slow path. @return the length, or 0 when the slow path must decide.
 */
static size_t format_exact(double v, char *out, size_t cap)
{
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15) || cap < 40)
        return 0;
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    int bexp = (int)(bits >> 52) - 1023; /* 2^bexp <= a < 2^(bexp+1); -14..49 here */
    uint64_t f = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    if (f == 1ull << 52)
        return 0;
    unsigned s = (unsigned)(52 - bexp); /* a = f / 2^s, s in 3..66 */
    if (s > 63)
        return 0;
    /* E = floor(log10(a)): bexp x log10(2) rounded down (1233 / 4096 is close enough for |bexp| < 100),
       or one more; the 15-digit quotient below says which. */
    int E = (bexp * 1233) >> 12;
    int d = 14 - E;
    unsigned __int128 x = (unsigned __int128)f * pow10_u64[d];
    uint64_t q = (uint64_t)(x >> s);
    if (q >= pow10_u64[15]) { /* a >= 10^(E+1): one digit more before the point */
        E++, d--;
        x = (unsigned __int128)f * pow10_u64[d];
        q = (uint64_t)(x >> s);
    }
    uint64_t low = ((uint64_t)1 << s) - 1, half = (uint64_t)1 << (s - 1);
    int n = 15;
    uint64_t m;
    for (;;) {
        uint64_t r = (uint64_t)x & low, dist;
        if (r == half)
            return 0; /* a tie between two n-digit decimals */
        if (r > half)
            m = q + 1, dist = low + 1 - r;
        else
            m = q, dist = r;
        /* m x 10^-d lies dist / (2^s x 10^d) from a; half an ulp is 1 / 2^(s+1) */
        uint64_t twice = dist * 2;
        if (twice < pow10_u64[d])
            break;
        if (twice == pow10_u64[d] || n == 17 || d == 19)
            return 0;
        n++, d++;
        x *= 10;
        q = (uint64_t)(x >> s);
    }
    if (m >= pow10_u64[n])
        return 0; /* rounded up to 10^(E+1) */
    /* m as 17 digits (n of them significant, leading zeros before), and how many of the n are
       trailing zeros */
    char buf[40] = {0};
    uint64_t top = m / pow10_u64[16], rest = m - top * pow10_u64[16];
    uint32_t hi = (uint32_t)(rest / 100000000), lo = (uint32_t)(rest % 100000000);
    uint64_t whi = digits8(hi), wlo = digits8(lo);
    buf[0] = (char)('0' + top);
    memcpy(buf + 1, &whi, 8);
    memcpy(buf + 9, &wlo, 8);
    int zeros = lo ? __builtin_clzll(wlo ^ 0x3030303030303030ull) / 8
                   : 8 + (hi ? __builtin_clzll(whi ^ 0x3030303030303030ull) / 8 : 8);
    const char *dg = buf + 17 - n;
    int ip = n - d;       /* digits before the point: E + 1 */
    int keep = n - zeros; /* the digits up to the last non-zero one */
    char *p = out;
    if (v < 0)
        *p++ = '-';
    /* fixed-size copies (cap >= 40): the bytes past the end are overwritten or lie past the NUL */
    if (ip > 0) {
        memcpy(p, dg, 16);
        if (keep > ip) {
            p[ip] = '.';
            memcpy(p + ip + 1, dg + ip, 16);
            p += keep + 1;
        } else {
            p += ip;
        }
    } else {
        memcpy(p, "0.000", 5);
        p += 2 - ip;
        memcpy(p, dg, 16);
        memcpy(p + 16, dg + 16, 8);
        p += keep;
    }
    *p = '\0';
    return (size_t)(p - out);
}

/* The shortest digits, laid out as printf's %.Pg would, P being 15 for up to 15 digits, else the
 * digit count (what the shortest of %.15g, %.16g and %.17g that reads back prints). */
static size_t format_shortest(double v, char *out, size_t cap)
{
    char digits[24];
    int point = 0;
    size_t n = lmr_dtoa_shortest(v, digits, &point);
    if (!n || cap < 32)
        return 0;
    int prec = n <= 15 ? 15 : (int)n, x = point - 1;
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    if (x < -4 || x >= prec) { /* d.ddde±XX */
        out[len++] = digits[0];
        if (n > 1) {
            out[len++] = '.';
            memcpy(out + len, digits + 1, n - 1);
            len += n - 1;
        }
        int e = x < 0 ? -x : x;
        out[len++] = 'e';
        out[len++] = x < 0 ? '-' : '+';
        if (e >= 100)
            out[len++] = (char)('0' + e / 100);
        out[len++] = (char)('0' + e / 10 % 10);
        out[len++] = (char)('0' + e % 10);
    } else if (point <= 0) { /* 0.000ddd */
        out[len++] = '0';
        out[len++] = '.';
        for (int i = 0; i < -point; i++)
            out[len++] = '0';
        memcpy(out + len, digits, n);
        len += n;
    } else if ((size_t)point >= n) { /* ddd000 */
        memcpy(out + len, digits, n);
        len += n;
        for (size_t i = n; i < (size_t)point; i++)
            out[len++] = '0';
    } else { /* ddd.ddd */
        memcpy(out + len, digits, (size_t)point);
        len += (size_t)point;
        out[len++] = '.';
        memcpy(out + len, digits + point, n - (size_t)point);
        len += n - (size_t)point;
    }
    out[len] = '\0';
    return len;
}

size_t lmr_format_double(double v, char *out, size_t cap)
{
    if (v == 0)
        v = 0; /* print -0 as 0 */
    size_t fast = format_exact(v, out, cap);
    if (!fast)
        fast = format_shortest(v, out, cap);
    if (fast)
        return fast;
    int n = snprintf(out, cap, "%.17g", v); /* zero, inf, nan; or a buffer too small for the fast paths */
    return n < 0 ? 0 : (size_t)n;
}
