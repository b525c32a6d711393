/*
 * Helpers for jobs over delimited text (scan, aggregate): field splitting, 1-based field
 * lists, strict decimal number parsing, shortest round-trip formatting of doubles.
 */
#ifndef LMR_JOB_FIELDS_H
#define LMR_JOB_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lambdamr/job.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The highest field number a job accepts (fields are 1-based). */
#define LMR_FIELDS_MAX 1024

/**
 * Split record on delim into out[0..max): field i (1-based) is out[i-1]. Scanning stops after
 * max fields (the last one then ends at the next delimiter, not at the end of the record).
 * @return the number of fields found, at most max.
 */
size_t lmr_fields_split(struct lmr_slice record, uint8_t delim, struct lmr_slice *out, size_t max);

/**
 * Split the line that starts at p in a block of lines (it ends at the first '\n' before end, or
 * at end) as lmr_fields_split would split that line without its terminator (and without a "\r"
 * before it), in one pass: the scan for the fields also finds the line's end, and stops looking
 * for delimiters after max fields. Sets *record to the line (terminator removed) and *next to
 * the byte after its '\n' (or end).
 * @return the number of fields found, at most max (max 0: just the line).
 */
size_t lmr_fields_split_line(const uint8_t *p, const uint8_t *end, uint8_t delim, struct lmr_slice *out, size_t max,
                             struct lmr_slice *record, const uint8_t **next);

/*
 * The lines of a block, split one after another as lmr_fields_split_line splits them, but with
 * one scan of the block: a 64-byte window's delimiters and newlines become a bit mask once, and
 * each line takes its separators from the mask (no search restarted per field, no branch per
 * byte). Initialise with lmr_fields_block_init; the fields are only ever read, never written.
 */
struct lmr_fields_block {
    const uint8_t *p, *end; /* the next line's start; the block's end */
    const uint8_t *win;     /* the current 64-byte window */
    uint64_t dmask, nmask;  /* its delimiters and newlines not yet consumed (bit i: win[i]) */
    uint8_t delim;
};

/** Start iterating over the lines of block (whole lines; the last one may lack its "\n"). */
void lmr_fields_block_init(struct lmr_fields_block *b, struct lmr_slice block, uint8_t delim);

/* The delimiters (*dm) and newlines (*nm) of the 64 bytes at p, or of the bytes from p to end if
   fewer (bit i: p[i]). */
static inline void lmr_fields_window_masks_(const uint8_t *p, const uint8_t *end, uint8_t delim, uint64_t *dm,
                                            uint64_t *nm)
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

/**
 * The next line: its first fields into out[0..max) (as lmr_fields_split_line: the max-th field
 * ends at its delimiter; a "\r" before the line's end is removed), *n the number found, *record
 * the line without its terminator. @return false when the block has no more lines. Inline, so that
 * a job's loop over a block keeps the iterator in registers (no call and no state stored per line).
 */
static inline bool lmr_fields_block_next(struct lmr_fields_block *b, struct lmr_slice *out, size_t max, size_t *n,
                                         struct lmr_slice *record)
{
    const uint8_t *start = b->p, *fstart = start, *end = b->end, *le, *win = b->win;
    if (start >= end)
        return false;
    uint64_t dm = b->dmask, nm = b->nmask;
    size_t k = 0;
    /* The fields: in each window, the delimiters before its first newline one by one, until max
       fields or the line's end. */
    while (k < max) {
        uint64_t d = dm & (nm ? (nm & -nm) - 1 : ~(uint64_t)0);
        for (; d && k < max; d &= d - 1) {
            const uint8_t *s = win + __builtin_ctzll(d);
            out[k++] = (struct lmr_slice){fstart, (size_t)(s - fstart)};
            fstart = s + 1;
        }
        if (k == max)
            break;
        if (nm) { /* the line ends in this window: its last field */
            le = win + __builtin_ctzll(nm);
            out[k++] = (struct lmr_slice){fstart, (size_t)(le - fstart)};
            goto found;
        }
        if (end - win <= 64)
            goto line_end; /* no separator left: the line ends with the block */
        win += 64;
        lmr_fields_window_masks_(win, end, b->delim, &dm, &nm);
    }
    /* max fields found: straight to the newline, the delimiters before it skipped. */
    while (!nm) {
        if (end - win <= 64)
            goto line_end;
        win += 64;
        lmr_fields_window_masks_(win, end, b->delim, &dm, &nm);
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

/**
 * Parse a delimiter argument: one byte (","), or "\t" / "tab", "space", "comma", "pipe".
 * @return false (with a sentence in errbuf) when it is not one of those.
 */
bool lmr_fields_parse_delimiter(const char *s, uint8_t *out, char *errbuf, size_t errbuf_len);

/**
 * Parse a 1-based field number in [1, LMR_FIELDS_MAX] from s[0..len).
 * @return false when it is not one.
 */
bool lmr_fields_parse_index(const char *s, size_t len, uint32_t *out);

/**
 * Parse a comma-separated list of 1-based field numbers ("1,2,5") into out[0..max).
 * @return the count, or 0 with a sentence in errbuf when malformed or longer than max.
 */
size_t lmr_fields_parse_list(const char *arg_name, const char *s, uint32_t *out, size_t max, char *errbuf,
                             size_t errbuf_len);

/**
 * Parse a decimal number ([+-]digits[.digits][e[+-]digits], or .5, 5.) that fills the whole
 * slice into a correctly rounded double. Hex, inf, nan, spaces and empty strings are rejected.
 * @return false when s is not such a number.
 */
bool lmr_parse_number(struct lmr_slice s, double *out);

/**
 * Format v as the shortest decimal that parses back to exactly v (double-conversion's shortest digits),
 * laid out as the shortest of %.15g, %.16g, %.17g that reads back would be (no strtod round trips).
 * @return the length written to out (cap >= 40).
 */
size_t lmr_format_double(double v, char *out, size_t cap);

#endif
