/* Internals shared by the generators: random streams, alias sampling, vocabularies, part writing. */
#ifndef LMR_DATASETS_GEN_INTERNAL_H
#define LMR_DATASETS_GEN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/result.h"

/* splitmix64: seeds streams from (seed, stream ids); also a good 64-bit mixer. */
static inline uint64_t lmr_gen_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* xoshiro256** random stream. */
struct lmr_rng {
    uint64_t s[4];
};

static inline void lmr_rng_seed(struct lmr_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = lmr_gen_mix(seed) ^ lmr_gen_mix(stream ^ 0x5851f42d4c957f2dull);
    for (int i = 0; i < 4; i++) {
        x = lmr_gen_mix(x + (uint64_t)i);
        r->s[i] = x;
    }
}

static inline uint64_t lmr_rng_next(struct lmr_rng *r)
{
    uint64_t *s = r->s;
    uint64_t t = s[1] << 17, x = s[1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, n) (n <= 2^32; multiply-shift, bias below 2^-32). */
static inline uint32_t lmr_rng_below(struct lmr_rng *r, uint32_t n)
{
    return (uint32_t)(((lmr_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in (0, 1]. */
static inline double lmr_rng_unit(struct lmr_rng *r)
{
    return (double)((lmr_rng_next(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

/* Walker/Vose alias table over n outcomes: O(1) sampling of a fixed discrete distribution. */
struct lmr_alias {
    uint32_t n;
    uint32_t *threshold; /* keep i when the low 32 random bits are below threshold[i] */
    uint32_t *alias;
};

/** Build a table for Zipf(s) over ranks 1..n (outcome i has weight 1/(i+1)^s). */
enum lmr_result lmr_alias_zipf(struct lmr_alias *a, uint32_t n, double s);
void lmr_alias_clean_up(struct lmr_alias *a);

static inline uint32_t lmr_alias_sample(const struct lmr_alias *a, struct lmr_rng *r)
{
    uint64_t x = lmr_rng_next(r);
    uint32_t i = (uint32_t)(((x >> 32) * (uint64_t)a->n) >> 32);
    return (uint32_t)x < a->threshold[i] ? i : a->alias[i];
}

/* A vocabulary: n distinct words of ASCII letters, stored back to back. */
struct lmr_vocab {
    uint32_t n;
    char *bytes;      /* all words, no separators */
    uint32_t *offset; /* word i is bytes[offset[i] .. offset[i+1]) */
};

/**
 * Build n distinct words from seed: lengths grow slowly with rank (frequent words are short,
 * as in natural language), letters uniform; when capital_pct > 0, that percentage of words
 * starts with a capital letter.
 */
enum lmr_result lmr_vocab_build(struct lmr_vocab *v, uint32_t n, uint64_t seed, unsigned capital_pct);
void lmr_vocab_clean_up(struct lmr_vocab *v);

/* Writes one part file through a buffer: hidden temporary name, renamed by commit. */
struct lmr_part_writer {
    int fd;
    char final_path[4096];
    char tmp_path[4096];
    char *buf;
    size_t len, cap;
    uint64_t written;
};

enum lmr_result lmr_part_open(struct lmr_part_writer *w, const char *dir, uint32_t index, struct lmr_err *err);
/** Make room for n more bytes (flushing when needed); returns where to write them. */
char *lmr_part_reserve(struct lmr_part_writer *w, size_t n, struct lmr_err *err);
static inline void lmr_part_advance(struct lmr_part_writer *w, size_t n)
{
    w->len += n;
}
/** Flush and rename into place. The writer is closed afterwards either way. */
enum lmr_result lmr_part_commit(struct lmr_part_writer *w, struct lmr_err *err);
/** Close and remove the temporary file (after a failure). NULL-safe on a closed writer. */
void lmr_part_abort(struct lmr_part_writer *w);

/**
 * Prepare an output directory: create it, and if it holds part-* files either fail
 * (LMR_ERR_EXISTS) or, with force, remove them.
 */
enum lmr_result lmr_gen_prepare_dir(const char *dir, int force, struct lmr_err *err);

/** Run fn(ctx, i) for i in [0, n) on `threads` threads; first failure wins (its err is copied). */
enum lmr_result lmr_gen_parallel(uint32_t n, unsigned threads,
                                 enum lmr_result (*fn)(void *ctx, uint32_t i, struct lmr_err *err), void *ctx,
                                 struct lmr_err *err);

/** Online CPUs (at least 1). */
unsigned lmr_gen_default_threads(void);

#endif
