/*
 * The AMPLab Big Data Benchmark tables (comma separated, no header):
 *   rankings(pageURL, pageRank, avgDuration)
 *   uservisits(sourceIP, destURL, visitDate, adRevenue, userAgent, countryCode, languageCode,
 *              searchWord, duration)
 * Rankings row k is a pure function of (seed, k), so uservisits can draw destURL as a row
 * number and regenerate that row's pageURL: every destURL joins with exactly one ranking.
 * Distributions are documented in datasets/README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "gen_internal.h"
#include "util/misc.h"

#define RANK_STREAM 0x72616e6b00000000ull /* "rank" */
#define UV_STREAM 0x75736572000000ull     /* "user" */
#define MAX_ROW_BYTES 1024

static const char *const tlds[] = {"com", "org", "net", "edu", "io", "de", "co.uk", "fr", "jp", "info"};
static const char *const platforms[] = {"Windows NT 10.0; Win64; x64",       "Windows NT 6.1; WOW64",
                                        "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64",
                                        "X11; Ubuntu; Linux i686",           "iPhone; CPU iPhone OS 16_5 like Mac OS X",
                                        "Linux; Android 13; Pixel 7",        "iPad; CPU OS 15_0 like Mac OS X"};
static const char *const engines[] = {"AppleWebKit/537.36 (KHTML like Gecko)", "Gecko/20100101",
                                      "AppleWebKit/605.1.15 (KHTML like Gecko)", "Trident/7.0"};
static const char *const browsers[] = {"Chrome", "Firefox", "Safari", "Edge", "Opera", "MSIE"};
/* Country codes with the language most visitors there use. */
static const struct {
    const char *country, *lang;
} countries[] = {{"USA", "EN"}, {"CHN", "ZH"}, {"IND", "HI"}, {"DEU", "DE"}, {"GBR", "EN"}, {"JPN", "JA"},
                 {"FRA", "FR"}, {"BRA", "PT"}, {"RUS", "RU"}, {"CAN", "EN"}, {"ITA", "IT"}, {"ESP", "ES"},
                 {"MEX", "ES"}, {"KOR", "KO"}, {"AUS", "EN"}, {"NLD", "NL"}, {"TUR", "TR"}, {"IDN", "ID"},
                 {"POL", "PL"}, {"SWE", "SV"}, {"ARG", "ES"}, {"BEL", "NL"}, {"CHE", "DE"}, {"EGY", "AR"},
                 {"THA", "TH"}, {"VNM", "VI"}, {"ZAF", "EN"}, {"NGA", "EN"}, {"PAK", "UR"}, {"YEM", "AR"}};
static const char *const langs[] = {"EN", "ZH", "ES", "AR", "HI", "PT", "RU", "JA", "DE", "FR", "KO", "IT"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_letters(char *p, struct lmr_rng *rng, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        *p++ = (char)('a' + lmr_rng_below(rng, 26));
    return p;
}

/* pageURL of row k, written from its own stream; leaves rng ready for the row's other fields. */
static char *put_page_url(char *p, struct lmr_rng *rng, uint64_t seed, uint64_t k)
{
    lmr_rng_seed(rng, seed, RANK_STREAM ^ lmr_gen_mix(k));
    p = put_str(p, "http://");
    p = put_letters(p, rng, 4 + lmr_rng_below(rng, 9));
    *p++ = '.';
    p = put_str(p, tlds[lmr_rng_below(rng, COUNT(tlds))]);
    *p++ = '/';
    p = put_u64(p, k);
    *p++ = '/';
    p = put_letters(p, rng, lmr_rng_below(rng, 41));
    if (lmr_rng_below(rng, 2))
        p = put_str(p, ".html");
    return p;
}

size_t lmr_gen_bdb_page_url(uint64_t seed, uint64_t row, char *out)
{
    struct lmr_rng rng;
    char *end = put_page_url(out, &rng, seed, row);
    *end = '\0';
    return (size_t)(end - out);
}

/* One rankings row with its newline. pageRank = floor(1/u), u uniform in (0,1]: P(rank >= x) = 1/x. */
static size_t rankings_row(char *out, uint64_t seed, uint64_t k)
{
    struct lmr_rng rng;
    char *p = put_page_url(out, &rng, seed, k);
    double u = lmr_rng_unit(&rng);
    uint64_t rank = u < 1e-7 ? 10000000 : (uint64_t)(1.0 / u);
    *p++ = ',';
    p = put_u64(p, rank);
    *p++ = ',';
    p = put_u64(p, 1 + lmr_rng_below(&rng, 100));
    *p++ = '\n';
    return (size_t)(p - out);
}

/* Days since 1970-01-01 to y-m-d (proleptic Gregorian). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static char *put_2(char *p, unsigned v)
{
    *p++ = (char)('0' + v / 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

struct bdb_job {
    const char *rank_dir, *uv_dir;
    uint64_t seed;
    uint64_t rank_rows;
    uint32_t rank_files, uv_files;
    uint64_t uv_bytes;
    struct lmr_vocab search;
    struct lmr_alias search_zipf, country_zipf;
    uint64_t *rows;  /* per task: rankings parts first, then uservisits parts */
    uint64_t *bytes; /* per task */
};

static size_t uservisits_row(char *out, struct bdb_job *job, struct lmr_rng *rng)
{
    char *p = out;
    for (int i = 0; i < 4; i++) {
        if (i)
            *p++ = '.';
        p = put_u64(p, lmr_rng_below(rng, 256));
    }
    *p++ = ',';
    struct lmr_rng url_rng;
    uint64_t k = job->rank_rows <= UINT32_MAX ? lmr_rng_below(rng, (uint32_t)job->rank_rows)
                                              : lmr_rng_next(rng) % job->rank_rows;
    p = put_page_url(p, &url_rng, job->seed, k);
    *p++ = ',';
    int y;
    unsigned m, d;
    civil_from_days(lmr_rng_below(rng, 14610), &y, &m, &d); /* 1970-01-01 .. 2009-12-31 */
    p = put_u64(p, (uint64_t)y);
    *p++ = '-';
    p = put_2(p, m);
    *p++ = '-';
    p = put_2(p, d);
    *p++ = ',';
    uint32_t rev = lmr_rng_below(rng, 100000000); /* adRevenue in [0, 1000) with 5 decimals */
    p = put_u64(p, rev / 100000);
    *p++ = '.';
    uint32_t frac = rev % 100000;
    for (uint32_t div = 10000; div; div /= 10)
        *p++ = (char)('0' + (frac / div) % 10);
    *p++ = ',';
    unsigned b = lmr_rng_below(rng, COUNT(browsers));
    p = put_str(p, "Mozilla/5.0 (");
    p = put_str(p, platforms[lmr_rng_below(rng, COUNT(platforms))]);
    p = put_str(p, ") ");
    p = put_str(p, engines[lmr_rng_below(rng, COUNT(engines))]);
    *p++ = ' ';
    p = put_str(p, browsers[b]);
    *p++ = '/';
    p = put_u64(p, 1 + lmr_rng_below(rng, 120));
    *p++ = '.';
    p = put_u64(p, lmr_rng_below(rng, 10));
    *p++ = ',';
    unsigned c = lmr_alias_sample(&job->country_zipf, rng);
    p = put_str(p, countries[c].country);
    *p++ = ',';
    p = put_str(p, countries[c].country);
    *p++ = '-';
    p = put_str(p, lmr_rng_below(rng, 10) < 7 ? countries[c].lang : langs[lmr_rng_below(rng, COUNT(langs))]);
    *p++ = ',';
    uint32_t w = lmr_alias_sample(&job->search_zipf, rng);
    memcpy(p, job->search.bytes + job->search.offset[w], job->search.offset[w + 1] - job->search.offset[w]);
    p += job->search.offset[w + 1] - job->search.offset[w];
    *p++ = ',';
    p = put_u64(p, 1 + lmr_rng_below(rng, 100));
    *p++ = '\n';
    return (size_t)(p - out);
}

static enum lmr_result bdb_part(void *ctx, uint32_t task, struct lmr_err *err)
{
    struct bdb_job *job = ctx;
    int is_rank = task < job->rank_files;
    uint32_t index = is_rank ? task : task - job->rank_files;
    struct lmr_part_writer w;
    enum lmr_result r = lmr_part_open(&w, is_rank ? job->rank_dir : job->uv_dir, index, err);
    if (r)
        return r;
    uint64_t rows = 0;
    if (is_rank) {
        uint64_t first = job->rank_rows * index / job->rank_files,
                 last = job->rank_rows * (index + 1) / job->rank_files;
        for (uint64_t k = first; k < last; k++, rows++) {
            char *p = lmr_part_reserve(&w, MAX_ROW_BYTES, err);
            if (!p)
                goto fail;
            lmr_part_advance(&w, rankings_row(p, job->seed, k));
        }
    } else {
        /* Rows until the next one would pass this part's share of the bytes. */
        uint64_t target = job->uv_bytes / job->uv_files + (index < job->uv_bytes % job->uv_files), used = 0;
        struct lmr_rng rng;
        lmr_rng_seed(&rng, job->seed, UV_STREAM | index);
        for (;;) {
            char *p = lmr_part_reserve(&w, MAX_ROW_BYTES, err);
            if (!p)
                goto fail;
            size_t n = uservisits_row(p, job, &rng);
            if (used + n > target && rows > 0)
                break;
            lmr_part_advance(&w, n);
            used += n;
            rows++;
        }
    }
    job->rows[task] = rows;
    r = lmr_part_commit(&w, err);
    job->bytes[task] = w.written;
    return r;
fail:
    lmr_part_abort(&w);
    return err ? err->code : LMR_ERR_IO;
}

enum lmr_result lmr_gen_bdb(const char *out_dir, const struct lmr_gen_bdb_options *opt, struct lmr_gen_stats *stats,
                            struct lmr_err *err)
{
    if (opt->size_bytes < 1024)
        return lmr_fail(err, LMR_ERR_INVALID, "the bdb size must be at least 1 KiB (--size)");
    uint64_t rank_bytes = opt->size_bytes / 10, uv_bytes = opt->size_bytes - rank_bytes;
    /*
     * Rankings rows: the bytes over the mean length of a fixed sample of rows. A row's URL holds
     * its number, so the sample is spread over the row numbers of a first estimate (two rounds).
     */
    char row[MAX_ROW_BYTES];
    uint64_t rank_rows = 4096;
    for (int round = 0; round < 2; round++) {
        uint64_t sample = 0;
        for (uint64_t i = 0; i < 4096; i++)
            sample += rankings_row(row, opt->seed ^ 0x73616d706c65ull, i * rank_rows / 4096);
        rank_rows = rank_bytes * 4096 / sample;
        if (rank_rows < 1)
            rank_rows = 1;
    }
    uint64_t rf = opt->files, uf = opt->files;
    if (!rf) {
        rf = (rank_bytes + (32u << 20) - 1) / (32u << 20);
        uf = (uv_bytes + (32u << 20) - 1) / (32u << 20);
    }
    if (rf > 10000 || uf > 10000)
        return lmr_fail(err, LMR_ERR_INVALID, "%llu part files per table is too many; the maximum is 10000",
                        (unsigned long long)(rf > uf ? rf : uf));
    if (rf > rank_rows || uf * 512 > uv_bytes)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "--size %llu is too small for %llu part files per table; lower --files or raise --size",
                        (unsigned long long)opt->size_bytes, (unsigned long long)(rf > uf ? rf : uf));
    char rank_dir[4096], uv_dir[4096];
    snprintf(rank_dir, sizeof rank_dir, "%s/rankings", out_dir);
    snprintf(uv_dir, sizeof uv_dir, "%s/uservisits", out_dir);
    enum lmr_result r = lmr_gen_prepare_dir(rank_dir, opt->force, err);
    if (!r)
        r = lmr_gen_prepare_dir(uv_dir, opt->force, err);
    if (r)
        return r;
    struct bdb_job job = {.rank_dir = rank_dir,
                          .uv_dir = uv_dir,
                          .seed = opt->seed,
                          .rank_rows = rank_rows,
                          .rank_files = (uint32_t)rf,
                          .uv_files = (uint32_t)uf,
                          .uv_bytes = uv_bytes};
    job.rows = calloc(rf + uf, sizeof *job.rows);
    job.bytes = calloc(rf + uf, sizeof *job.bytes);
    if (!job.rows || !job.bytes || lmr_vocab_build(&job.search, 10000, opt->seed ^ 0x736561726368ull, 0) ||
        lmr_alias_zipf(&job.search_zipf, 10000, 1.0) || lmr_alias_zipf(&job.country_zipf, COUNT(countries), 1.0)) {
        free(job.rows);
        free(job.bytes);
        lmr_vocab_clean_up(&job.search);
        lmr_alias_clean_up(&job.search_zipf);
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory preparing the bdb generator");
    }
    r = lmr_gen_parallel(job.rank_files + job.uv_files, opt->threads ? opt->threads : lmr_gen_default_threads(),
                         bdb_part, &job, err);
    if (!r && stats) {
        memset(stats, 0, sizeof *stats);
        stats->files = job.rank_files + job.uv_files;
        for (uint32_t i = 0; i < stats->files; i++) {
            *(i < job.rank_files ? &stats->rankings_rows : &stats->uservisits_rows) += job.rows[i];
            stats->bytes += job.bytes[i];
        }
        stats->rows = stats->rankings_rows + stats->uservisits_rows;
    }
    free(job.rows);
    free(job.bytes);
    lmr_vocab_clean_up(&job.search);
    lmr_alias_clean_up(&job.search_zipf);
    lmr_alias_clean_up(&job.country_zipf);
    return r;
}
