/*
 * The small parsers behind command-line flags and job arguments: sizes (lmr_parse_size in
 * common/util/misc.c), numbers, field lists, delimiters and the scan job's --where condition
 * (common/job/fields.c, scan.c), aggregate's --key/--value/--op, times, and the built-in jobs'
 * map functions on the rows that follow. The first byte picks the parser; the rest is split
 * into lines (an empty line is an absent argument).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/args.h"
#include "job/fields.h"
#include "job/registry.h"
#include "stream/event.h"
#include "util/misc.h"

#define MAX_LINES 64

struct lines {
    char *buf;
    char *line[MAX_LINES];
    size_t len[MAX_LINES];
    size_t n;
};

static void split_lines(const uint8_t *data, size_t size, struct lines *l)
{
    l->buf = malloc(size + 1);
    if (!l->buf)
        abort();
    memcpy(l->buf, data, size);
    l->buf[size] = '\0';
    l->n = 0;
    char *p = l->buf, *end = l->buf + size;
    while (l->n < MAX_LINES && p <= end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        l->line[l->n] = p;
        l->len[l->n] = nl ? (size_t)(nl - p) : (size_t)(end - p);
        l->n++;
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
}

/* An argument: NULL when the line is absent or empty. */
static const char *arg(const struct lines *l, size_t i)
{
    return i < l->n && l->line[i][0] ? l->line[i] : NULL;
}

/* Collects what a job emits (checks the slices are readable). */
struct collect {
    struct lmr_emitter base;
    uint8_t *log;
    size_t len, cap;
};

static void collect_emit(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    struct collect *c = (struct collect *)self;
    size_t need = c->len + key.len + value.len + 16;
    if (need > c->cap) {
        c->cap = need * 2;
        c->log = realloc(c->log, c->cap);
        if (!c->log)
            abort();
    }
    memcpy(c->log + c->len, &key.len, sizeof key.len);
    c->len += sizeof key.len;
    memcpy(c->log + c->len, key.ptr, key.len);
    c->len += key.len;
    memcpy(c->log + c->len, &value.len, sizeof value.len);
    c->len += sizeof value.len;
    memcpy(c->log + c->len, value.ptr, value.len);
    c->len += value.len;
}

static void run_job(const struct lmr_job_ops *ops, struct lmr_job_args *args, const struct lines *l, size_t first_row)
{
    void *state = NULL;
    char errbuf[512] = "";
    if (ops->setup && ops->setup(&state, args, errbuf, sizeof errbuf) != 0) {
        if (!errbuf[0])
            abort(); /* a refused argument comes with a sentence */
        return;
    }
    struct collect c = {{collect_emit}, NULL, 0, 0};
    struct lmr_job_counters counters = {0};
    /* Input that ends with "\n" ends its last row there: the empty "line" after it is no record
       (the shard reader never gives one to map, and map_block's block ends at that "\n"). */
    bool map_failed = false;
    size_t rows_end = l->n;
    if (rows_end > first_row && rows_end > 1 && l->len[rows_end - 1] == 0)
        rows_end--;
    for (size_t i = first_row; i < rows_end; i++) {
        /* A line's terminator is "\n" or "\r\n": map gets the line without it, and without a "\r"
           at its end when no "\n" follows either (as the shard reader gives lines). */
        size_t len = l->len[i];
        if (len && l->line[i][len - 1] == '\r')
            len--;
        /* A nonzero return fails the task (--strict): the framework reads no further rows. */
        if ((map_failed = ops->map(state, lmr_slice_make(l->line[i], len), &c.base, &counters) != 0))
            break;
    }
    if (ops->map_block && first_row < rows_end) {
        /* map_block over the same rows must emit exactly what map did, in the same order. */
        struct collect b = {{collect_emit}, NULL, 0, 0};
        struct lmr_job_counters bc = {0};
        const char *start = l->line[first_row];
        const char *stop = l->line[l->n - 1] + l->len[l->n - 1];
        /* The rows were split in place (NUL for '\n'): give map_block the '\n' back. */
        char *block = malloc((size_t)(stop - start) + 1);
        if (!block)
            abort();
        memcpy(block, start, (size_t)(stop - start));
        for (size_t i = first_row; i + 1 < l->n; i++)
            block[l->line[i] - start + l->len[i]] = '\n';
        bool block_failed = ops->map_block(state, lmr_slice_make(block, (size_t)(stop - start)), &b.base, &bc) != 0;
        if (b.len != c.len || (c.len && memcmp(b.log, c.log, c.len)) || block_failed != map_failed ||
            bc.malformed_records != counters.malformed_records) {
            fprintf(stderr, "%s: map_block emitted %zu bytes of pairs, map %zu\n", ops->name, b.len, c.len);
            abort();
        }
        free(block);
        free(b.log);
    }
    if (ops->combine && c.len) {
        uint8_t acc[256] = {0};
        if (ops->value_size <= sizeof acc) {
            size_t klen;
            memcpy(&klen, c.log, sizeof klen);
            size_t vlen;
            memcpy(&vlen, c.log + sizeof klen + klen, sizeof vlen);
            if (vlen == ops->value_size) {
                memcpy(acc, c.log + 2 * sizeof klen + klen, vlen);
                ops->combine(state, acc, lmr_slice_make(c.log + 2 * sizeof klen + klen, vlen));
            }
        }
    }
    free(c.log);
    if (ops->teardown)
        ops->teardown(state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 7;
    struct lines l;
    split_lines(data + 1, size - 1, &l);
    const char *a0 = l.line[0];
    uint64_t u;
    double d;
    char errbuf[512];
    switch (mode) {
    case 0: {
        /* Whole numbers with an optional K/M/G/T suffix only, exactly, up to LMR_SIZE_MAX_BYTES. */
        enum lmr_result r = lmr_parse_size(a0, &u);
        if (r == LMR_OK && (u == 0 || u > LMR_SIZE_MAX_BYTES || strpbrk(a0, ".eE+- \t")))
            abort();
        if (r == LMR_OK && strspn(a0, "0123456789") == strlen(a0)) {
            errno = 0;
            unsigned long long want = strtoull(a0, NULL, 10);
            if (errno || want != u)
                abort(); /* a plain byte count is taken as it is */
        }
        break;
    }
    case 1:
        if (lmr_parse_number(lmr_slice_make(a0, l.len[0]), &d)) {
            /* Correctly rounded: the same double strtod makes of the same text. */
            double want = strtod(a0, NULL);
            if (!(d == want || (isnan(d) && isnan(want)))) {
                fprintf(stderr, "lmr_parse_number('%s') = %.17g, strtod %.17g\n", a0, d, want);
                abort();
            }
        }
        break;
    case 2: {
        uint32_t fields[LMR_FIELDS_MAX];
        uint8_t delim;
        errbuf[0] = '\0';
        size_t n = lmr_fields_parse_list("fields", a0, fields, LMR_FIELDS_MAX, errbuf, sizeof errbuf);
        if (!n && !errbuf[0])
            abort();
        for (size_t i = 0; i < n; i++)
            if (fields[i] < 1 || fields[i] > LMR_FIELDS_MAX)
                abort();
        errbuf[0] = '\0';
        if (!lmr_fields_parse_delimiter(arg(&l, 1), &delim, errbuf, sizeof errbuf) && !errbuf[0])
            abort();
        struct lmr_slice out[8];
        size_t nf = lmr_fields_split(lmr_slice_make(a0, l.len[0]), ',', out, 8);
        for (size_t i = 0; i < nf; i++)
            if (out[i].ptr < (const uint8_t *)a0 || out[i].ptr + out[i].len > (const uint8_t *)a0 + l.len[0])
                abort();
        break;
    }
    case 3:
    case 4: {
        /* scan: delimiter, fields, where, strict, rows. aggregate: delimiter, key, value, op, rows. */
        static const char *const scan_names[] = {"delimiter", "fields", "where", "strict"};
        static const char *const agg_names[] = {"delimiter", "key", "value", "op"};
        const char *const *names = mode == 3 ? scan_names : agg_names;
        struct lmr_job_args *args = lmr_job_args_new();
        if (!args)
            abort();
        for (size_t i = 0; i < 4; i++)
            if (arg(&l, i))
                lmr_job_args_set(args, names[i], arg(&l, i));
        run_job(mode == 3 ? &lmr_job_scan : &lmr_job_aggregate, args, &l, 4);
        lmr_job_args_destroy(args);
        break;
    }
    case 5: {
        /* wordcount has a map_block tokenizer: it must agree with map line by line. */
        struct lmr_job_args *args = lmr_job_args_new();
        if (!args)
            abort();
        run_job(&lmr_job_wordcount, args, &l, 0);
        lmr_job_args_destroy(args);
        break;
    }
    case 6: {
        uint64_t ms;
        lmr_stream_parse_time(a0, &ms);
        if (lmr_parse_u64(a0, 1, 1000, &u) == LMR_OK && (u < 1 || u > 1000))
            abort();
        break;
    }
    }
    free(l.buf);
    return 0;
}
