/*
 * wordcount: words are maximal runs of bytes other than ASCII whitespace (space, \t, \n, \v,
 * \f, \r), case kept, exactly as Hadoop's WordCount example (StringTokenizer) splits them.
 * Values are 8-byte little-endian counts, summed by the combiner at emit time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "job/registry.h"

static const uint8_t is_space[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1};

static int wc_map(void *state, struct lmr_slice record, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    static const uint64_t one = 1;
    const struct lmr_slice value = {(const uint8_t *)&one, sizeof one};
    const uint8_t *p = record.ptr, *end = record.ptr + record.len;
    while (p < end) {
        while (p < end && is_space[*p])
            p++;
        const uint8_t *start = p;
        while (p < end && !is_space[*p])
            p++;
        if (p > start)
            lmr_emit(out, (struct lmr_slice){start, (size_t)(p - start)}, value);
    }
    return 0;
}

static void wc_combine(void *state, uint8_t *acc, struct lmr_slice value)
{
    uint64_t a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, value.ptr, 8);
    a += v;
    memcpy(acc, &a, 8);
}

static void wc_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    uint64_t total = 0, v;
    struct lmr_slice val;
    while (lmr_values_next(values, &val)) {
        if (val.len == 8) {
            memcpy(&v, val.ptr, 8);
            total += v;
        }
    }
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRIu64, total);
    lmr_emit(out, key, (struct lmr_slice){(const uint8_t *)text, (size_t)n});
}

const struct lmr_job_ops lmr_job_wordcount = {
    .name = "wordcount",
    .summary = "count words (maximal runs of non-whitespace bytes, as Hadoop's WordCount)",
    .map = wc_map,
    .value_size = 8,
    .combine = wc_combine,
    .reduce = wc_reduce,
};
