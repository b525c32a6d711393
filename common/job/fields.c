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

/* The delimiters (*dm) and newlines (*nm) of the 64 bytes at p, or of the bytes from p to end if
   fewer (bit i: p[i]). */
static inline void window_masks(const uint8_t *p, const uint8_t *end, uint8_t delim, uint64_t *dm, uint64_t *nm)
{
#ifdef __SSE2__
    if (end - p >= 64) {
        const __m128i vd = _mm_set1_epi8((char)delim), vn = _mm_set1_epi8('\n');
        __m128i x0 = _mm_loadu_si128((const __m128i *)p), x1 = _mm_loadu_si128((const __m128i *)(p + 16)),
                x2 = _mm_loadu_si128((const __m128i *)(p + 32)), x3 = _mm_loadu_si128((const __m128i *)(p + 48));
        *dm = (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x0, vd)) |
              (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x1, vd)) << 16 |
              (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x2, vd)) << 32 |
              (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x3, vd)) << 48;
        *nm = (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x0, vn)) |
              (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x1, vn)) << 16 |
              (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x2, vn)) << 32 |
              (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x3, vn)) << 48;
        return;
    }
#endif
    size_t n = (size_t)(end - p) < 64 ? (size_t)(end - p) : 64;
    uint64_t d = 0, l = 0;
    for (size_t i = 0; i < n; i++) {
        d |= (uint64_t)(p[i] == delim) << i;
        l |= (uint64_t)(p[i] == '\n') << i;
    }
    *dm = d;
    *nm = l;
}

void lmr_fields_block_init(struct lmr_fields_block *b, struct lmr_slice block, uint8_t delim)
{
    b->p = block.ptr;
    b->end = block.ptr + block.len;
    b->win = block.ptr;
    b->delim = delim;
    b->dmask = b->nmask = 0;
    if (block.len)
        window_masks(b->win, b->end, delim, &b->dmask, &b->nmask);
}

bool lmr_fields_block_next(struct lmr_fields_block *b, struct lmr_slice *out, size_t max, size_t *n,
                           struct lmr_slice *record)
{
    const uint8_t *start = b->p, *fstart = start, *end = b->end, *le = end, *win = b->win;
    if (start >= end)
        return false;
    uint64_t dm = b->dmask, nm = b->nmask;
    size_t k = 0;
    /* The fields: separators one by one until max fields or the line's end. */
    while (k < max) {
        while (!(dm | nm)) {
            if (end - win <= 64)
                goto line_end; /* no separator left: the line ends with the block */
            win += 64;
            window_masks(win, end, b->delim, &dm, &nm);
        }
        uint64_t both = dm | nm, bit = both & -both;
        const uint8_t *s = win + __builtin_ctzll(both);
        if (nm & bit) {
            out[k++] = (struct lmr_slice){fstart, (size_t)(s - fstart)};
            le = s;
            goto found;
        }
        dm &= dm - 1;
        out[k++] = (struct lmr_slice){fstart, (size_t)(s - fstart)};
        fstart = s + 1;
    }
    /* max fields found: straight to the newline, the delimiters before it skipped. */
    while (!nm) {
        if (end - win <= 64) {
            dm = 0;
            goto line_end;
        }
        win += 64;
        window_masks(win, end, b->delim, &dm, &nm);
    }
    le = win + __builtin_ctzll(nm);
found : {
    /* consume the separators up to and including the newline */
    unsigned i = (unsigned)(le - win);
    uint64_t below = i == 63 ? ~(uint64_t)0 : ((uint64_t)2 << i) - 1;
    dm &= ~below;
    nm &= ~below;
}
    goto done;
line_end:
    if (k < max)
        out[k++] = (struct lmr_slice){fstart, (size_t)(end - fstart)};
    le = end;
    dm = nm = 0;
done:;
    size_t len = (size_t)(le - start);
    if (len && le[-1] == '\r') {
        len--;
        /* the "\r" is not part of the line: the field that reached the line's end loses it */
        if (k && out[k - 1].ptr + out[k - 1].len == le)
            out[k - 1].len--;
    }
    *record = (struct lmr_slice){start, len};
    *n = k;
    b->p = le < end ? le + 1 : end;
    b->win = win;
    b->dmask = dm;
    b->nmask = nm;
    return true;
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

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

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
    uint64_t mant = 0;
    const uint8_t *digits = p;
    unsigned d;
    while (p < end && (d = (unsigned)(*p - '0')) < 10)
        mant = mant * 10 + d, p++;
    size_t ndigits = (size_t)(p - digits), frac = 0;
    if (p < end && *p == '.') {
        const uint8_t *f = ++p;
        while (p < end && (d = (unsigned)(*p - '0')) < 10)
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
    /* Slow path: the characters are validated above, strtod does the rounding. */
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

/*
 * Fast path of lmr_format_double for 1e-4 <= |v| < 1e15: the smallest d such that the d-decimal
 * nearest to v reads back as v, with at most 15 significant digits. Two 15-digit decimals never
 * read back as the same double, so this is exactly what the %.15g attempt would print (trailing
 * zeros removed). @return the length, or 0 when the slow path must decide.
 */
static size_t format_fixed(double v, char *out, size_t cap)
{
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15) || cap < 32)
        return 0;
    for (int d = 0; d <= 19; d++) {
        double scaled = a * pow10_exact[d];
        if (scaled >= 1e15)
            return 0;
        uint64_t m = (uint64_t)(scaled + 0.5);
        if ((double)m / pow10_exact[d] != a)
            continue;
        while (d > 0 && m % 10 == 0) /* an off-by-one rounding above may have skipped a shorter d */
            m /= 10, d--;
        char digits[24];
        int n = 0;
        do {
            digits[n++] = (char)('0' + m % 10);
            m /= 10;
        } while (m);
        while (n <= d) /* at least one digit before the point */
            digits[n++] = '0';
        size_t len = 0;
        if (v < 0)
            out[len++] = '-';
        for (int i = n - 1; i >= 0; i--) {
            out[len++] = digits[i];
            if (i == d && d > 0)
                out[len++] = '.';
        }
        out[len] = '\0';
        return len;
    }
    return 0;
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
    size_t fast = format_fixed(v, out, cap);
    if (!fast)
        fast = format_shortest(v, out, cap);
    if (fast)
        return fast;
    int n = snprintf(out, cap, "%.17g", v); /* zero, inf, nan; or a buffer too small for the fast paths */
    return n < 0 ? 0 : (size_t)n;
}
