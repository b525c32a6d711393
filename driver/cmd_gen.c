/* lambdamr gen: write a deterministic data set (Zipf text or the Big Data Benchmark tables). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "gen.h"
#include "util/misc.h"

static void gen_usage(FILE *f)
{
    fprintf(f, "usage: lambdamr gen text --size SIZE --out DIR [--seed N] [--vocab N] [--zipf S] [--files N]\n"
               "       lambdamr gen bdb  --size SIZE --out DIR [--seed N] [--files N]\n"
               "       lambdamr gen sort --size SIZE --out DIR [--seed N] [--files N] [--skew]\n"
               "\n"
               "Write a deterministic data set: the same options give the same bytes on any machine and with\n"
               "any number of threads. Parts are written to hidden temporary files and renamed when complete.\n"
               "\n"
               "data sets:\n"
               "  text   Zipf-distributed words over a generated vocabulary, lines of varying length:\n"
               "         DIR/part-00000 ... (exactly SIZE bytes in total)\n"
               "  bdb    the AMPLab Big Data Benchmark tables, comma separated, no header (about SIZE bytes:\n"
               "         10%% rankings, 90%% uservisits): DIR/rankings/part-NNNNN, DIR/uservisits/part-NNNNN\n"
               "  sort   TeraSort records as gensort's ASCII mode writes them: 100-byte lines ending in \\r\\n,\n"
               "         the first 10 bytes a printable key (SIZE rounded down to whole records)\n"
               "\n"
               "options:\n"
               "  --size SIZE    bytes to write: 65536, 64K, 64M, 1G (whole numbers, binary units)\n"
               "  --out DIR      output directory (created if missing)\n"
               "  --seed N       random seed (default 1)\n"
               "  --vocab N      text: distinct words (default 100000)\n"
               "  --zipf S       text: Zipf exponent of word ranks (default 1.0)\n"
               "  --files N      part files (text: default one per 16 MiB; bdb: per table, one per 32 MiB;\n"
               "                 sort: one per 64 MiB)\n"
               "  --skew         sort: heavily skewed keys (each key byte a blank with probability 0.8)\n"
               "  --threads N    worker threads (default: online CPUs); does not change the output\n"
               "  --force        replace part files already in DIR\n"
               "  --quiet        print nothing on success\n"
               "\n"
               "Distributions: see datasets/README.md.\n");
}

int lmr_cmd_gen(int argc, char **argv)
{
    const char *kind = NULL, *out = NULL, *size = NULL;
    uint64_t seed = 1, vocab = 0, files = 0, threads = 0;
    double zipf = 0;
    int force = 0, quiet = 0, skew = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            gen_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--force")) {
            force = 1;
            continue;
        }
        if (!strcmp(a, "--skew")) {
            skew = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (kind) {
                fprintf(stderr, "lambdamr gen: unexpected argument '%s'; run 'lambdamr gen --help'\n", a);
                return 2;
            }
            kind = a;
            continue;
        }
        /* --name VALUE or --name=VALUE */
        char name[32];
        const char *val = strchr(a, '=');
        size_t nlen = val ? (size_t)(val - a) : strlen(a);
        if (nlen >= sizeof name) {
            fprintf(stderr, "lambdamr gen: unknown option '%s'; run 'lambdamr gen --help'\n", a);
            return 2;
        }
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        if (val)
            val++;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "lambdamr gen: option %s needs a value; run 'lambdamr gen --help'\n", name);
            return 2;
        }
        enum lmr_result r = LMR_OK;
        if (!strcmp(name, "--size"))
            size = val;
        else if (!strcmp(name, "--out"))
            out = val;
        else if (!strcmp(name, "--seed"))
            r = lmr_parse_u64(val, 0, UINT64_MAX, &seed);
        else if (!strcmp(name, "--vocab"))
            r = lmr_parse_u64(val, 1, 10000000, &vocab);
        else if (!strcmp(name, "--files"))
            r = lmr_parse_u64(val, 1, 100000, &files);
        else if (!strcmp(name, "--threads"))
            r = lmr_parse_u64(val, 1, 256, &threads);
        else if (!strcmp(name, "--zipf")) {
            char *end;
            zipf = strtod(val, &end);
            if (end == val || *end || !(zipf > 0 && zipf <= 10))
                r = LMR_ERR_INVALID;
        } else {
            fprintf(stderr, "lambdamr gen: unknown option '%s'; run 'lambdamr gen --help'\n", name);
            return 2;
        }
        if (r) {
            const char *want = !strcmp(name, "--vocab")     ? "an integer from 1 to 10000000"
                               : !strcmp(name, "--files")   ? "an integer from 1 to 100000"
                               : !strcmp(name, "--threads") ? "an integer from 1 to 256"
                               : !strcmp(name, "--zipf")    ? "a number in (0, 10]"
                                                            : "a non-negative integer";
            fprintf(stderr, "lambdamr gen: invalid value '%s' for %s: expected %s\n", val, name, want);
            return 2;
        }
    }
    if (!kind) {
        fprintf(stderr, "lambdamr gen: which data set? 'text', 'bdb' or 'sort'; run 'lambdamr gen --help'\n");
        return 2;
    }
    if (strcmp(kind, "text") && strcmp(kind, "bdb") && strcmp(kind, "sort")) {
        fprintf(stderr, "lambdamr gen: unknown data set '%s'; the data sets are 'text', 'bdb' and 'sort'\n", kind);
        return 2;
    }
    uint64_t size_bytes = 0;
    if (!size || lmr_parse_size(size, &size_bytes)) {
        fprintf(stderr, "lambdamr gen: %s; give a size such as --size 64M or --size 1G\n",
                size ? "invalid --size" : "--size is required");
        return 2;
    }
    if (!out || !*out) {
        fprintf(stderr, "lambdamr gen: --out DIR is required (the directory to write the parts to)\n");
        return 2;
    }
    if (strcmp(kind, "text") && zipf > 0) {
        fprintf(stderr, "lambdamr gen: --zipf applies to 'text' only\n");
        return 2;
    }
    if (strcmp(kind, "sort") && skew) {
        fprintf(stderr, "lambdamr gen: --skew applies to 'sort' only\n");
        return 2;
    }
    if (strcmp(kind, "text") && vocab) {
        fprintf(stderr, "lambdamr gen: --vocab applies to 'text' only\n");
        return 2;
    }
    struct lmr_err err = {0};
    struct lmr_gen_stats st = {0};
    double t0 = lmr_mono_ms();
    enum lmr_result r;
    if (!strcmp(kind, "text")) {
        struct lmr_gen_text_options o = {.size_bytes = size_bytes,
                                         .seed = seed,
                                         .vocab = (uint32_t)vocab,
                                         .zipf_s = zipf,
                                         .files = (uint32_t)files,
                                         .threads = (unsigned)threads,
                                         .force = force};
        r = lmr_gen_text(out, &o, &st, &err);
    } else if (!strcmp(kind, "sort")) {
        struct lmr_gen_sort_options o = {.size_bytes = size_bytes,
                                         .seed = seed,
                                         .skew = skew,
                                         .files = (uint32_t)files,
                                         .threads = (unsigned)threads,
                                         .force = force};
        r = lmr_gen_sort(out, &o, &st, &err);
    } else {
        struct lmr_gen_bdb_options o = {.size_bytes = size_bytes,
                                        .seed = seed,
                                        .files = (uint32_t)files,
                                        .threads = (unsigned)threads,
                                        .force = force};
        r = lmr_gen_bdb(out, &o, &st, &err);
    }
    if (r) {
        fprintf(stderr, "lambdamr gen: %s\n", err.msg[0] ? err.msg : lmr_result_str(r));
        return 1;
    }
    if (!quiet) {
        char b[32];
        double secs = (lmr_mono_ms() - t0) / 1000.0;
        if (!strcmp(kind, "text"))
            printf("wrote %s of text (%llu lines) in %u part files to %s in %.2f s\n",
                   lmr_format_bytes((double)st.bytes, b, sizeof b), (unsigned long long)st.rows, st.files, out, secs);
        else if (!strcmp(kind, "sort"))
            printf("wrote %s of sort records (%llu%s) in %u part files to %s in %.2f s\n",
                   lmr_format_bytes((double)st.bytes, b, sizeof b), (unsigned long long)st.rows,
                   skew ? ", skewed keys" : "", st.files, out, secs);
        else
            printf("wrote %s: %llu rankings rows and %llu uservisits rows in %u part files under %s in %.2f s\n",
                   lmr_format_bytes((double)st.bytes, b, sizeof b), (unsigned long long)st.rankings_rows,
                   (unsigned long long)st.uservisits_rows, st.files, out, secs);
    }
    return 0;
}
