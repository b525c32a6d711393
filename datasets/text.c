/*
 * Zipf text: words drawn by rank from a Zipf(s) distribution over a generated vocabulary,
 * separated mostly by single spaces (sometimes a tab, two spaces, \v or \f), lines of 1-20
 * words with occasional long lines, empty lines and \r\n endings. See datasets/README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "gen_internal.h"

#define TEXT_STREAM 0x7465787400000000ull /* "text" */
#define MAX_LINE_WORDS 200
#define MAX_LINE_BYTES (MAX_LINE_WORDS * 48 + 8)

struct text_job {
    const char *dir;
    uint64_t seed, size_bytes;
    uint32_t files;
    struct lmr_vocab vocab;
    struct lmr_alias zipf;
    uint64_t *rows; /* per part */
};

static enum lmr_result text_part(void *ctx, uint32_t index, struct lmr_err *err)
{
    struct text_job *job = ctx;
    uint64_t remaining = job->size_bytes / job->files + (index < job->size_bytes % job->files);
    struct lmr_rng rng;
    lmr_rng_seed(&rng, job->seed, TEXT_STREAM | index);
    struct lmr_part_writer w;
    enum lmr_result r = lmr_part_open(&w, job->dir, index, err);
    if (r)
        return r;
    const char *words = job->vocab.bytes;
    const uint32_t *offset = job->vocab.offset;
    uint64_t rows = 0;
    while (remaining > 0) {
        char *p = lmr_part_reserve(&w, MAX_LINE_BYTES, err);
        if (!p) {
            lmr_part_abort(&w);
            return err ? err->code : LMR_ERR_IO;
        }
        /* Line shape: 1.5% empty, 2% long (50-200 words), else 1-20 words. */
        uint32_t shape = lmr_rng_below(&rng, 1000), nwords;
        if (shape < 15)
            nwords = 0;
        else if (shape < 35)
            nwords = 50 + lmr_rng_below(&rng, MAX_LINE_WORDS - 49);
        else
            nwords = 1 + lmr_rng_below(&rng, 20);
        size_t n = 0;
        int full = 0;
        for (uint32_t k = 0; k < nwords; k++) {
            uint32_t id = lmr_alias_sample(&job->zipf, &rng);
            const char *word = words + offset[id];
            size_t wlen = offset[id + 1] - offset[id];
            char sep[2];
            size_t seplen = 0;
            if (k > 0) {
                uint32_t s = lmr_rng_below(&rng, 1000);
                sep[0] = ' ', seplen = 1;
                if (s < 25)
                    sep[0] = '\t';
                else if (s < 35)
                    sep[1] = ' ', seplen = 2;
                else if (s < 36)
                    sep[0] = '\v';
                else if (s < 37)
                    sep[0] = '\f';
            }
            if (n + seplen + wlen + 1 > remaining) {
                full = 1;
                break;
            }
            memcpy(p + n, sep, seplen);
            memcpy(p + n + seplen, word, wlen);
            n += seplen + wlen;
        }
        if (full) { /* the last line of the part: pad with spaces to the exact size */
            memset(p + n, ' ', remaining - 1 - n);
            n = remaining - 1;
        } else if (n + 2 <= remaining && lmr_rng_below(&rng, 200) == 0) {
            p[n++] = '\r';
        }
        p[n++] = '\n';
        lmr_part_advance(&w, n);
        remaining -= n;
        rows++;
    }
    job->rows[index] = rows;
    return lmr_part_commit(&w, err);
}

enum lmr_result lmr_gen_text(const char *out_dir, const struct lmr_gen_text_options *opt, struct lmr_gen_stats *stats,
                             struct lmr_err *err)
{
    if (!opt->size_bytes)
        return lmr_fail(err, LMR_ERR_INVALID, "the text size must be at least 1 byte (--size)");
    uint32_t vocab = opt->vocab ? opt->vocab : 100000;
    if (vocab > 10000000)
        return lmr_fail(err, LMR_ERR_INVALID, "a vocabulary of %u words is too large; the maximum is 10000000", vocab);
    double s = opt->zipf_s > 0 ? opt->zipf_s : 1.0;
    if (s > 10)
        return lmr_fail(err, LMR_ERR_INVALID, "the Zipf exponent %g is out of range; use a value in (0, 10]", s);
    uint64_t files = opt->files;
    if (!files) {
        files = (opt->size_bytes + (16u << 20) - 1) / (16u << 20);
        if (files > 10000)
            files = 10000;
    }
    if (files > 100000)
        return lmr_fail(err, LMR_ERR_INVALID, "%llu part files is too many; the maximum is 100000",
                        (unsigned long long)files);
    if (files > opt->size_bytes)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "cannot split %llu bytes into %llu part files; lower --files or raise --size",
                        (unsigned long long)opt->size_bytes, (unsigned long long)files);
    enum lmr_result r = lmr_gen_prepare_dir(out_dir, opt->force, err);
    if (r)
        return r;
    struct text_job job = {.dir = out_dir, .seed = opt->seed, .size_bytes = opt->size_bytes, .files = (uint32_t)files};
    job.rows = calloc(files, sizeof *job.rows);
    if (!job.rows || lmr_vocab_build(&job.vocab, vocab, opt->seed, 10) || lmr_alias_zipf(&job.zipf, vocab, s)) {
        free(job.rows);
        lmr_vocab_clean_up(&job.vocab);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory building a vocabulary of %u words", vocab);
    }
    r = lmr_gen_parallel(job.files, opt->threads ? opt->threads : lmr_gen_default_threads(), text_part, &job, err);
    if (!r && stats) {
        memset(stats, 0, sizeof *stats);
        stats->bytes = opt->size_bytes;
        stats->files = job.files;
        for (uint32_t i = 0; i < job.files; i++)
            stats->rows += job.rows[i];
    }
    free(job.rows);
    lmr_vocab_clean_up(&job.vocab);
    lmr_alias_clean_up(&job.zipf);
    return r;
}
