/*
 * Shuffle micro-benchmark.
 *
 *   bench_shuffle [--only-emit] [--words N] [--vocab V] [--maps M] [--records-per-map K] [--memory-mb MB] [--json]
 *   bench_shuffle --text-file FILE [--block-kib N] [--zero-copy] [--memory-mb MB]
 *
 * 1. emit: N words drawn from a Zipf(1)-like distribution over V distinct words, emitted into a
 *    wordcount map output (combine at emit time); then finish (sort + encode + compress + write).
 * 2. map (text): the same words as text lines through wordcount's own map_block (1 MiB blocks of
 *    lines, as the mapper hands them; tokenizer + emits), or map per line without map_block.
 * 3. merge: M map objects of K distinct-ish records each (non-combining), merged by one reduce
 *    input over all their frames of partition 0..R-1; records/s of the k-way merge incl. decoding.
 * --text-file: only wordcount's map_block over FILE (say a part file of benchmarks/run's text), the
 *    bytes copied from a mapping of the file into an N KiB buffer (default 1024) one block of whole
 *    lines at a time, as the mapper's pread does (the copy is in user space here, so callgrind's
 *    cache simulation sees it), or with --zero-copy handed to map_block straight from the mapping;
 *    then the collector's finish. Run it under callgrind with --toggle-collect=run_text_file.
 * Times are process CPU time (the machine is shared), so I/O waits are not counted.
 * The store is a file store in a temporary directory (deleted at the end).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "job/registry.h"
#include "shuffle/map_output.h"
#include "shuffle/reduce_input.h"
#include "store/store.h"
#include "util/misc.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* CPU time of this process in ms: steadier than wall time on a shared machine. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, const struct lmr_err *err)
{
    fprintf(stderr, "bench_shuffle: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static uint64_t arg_u64(int argc, char **argv, const char *name, uint64_t def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return strtoull(argv[i + 1], NULL, 10);
    return def;
}

static int noncomb_map(void *s, struct lmr_slice r, struct lmr_emitter *o, struct lmr_job_counters *c)
{
    return 0;
}
static const struct lmr_job_ops pairs_job = {.name = "pairs", .map = noncomb_map};

/* --text-file: map_block over the file's bytes, copied block by block or not at all. */
static __attribute__((noinline)) void run_text_file(const uint8_t *map, size_t len, size_t block, bool zero_copy,
                                                    struct lmr_emitter *em, uint8_t *buf)
{
    struct lmr_job_counters counters = {0};
    size_t pos = 0, carry = 0; /* carry: bytes of a partial line at buf[0, carry) */
    while (pos < len || carry) {
        size_t n = len - pos < block - carry ? len - pos : block - carry;
        const uint8_t *blk;
        size_t have;
        if (zero_copy) {
            blk = map + pos;
            have = n;
        } else {
            memcpy(buf + carry, map + pos, n);
            blk = buf;
            have = carry + n;
        }
        pos += n;
        size_t cut = have;
        if (pos < len)
            while (cut > 0 && blk[cut - 1] != '\n')
                cut--;
        lmr_job_wordcount.map_block(NULL, lmr_slice_make(blk, cut), em, &counters);
        if (zero_copy) {
            pos -= have - cut;
        } else {
            memmove(buf, buf + cut, have - cut);
            carry = have - cut;
            if (pos >= len && carry) {
                lmr_job_wordcount.map_block(NULL, lmr_slice_make(buf, carry), em, &counters);
                carry = 0;
            }
        }
    }
}

#define BENCH_DIR_TEMPLATE "/tmp/lmr-bench-shuffle-XXXXXX"

/* A file store in a fresh temporary folder, whose path dir receives. */
static struct lmr_store *bench_store(char dir[sizeof BENCH_DIR_TEMPLATE])
{
    memcpy(dir, BENCH_DIR_TEMPLATE, sizeof BENCH_DIR_TEMPLATE);
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    struct lmr_err err;
    struct lmr_store *store;
    if (lmr_store_open(dir, &store, NULL, &err) != LMR_OK)
        die("store", &err);
    return store;
}

/* Close the store and remove its folder. @return the exit status. */
static int bench_store_remove(struct lmr_store *store, const char *dir)
{
    lmr_store_destroy(store);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* A map output of job into object key on store: R partitions, memory bytes, spills under spill_prefix. */
static struct lmr_map_output *bench_map_output(const struct lmr_job_ops *job, struct lmr_store *store, uint32_t R,
                                               size_t memory, const char *spill_prefix, const char *key)
{
    struct lmr_map_output_options o = {.ops = job,
                                       .partitions = R,
                                       .memory_limit_bytes = memory,
                                       .store = store,
                                       .spill_prefix = spill_prefix,
                                       .object_key = key};
    struct lmr_err err;
    struct lmr_map_output *mo;
    if (lmr_map_output_new(&o, &mo, &err) != LMR_OK)
        die("map output", &err);
    return mo;
}

/* Finish mo into *idx and destroy it. */
static void bench_finish(struct lmr_map_output *mo, struct lmr_map_output_index *idx)
{
    struct lmr_err err;
    if (lmr_map_output_finish(mo, idx, &err) != LMR_OK)
        die("finish", &err);
    lmr_map_output_destroy(mo);
}

static int text_file_main(const char *path, size_t block, bool zero_copy, size_t memory, uint32_t R)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(path, NULL);
    size_t len = (size_t)st.st_size;
    const uint8_t *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED)
        die("mmap", NULL);
    uint8_t *buf = malloc(block);
    char dir[sizeof BENCH_DIR_TEMPLATE];
    struct lmr_store *store = bench_store(dir);
    struct lmr_map_output *mo = bench_map_output(&lmr_job_wordcount, store, R, memory, "work/spill-", "inter/wc");
    double t0 = cpu_ms();
    run_text_file(map, len, block, zero_copy, lmr_map_output_emitter(mo), buf);
    double t1 = cpu_ms();
    struct lmr_map_output_index idx;
    bench_finish(mo, &idx);
    double t2 = cpu_ms();
    printf("text file %s: %.1f MiB, %s %zu KiB blocks: map %.0f ms (%.2f ns/B), finish %.1f ms, %" PRIu64 " keys out\n",
           path, len / 1048576.0, zero_copy ? "zero-copy" : "copied", block >> 10, t1 - t0, (t1 - t0) * 1e6 / len,
           t2 - t1, idx.records_out);
    munmap((void *)map, len);
    close(fd);
    free(buf);
    return bench_store_remove(store, dir);
}

int main(int argc, char **argv)
{
    uint64_t nwords = arg_u64(argc, argv, "--words", 20000000);
    uint64_t vocab = arg_u64(argc, argv, "--vocab", 200000);
    uint64_t maps = arg_u64(argc, argv, "--maps", 16);
    uint64_t per_map = arg_u64(argc, argv, "--records-per-map", 500000);
    size_t memory = (size_t)arg_u64(argc, argv, "--memory-mb", 1024) << 20;
    uint32_t R = (uint32_t)arg_u64(argc, argv, "--reducers", 4);
    bool json = false, only_emit = false;
    bool zero_copy = false;
    const char *text_file = NULL;
    for (int i = 1; i < argc; i++) {
        json |= !strcmp(argv[i], "--json");
        only_emit |= !strcmp(argv[i], "--only-emit");
        zero_copy |= !strcmp(argv[i], "--zero-copy");
        if (!strcmp(argv[i], "--text-file") && i + 1 < argc)
            text_file = argv[i + 1];
    }
    if (text_file)
        return text_file_main(text_file, (size_t)arg_u64(argc, argv, "--block-kib", 1024) << 10, zero_copy, memory, R);

    char dir[sizeof BENCH_DIR_TEMPLATE];
    struct lmr_store *store = bench_store(dir);
    struct lmr_err err;

    /* Vocabulary and the Zipf-like stream (outside the timed regions). */
    char *words = malloc(vocab * 16);
    uint8_t *wlen = malloc(vocab);
    for (uint64_t i = 0; i < vocab; i++) {
        int len = 3 + (int)(rnd() % 8);
        for (int j = 0; j < len; j++)
            words[i * 16 + j] = (char)('a' + rnd() % 26);
        uint64_t x = i; /* make it unique */
        for (int j = len; j < 16 && x; j++, len++, x /= 26)
            words[i * 16 + j] = (char)('a' + x % 26);
        wlen[i] = (uint8_t)len;
    }
    double *cdf = malloc(vocab * sizeof *cdf), sum = 0;
    for (uint64_t i = 0; i < vocab; i++)
        cdf[i] = (sum += 1.0 / (double)(i + 1));
    uint32_t *stream = malloc(nwords * sizeof *stream);
    for (uint64_t i = 0; i < nwords; i++) {
        double u = (double)(rnd() >> 11) / 9007199254740992.0 * sum;
        uint64_t lo = 0, hi = vocab - 1;
        while (lo < hi) {
            uint64_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        stream[i] = (uint32_t)lo;
    }

    /* The stream laid out as text (words in stream order), so emits read their keys sequentially
       as a map function does. */
    size_t text_len = 0;
    for (uint64_t i = 0; i < nwords; i++)
        text_len += wlen[stream[i]] + 1u;
    char *text = malloc(text_len);
    size_t pos = 0;
    uint64_t *offs = malloc(nwords * sizeof *offs);
    for (uint64_t i = 0; i < nwords; i++) {
        offs[i] = pos;
        memcpy(text + pos, words + (size_t)stream[i] * 16, wlen[stream[i]]);
        pos += wlen[stream[i]];
        text[pos++] = (i % 12 == 11) ? '\n' : ' ';
    }
    /* 1. emits into the combine table */
    struct lmr_map_output *mo = bench_map_output(&lmr_job_wordcount, store, R, memory, "work/spill-", "inter/wc");
    struct lmr_emitter *em = lmr_map_output_emitter(mo);
    static const uint64_t one = 1;
    double t0 = cpu_ms();
    for (uint64_t i = 0; i < nwords; i++)
        lmr_emit(em, lmr_slice_make(text + offs[i], wlen[stream[i]]), lmr_slice_make(&one, 8));
    double t1 = cpu_ms();
    struct lmr_map_output_index idx;
    bench_finish(mo, &idx);
    double t2 = cpu_ms();
    double emit_rate = nwords / ((t1 - t0) / 1000);
    if (only_emit) {
        printf("emit (combine table): %" PRIu64 " words, %" PRIu64
               " keys out: %.1f M emits/s (%.0f ms), finish %.1f ms\n",
               nwords, idx.records_out, emit_rate / 1e6, t1 - t0, t2 - t1);
        return 0;
    }

    /* 2. the same text through wordcount's map */
    mo = bench_map_output(&lmr_job_wordcount, store, R, memory, "work/spill-", "inter/wc2");
    em = lmr_map_output_emitter(mo);
    struct lmr_job_counters counters = {0};
    double t3 = cpu_ms();
    if (lmr_job_wordcount.map_block) { /* as the mapper does: whole blocks of lines (1 MiB) */
        const char *p = text, *end = text + text_len;
        while (p < end) {
            const char *stop = end - p > (1 << 20) ? p + (1 << 20) : end;
            while (stop < end && stop[-1] != '\n')
                stop++;
            lmr_job_wordcount.map_block(NULL, lmr_slice_make(p, (size_t)(stop - p)), em, &counters);
            p = stop;
        }
    } else {
        const char *p = text, *end = text + text_len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                nl = end;
            lmr_job_wordcount.map(NULL, lmr_slice_make(p, (size_t)(nl - p)), em, &counters);
            p = nl + 1;
        }
    }
    double t4 = cpu_ms();
    struct lmr_map_output_index idx2;
    bench_finish(mo, &idx2);
    double text_mb_s = text_len / 1048576.0 / ((t4 - t3) / 1000);

    /* 3. merge throughput: maps x per_map records, then one reduce input per partition */
    char(*objs)[32] = calloc(maps, 32);
    struct lmr_map_output_index *mi = calloc(maps, sizeof *mi);
    for (uint64_t m = 0; m < maps; m++) {
        snprintf(objs[m], 32, "inter/m-%05" PRIu64, m);
        mo = bench_map_output(&pairs_job, store, R, memory, "work/sp-", objs[m]);
        em = lmr_map_output_emitter(mo);
        for (uint64_t i = 0; i < per_map; i++) {
            uint64_t w = stream[(m * per_map + i) % nwords];
            uint64_t v = rnd();
            lmr_emit(em, lmr_slice_make(words + w * 16, wlen[w]), lmr_slice_make(&v, 8));
        }
        bench_finish(mo, &mi[m]);
    }
    uint64_t merged = 0, groups = 0, fetched = 0;
    double t5 = cpu_ms();
    for (uint32_t r = 0; r < R; r++) {
        struct lmr_frame_ref *refs = calloc(maps, sizeof *refs);
        for (uint64_t m = 0; m < maps; m++)
            refs[m] = (struct lmr_frame_ref){NULL, objs[m], mi[m].frames[r].offset, mi[m].frames[r].size_bytes};
        struct lmr_reduce_input_options ro = {.ops = &pairs_job,
                                              .store = store,
                                              .frames = refs,
                                              .nframes = maps,
                                              .memory_limit_bytes = memory,
                                              .scratch_prefix = "work/scratch/"};
        struct lmr_reduce_input *ri;
        if (lmr_reduce_input_new(&ro, &ri, &err) != LMR_OK)
            die("reduce input", &err);
        for (;;) {
            bool has;
            struct lmr_slice key, v;
            struct lmr_values *vals;
            if (lmr_reduce_input_next(ri, &has, &key, &vals, &err) != LMR_OK)
                die("merge", &err);
            if (!has)
                break;
            groups++;
            while (lmr_values_next(vals, &v))
                merged++;
        }
        struct lmr_reduce_input_stats st;
        lmr_reduce_input_stats(ri, &st);
        fetched += st.bytes_fetched;
        lmr_reduce_input_destroy(ri);
        free(refs);
    }
    double t6 = cpu_ms();
    double merge_rate = merged / ((t6 - t5) / 1000);

    uint64_t raw = 0, comp = 0;
    for (uint64_t m = 0; m < maps; m++) {
        raw += mi[m].raw_bytes;
        comp += mi[m].object_bytes;
    }
    if (json) {
        printf("{\"words\":%" PRIu64 ",\"vocab\":%" PRIu64 ",\"emits_per_s\":%.0f,\"finish_ms\":%.1f,"
               "\"wordcount_map_mb_per_s\":%.1f,\"merge_records\":%" PRIu64 ",\"merge_records_per_s\":%.0f,"
               "\"merge_raw_bytes\":%" PRIu64 ",\"merge_compressed_bytes\":%" PRIu64 "}\n",
               nwords, vocab, emit_rate, t2 - t1, text_mb_s, merged, merge_rate, raw, comp);
    } else {
        printf("emit (combine table): %" PRIu64 " words, %" PRIu64 " distinct in vocab, %" PRIu64
               " keys out: %.1f M emits/s (%.0f ms), finish %.1f ms, peak %.1f MiB\n",
               nwords, vocab, idx.records_out, emit_rate / 1e6, t1 - t0, t2 - t1, idx.peak_memory_bytes / 1048576.0);
        printf("wordcount map on text: %.1f MiB in %.0f ms: %.0f MiB/s (%.1f M words/s)\n", text_len / 1048576.0,
               t4 - t3, text_mb_s, nwords / ((t4 - t3) / 1000) / 1e6);
        printf("merge: %" PRIu64 " maps x %" PRIu64 " records, R=%u: %" PRIu64 " records in %" PRIu64
               " groups in %.0f ms: %.1f M records/s (raw %.1f MiB, compressed %.1f MiB, fetched %.1f MiB)\n",
               maps, per_map, R, merged, groups, t6 - t5, merge_rate / 1e6, raw / 1048576.0, comp / 1048576.0,
               fetched / 1048576.0);
    }

    lmr_map_output_index_clean_up(&idx);
    lmr_map_output_index_clean_up(&idx2);
    for (uint64_t m = 0; m < maps; m++)
        lmr_map_output_index_clean_up(&mi[m]);
    free(mi);
    free(objs);
    free(text);
    free(offs);
    free(stream);
    free(cdf);
    free(words);
    free(wlen);
    return bench_store_remove(store, dir);
}
