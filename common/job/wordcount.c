/*
 * wordcount: words are maximal runs of bytes other than ASCII whitespace (space, \t, \n, \v,
 * \f, \r), case kept, exactly as Hadoop's WordCount example (StringTokenizer) splits them.
 * Values are 8-byte counts (the machine's byte order), summed at emit time by the combining
 * table's own adder (lmr_combine_add_u64).
 */
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "job/registry.h"
#include "shuffle/combine_table.h"

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

#ifdef __SSE2__
/* Bit i set when p[i] is whitespace, for the 64 bytes at p. */
static inline uint64_t space_mask64(const uint8_t *p)
{
    const __m128i sp = _mm_set1_epi8(' '), shift = _mm_set1_epi8((char)(0x80 - '\t')), lim = _mm_set1_epi8(-123);
    /* '\t'..'\r' (9..13) map to -128..-124 after the shift; nothing else does. Four 16-byte
       groups, written out (GCC -O2 keeps a loop over them, with a variable shift). */
#define WC_WS16(k)                                                                                                     \
    ((uint64_t)(uint16_t)_mm_movemask_epi8(                                                                            \
         _mm_or_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * (k))), sp),                            \
                      _mm_cmplt_epi8(_mm_add_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * (k))), shift), lim)))     \
     << (16 * (k)))
    return WC_WS16(0) | WC_WS16(1) | WC_WS16(2) | WC_WS16(3);
#undef WC_WS16
}
#else
static inline uint64_t space_mask64(const uint8_t *p)
{
    uint64_t m = 0;
    for (int i = 0; i < 64; i++)
        m |= (uint64_t)is_space[p[i]] << i;
    return m;
}
#endif

/* Words handed to the emitter at a time (lmr_emit_keys), at least: a 64-byte group adds up to 33. */
#define WC_BATCH 64

/*
 * The whole block at once: 64 bytes at a time into a whitespace bit mask, then the word starts
 * and ends are found with bit operations (no branch per byte). Lines need no separate handling:
 * their terminators are whitespace. The same words in the same order as wc_map over each line,
 * handed over WC_BATCH or more at a time (a combining table takes them in one loop).
 */
static int wc_map_block(void *state, struct lmr_slice block, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    static const uint64_t one = 1;
    const struct lmr_slice value = {(const uint8_t *)&one, sizeof one};
    const uint8_t *base = block.ptr, *end = block.ptr + block.len, *word = NULL;
    uint64_t prev_space = 1; /* the byte before the block counts as whitespace */
    uint8_t pad[64];
    struct lmr_slice keys[WC_BATCH + 64];
    size_t nk = 0;
    while (base < end) {
        uint64_t ws;
        if (end - base >= 64) {
            ws = space_mask64(base);
        } else {
            memset(pad, ' ', sizeof pad); /* past the end: whitespace */
            memcpy(pad, base, (size_t)(end - base));
            ws = space_mask64(pad);
        }
        uint64_t shifted = ws << 1 | prev_space;
        uint64_t starts = ~ws & shifted, ends = ws & ~shifted;
        prev_space = ws >> 63;
        if (word && ends) { /* the word that began in an earlier 64-byte group */
            const uint8_t *e = base + (unsigned)__builtin_ctzll(ends);
            keys[nk++] = (struct lmr_slice){word, (size_t)(e - word)};
            ends &= ends - 1;
            word = NULL;
        }
        while (starts) {
            const uint8_t *s = base + (unsigned)__builtin_ctzll(starts);
            starts &= starts - 1;
            if (!ends) {
                word = s;
                break;
            }
            const uint8_t *e = base + (unsigned)__builtin_ctzll(ends);
            ends &= ends - 1;
            keys[nk++] = (struct lmr_slice){s, (size_t)(e - s)};
        }
        if (nk >= WC_BATCH) {
            lmr_emit_keys(out, keys, nk, value);
            nk = 0;
        }
        base += 64;
    }
    if (word) /* the block's last byte ends a word, at a 64-byte boundary */
        keys[nk++] = (struct lmr_slice){word, (size_t)(end - word)};
    if (nk)
        lmr_emit_keys(out, keys, nk, value);
    return 0;
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
    /* The decimal digits, written backwards from the end of the buffer (snprintf's format
       parsing cost more than the reducer's merge of the key). */
    char text[24];
    char *p = text + sizeof text;
    do {
        *--p = (char)('0' + total % 10);
        total /= 10;
    } while (total);
    lmr_emit(out, key, (struct lmr_slice){(const uint8_t *)p, (size_t)(text + sizeof text - p)});
}

const struct lmr_job_ops lmr_job_wordcount = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "wordcount",
    .summary = "count words (maximal runs of non-whitespace bytes, as Hadoop's WordCount)",
    .map = wc_map,
    .map_block = wc_map_block,
    .value_size = 8,
    .combine = lmr_combine_add_u64, /* the combining table adds inline for it */
    .reduce = wc_reduce,
};
