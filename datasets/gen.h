/*
 * Deterministic data-set generators behind `lambdamr gen`.
 *
 * Every part file is generated from its own random stream, seeded from (seed, table, part
 * index), so the bytes depend only on the options (seed, size, files, vocabulary …), never on
 * the number of threads or the order the parts are written in. Each part is written to a
 * hidden temporary file in the output directory and renamed into place when complete, so a
 * crash leaves no half-written part-NNNNN. The distributions are documented in
 * datasets/README.md.
 */
#ifndef LMR_DATASETS_GEN_H
#define LMR_DATASETS_GEN_H

#include <stdbool.h>
#include <stdint.h>

#include "util/result.h"

/* Options of lmr_gen_text(). All-zero fields take the defaults noted. */
struct lmr_gen_text_options {
    uint64_t size_bytes; /* Required: total bytes over all parts (exact). */
    uint64_t seed;       /* Optional: random seed (0 is a valid seed). */
    uint32_t vocab;      /* Optional: distinct words, default 100000 (max 10000000). */
    double zipf_s;       /* Optional: Zipf exponent of word ranks, default 1.0. */
    uint32_t files;      /* Optional: part files, default one per 16 MiB (at least 1). */
    unsigned threads;    /* Optional: worker threads, default the online CPUs. */
    bool force;          /* Optional: replace part files already in the output directory. */
};

/* Options of lmr_gen_bdb(). All-zero fields take the defaults noted. */
struct lmr_gen_bdb_options {
    uint64_t size_bytes; /* Required: approximate total bytes, 10% rankings and 90% uservisits. */
    uint64_t seed;       /* Optional: random seed. */
    uint32_t files;      /* Optional: part files per table, default one per 32 MiB of that table. */
    unsigned threads;    /* Optional: worker threads, default the online CPUs. */
    bool force;          /* Optional: replace part files already in the output directories. */
};

/* Options of lmr_gen_sort(). All-zero fields take the defaults noted. */
struct lmr_gen_sort_options {
    uint64_t size_bytes; /* Required: total bytes, rounded down to whole 100-byte records. */
    uint64_t seed;       /* Optional: random seed. */
    bool skew;           /* Optional: heavily skewed keys (see datasets/sort.c) instead of uniform ones. */
    uint32_t files;      /* Optional: part files, default one per 64 MiB (at least 1). */
    unsigned threads;    /* Optional: worker threads, default the online CPUs. */
    bool force;          /* Optional: replace part files already in the output directory. */
};

/* gensort's ASCII record: the size and the key length. */
#define LMR_GEN_SORT_RECORD_BYTES 100
#define LMR_GEN_SORT_KEY_BYTES 10

/* What a generator wrote. */
struct lmr_gen_stats {
    uint64_t bytes;           /* total bytes written */
    uint64_t rows;            /* lines written (text) or rows (bdb, both tables) */
    uint32_t files;           /* part files written */
    uint64_t rankings_rows;   /* bdb only */
    uint64_t uservisits_rows; /* bdb only */
};

/**
 * Write Zipf-distributed text to out_dir/part-00000 … (created if missing).
 * @return LMR_OK, LMR_ERR_INVALID for bad options, LMR_ERR_EXISTS if out_dir already holds
 *         part files and !force, LMR_ERR_IO on write errors (message in err).
 */
enum lmr_result lmr_gen_text(const char *out_dir, const struct lmr_gen_text_options *opt, struct lmr_gen_stats *stats,
                             struct lmr_err *err);

/**
 * Write the AMPLab Big Data Benchmark tables to out_dir/rankings/part-NNNNN and
 * out_dir/uservisits/part-NNNNN (comma separated, no header). Every uservisits destURL is a
 * pageURL of rankings. Same results as lmr_gen_text().
 */
enum lmr_result lmr_gen_bdb(const char *out_dir, const struct lmr_gen_bdb_options *opt, struct lmr_gen_stats *stats,
                            struct lmr_err *err);

/**
 * Write TeraSort records (gensort's ASCII format, 100-byte lines ending in \r\n, a 10-byte
 * printable key) to out_dir/part-NNNNN. Same results as lmr_gen_text().
 */
enum lmr_result lmr_gen_sort(const char *out_dir, const struct lmr_gen_sort_options *opt, struct lmr_gen_stats *stats,
                             struct lmr_err *err);

/** Record i (0-based) of the sort data set for seed into out[0, 100). Exposed for tests. */
void lmr_gen_sort_record(uint64_t seed, uint64_t i, bool skew, char *out);

/**
 * The pageURL of rankings row `row` (0-based) for `seed`, as the bdb generator writes it, into
 * out (cap >= 128). @return its length. Exposed for tests (destURL membership).
 */
size_t lmr_gen_bdb_page_url(uint64_t seed, uint64_t row, char *out);

#endif
