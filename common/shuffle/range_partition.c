/* The range partitioner: boundaries in text form, binary search, boundaries from a sorted sample. */
#include "shuffle/range_partition.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/misc.h"

int lmr_range_key_compare(struct lmr_slice a, struct lmr_slice b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

void lmr_range_partitioner_clean_up(struct lmr_range_partitioner *rp)
{
    if (!rp)
        return;
    free(rp->bounds);
    free(rp->bytes);
    memset(rp, 0, sizeof *rp);
}

enum lmr_result lmr_range_partitioner_parse(struct lmr_range_partitioner *rp, const char *text, struct lmr_err *err)
{
    memset(rp, 0, sizeof *rp);
    size_t len = strlen(text);
    if (len > LMR_RANGE_MAX_TEXT_BYTES)
        return lmr_fail(err, LMR_ERR_FORMAT, "the range boundaries are %zu bytes of text, more than the %u allowed",
                        len, LMR_RANGE_MAX_TEXT_BYTES);
    if (!len)
        return LMR_OK;
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == ',';
    if (n > LMR_RANGE_MAX_BOUNDS)
        return lmr_fail(err, LMR_ERR_FORMAT, "%zu range boundaries is more than the %u allowed", n,
                        LMR_RANGE_MAX_BOUNDS);
    rp->bounds = calloc(n, sizeof *rp->bounds);
    rp->bytes = malloc(len / 2 + 1);
    if (!rp->bounds || !rp->bytes) {
        lmr_range_partitioner_clean_up(rp);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for %zu range boundaries", n);
    }
    uint8_t *w = rp->bytes;
    const char *p = text;
    for (size_t b = 0; b < n; b++) {
        const uint8_t *start = w;
        while (*p && *p != ',') {
            int hi = lmr_hex_digit_value(p[0]), lo = p[1] ? lmr_hex_digit_value(p[1]) : -1;
            if (hi < 0 || lo < 0) {
                lmr_range_partitioner_clean_up(rp);
                return lmr_fail(err, LMR_ERR_FORMAT,
                                "range boundary %zu is not hex pairs (at '%.8s'); the ranges argument is written by "
                                "the planner's sampling step, do not give it by hand",
                                b + 1, p);
            }
            *w++ = (uint8_t)(hi << 4 | lo);
            p += 2;
        }
        if (*p == ',')
            p++;
        rp->bounds[b] = (struct lmr_slice){start, (size_t)(w - start)};
        if (b && lmr_range_key_compare(rp->bounds[b - 1], rp->bounds[b]) > 0) {
            lmr_range_partitioner_clean_up(rp);
            return lmr_fail(err, LMR_ERR_FORMAT, "range boundary %zu is below boundary %zu; boundaries must ascend",
                            b + 1, b);
        }
    }
    rp->nbounds = (uint32_t)n;
    return LMR_OK;
}

uint32_t lmr_range_partition(const struct lmr_range_partitioner *rp, struct lmr_slice key, uint32_t nparts)
{
    /* upper bound: the first boundary > key */
    uint32_t lo = 0, hi = rp->nbounds;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (lmr_range_key_compare(rp->bounds[mid], key) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return nparts ? (lo < nparts ? lo : nparts - 1) : 0;
}

size_t lmr_range_bound_bytes(uint32_t nparts, size_t max_bytes)
{
    size_t n = nparts > 1 ? nparts - 1 : 1;
    size_t cap = n < LMR_RANGE_MAX_TEXT_BYTES ? (LMR_RANGE_MAX_TEXT_BYTES - n) / 2 / n : 0;
    if (cap > max_bytes)
        cap = max_bytes;
    return cap ? cap : 1;
}

enum lmr_result lmr_range_bounds_format(const struct lmr_slice *sorted, size_t nsamples, uint32_t nparts,
                                        size_t max_key_bytes, char **text, struct lmr_err *err)
{
    static const char hex[] = "0123456789abcdef";
    *text = NULL;
    if (nparts == 0 || nparts - 1 > LMR_RANGE_MAX_BOUNDS)
        return lmr_fail(err, LMR_ERR_INVALID, "a range partitioner takes 1 to %u partitions, not %u",
                        LMR_RANGE_MAX_BOUNDS + 1, nparts);
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_RANGE_MAX_TEXT_BYTES);
    enum lmr_result r = lmr_buf_append(&b, "", 0);
    for (uint32_t i = 1; i < nparts && !r && nsamples; i++) {
        struct lmr_slice k = sorted[(size_t)((uint64_t)i * nsamples / nparts)];
        size_t n = k.len < max_key_bytes ? k.len : max_key_bytes;
        if (i > 1)
            r = lmr_buf_append(&b, ",", 1);
        for (size_t j = 0; j < n && !r; j++) {
            char pair[2] = {hex[k.ptr[j] >> 4], hex[k.ptr[j] & 15]};
            r = lmr_buf_append(&b, pair, 2);
        }
    }
    if (r) {
        lmr_buf_clean_up(&b);
        return lmr_fail(err, r, "the %u range boundaries do not fit %u bytes of text; use fewer reducers", nparts - 1,
                        LMR_RANGE_MAX_TEXT_BYTES);
    }
    *text = lmr_buf_detach(&b, NULL);
    return LMR_OK;
}
