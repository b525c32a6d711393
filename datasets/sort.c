/*
 * TeraSort-style records, as gensort's ASCII mode (-a) lays them out: 100-byte lines
 *   KKKKKKKKKK␠␠RRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRR␠␠FFFF…FFFF\r\n
 * a 10-byte key of printable ASCII (' ' to '~'), two blanks, the record number as 32
 * upper-case hex digits, two blanks, 52 bytes of filler (hex digits derived from the record
 * number) and "\r\n". Record i's key depends only on (seed, i), so the bytes do not depend on
 * the file count or the threads. With skew, each key byte is ' ' with probability 0.8 (else
 * uniform), so a few prefixes hold most records (0.8^10 ≈ 11 % have the all-blank key).
 */
#include <stdio.h>
#include <string.h>

#include "gen.h"
#include "gen_internal.h"

#define SORT_STREAM 0x736f727400000000ull /* "sort" */

struct sort_job {
    const char *dir;
    uint64_t seed, records;
    uint32_t files;
    bool skew;
};

void lmr_gen_sort_record(uint64_t seed, uint64_t i, bool skew, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    struct lmr_rng rng;
    lmr_rng_seed(&rng, seed, SORT_STREAM ^ i);
    for (int k = 0; k < LMR_GEN_SORT_KEY_BYTES; k++) {
        uint64_t x = lmr_rng_next(&rng);
        if (skew && (uint32_t)x < 0xCCCCCCCCu) /* 0.8 */
            out[k] = ' ';
        else
            out[k] = (char)(' ' + (((x >> 32) * 95u) >> 32));
    }
    out[10] = out[11] = ' ';
    for (int k = 0; k < 32; k++)
        out[12 + k] = k < 16 ? '0' : hex[(i >> (4 * (31 - k))) & 15];
    out[44] = out[45] = ' ';
    uint64_t f = lmr_gen_mix(i);
    for (int k = 0; k < 52; k++)
        out[46 + k] = hex[(f >> (4 * (k % 16))) & 15];
    out[98] = '\r';
    out[99] = '\n';
}

static enum lmr_result sort_part(void *ctx, uint32_t index, struct lmr_err *err)
{
    struct sort_job *job = ctx;
    uint64_t per = job->records / job->files, extra = job->records % job->files;
    uint64_t first = index * per + (index < extra ? index : extra), n = per + (index < extra);
    struct lmr_part_writer w;
    enum lmr_result r = lmr_part_open(&w, job->dir, index, err);
    if (r)
        return r;
    for (uint64_t i = first; i < first + n; i++) {
        char *p = lmr_part_reserve(&w, LMR_GEN_SORT_RECORD_BYTES, err);
        if (!p) {
            lmr_part_abort(&w);
            return err ? err->code : LMR_ERR_IO;
        }
        lmr_gen_sort_record(job->seed, i, job->skew, p);
        lmr_part_advance(&w, LMR_GEN_SORT_RECORD_BYTES);
    }
    return lmr_part_commit(&w, err);
}

enum lmr_result lmr_gen_sort(const char *out_dir, const struct lmr_gen_sort_options *opt, struct lmr_gen_stats *stats,
                             struct lmr_err *err)
{
    uint64_t records = opt->size_bytes / LMR_GEN_SORT_RECORD_BYTES;
    if (!records)
        return lmr_fail(err, LMR_ERR_INVALID, "a sort data set needs at least one %d-byte record (--size %d or more)",
                        LMR_GEN_SORT_RECORD_BYTES, LMR_GEN_SORT_RECORD_BYTES);
    uint64_t files = opt->files;
    if (!files) {
        files = (opt->size_bytes + (64u << 20) - 1) / (64u << 20);
        if (files > 10000)
            files = 10000;
    }
    if (files > 100000 || files > records)
        return lmr_fail(
            err, LMR_ERR_INVALID,
            "cannot split %llu records into %llu part files; lower --files (at most 100000) or raise --size",
            (unsigned long long)records, (unsigned long long)files);
    enum lmr_result r = lmr_gen_prepare_dir(out_dir, opt->force, err);
    if (r)
        return r;
    struct sort_job job = {
        .dir = out_dir, .seed = opt->seed, .records = records, .files = (uint32_t)files, .skew = opt->skew};
    r = lmr_gen_parallel(job.files, opt->threads ? opt->threads : lmr_gen_default_threads(), sort_part, &job, err);
    if (!r && stats) {
        memset(stats, 0, sizeof *stats);
        stats->bytes = records * LMR_GEN_SORT_RECORD_BYTES;
        stats->rows = records;
        stats->files = job.files;
    }
    return r;
}
