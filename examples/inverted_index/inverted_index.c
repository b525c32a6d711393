/*
 * An inverted index: for every word, the sorted list of input files it occurs in.
 *
 * Shows: the start hook (which input file a mapper reads), values of any size (no combiner:
 * the reducer sees every (word, file) pair and removes duplicates), and a named counter.
 *
 *   lambdamr run ./inverted_index.so --input docs/ --output out/index
 *   -> lines "word<TAB>a.txt,c.txt"
 */
#include <lambdamr/job.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES_PER_WORD 100000 /* a cap: more distinct files per word are counted, not listed */

struct state {
    char doc[256]; /* the base name of the file being mapped */
    size_t doc_len;
    struct lmr_slice *vals; /* reducer scratch: one group's file names */
    size_t cap;
    char *line;
    size_t line_cap;
};

static int ii_setup(void **state, const struct lmr_job_args *args, char *errbuf, size_t errbuf_len)
{
    (void)args, (void)errbuf, (void)errbuf_len;
    *state = calloc(1, sizeof(struct state));
    return *state ? 0 : -1;
}

static void ii_teardown(void *state)
{
    struct state *s = state;
    free(s->vals);
    free(s->line);
    free(s);
}

static int ii_start(void *state, const struct lmr_task_info *task, char *errbuf, size_t errbuf_len)
{
    struct state *s = state;
    (void)errbuf, (void)errbuf_len;
    if (task->input_uri) {
        const char *slash = strrchr(task->input_uri, '/');
        const char *base = slash ? slash + 1 : task->input_uri;
        s->doc_len = strlen(base) < sizeof s->doc ? strlen(base) : sizeof s->doc - 1;
        memcpy(s->doc, base, s->doc_len);
    }
    return 0;
}

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int ii_map(void *state, struct lmr_slice rec, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    struct state *s = state;
    size_t i = 0;
    while (i < rec.len) {
        while (i < rec.len && !is_word_byte(rec.ptr[i]))
            i++;
        size_t start = i;
        while (i < rec.len && is_word_byte(rec.ptr[i]))
            i++;
        if (i > start) {
            lmr_emit(out, lmr_slice_make(rec.ptr + start, i - start), lmr_slice_make(s->doc, s->doc_len));
            lmr_job_count(counters, "words", 1);
        }
    }
    return 0;
}

static int cmp_slice(const void *a, const void *b)
{
    const struct lmr_slice *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void ii_reduce(void *state, struct lmr_slice key, struct lmr_values *values, struct lmr_emitter *out)
{
    struct state *s = state;
    size_t n = 0, total = 0;
    struct lmr_slice v;
    /* The slices point into the framework's buffers only until the next call: copy them. */
    char *pool = NULL;
    size_t pool_len = 0, pool_cap = 0;
    size_t *offs = NULL;
    while (lmr_values_next(values, &v)) {
        if (n == MAX_FILES_PER_WORD)
            continue;
        if (pool_len + v.len > pool_cap) {
            pool_cap = (pool_len + v.len) * 2 + 256;
            pool = realloc(pool, pool_cap);
        }
        if (n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->vals = realloc(s->vals, s->cap * sizeof *s->vals);
        }
        offs = realloc(offs, (n + 1) * sizeof *offs);
        if (!pool || !s->vals || !offs)
            abort();
        memcpy(pool + pool_len, v.ptr, v.len);
        offs[n] = pool_len;
        s->vals[n].len = v.len;
        pool_len += v.len;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        s->vals[i].ptr = (const uint8_t *)pool + offs[i];
    qsort(s->vals, n, sizeof *s->vals, cmp_slice);
    for (size_t i = 0; i < n; i++) {
        if (i && !cmp_slice(&s->vals[i], &s->vals[i - 1]))
            continue;
        if (total + s->vals[i].len + 1 > s->line_cap) {
            s->line_cap = (total + s->vals[i].len + 1) * 2;
            if (!(s->line = realloc(s->line, s->line_cap)))
                abort();
        }
        if (total)
            s->line[total++] = ',';
        memcpy(s->line + total, s->vals[i].ptr, s->vals[i].len);
        total += s->vals[i].len;
    }
    lmr_emit(out, key, lmr_slice_make(s->line, total));
    free(pool);
    free(offs);
}

static const struct lmr_job_ops ops = {
    .abi_version = LMR_JOB_ABI_VERSION,
    .name = "inverted_index",
    .summary = "word -> sorted list of the input files that contain it",
    .setup = ii_setup,
    .teardown = ii_teardown,
    .start = ii_start,
    .map = ii_map,
    .reduce = ii_reduce,
};

const struct lmr_job_ops *lmr_job_plugin(void)
{
    return &ops;
}
