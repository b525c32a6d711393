/* Sampling the input for a range partitioner: bounded ranged GETs, the job's keys, quantiles. */
#include "sample.h"

#include <stdlib.h>
#include <string.h>

#include "job/args.h"
#include "shuffle/range_partition.h"
#include "util/buf.h"

struct sample {
    struct lmr_emitter emitter;
    struct lmr_buf keys;       /* key bytes back to back */
    size_t *off, *len, n, cap; /* key k is keys.data[off[k], off[k] + len[k]) */
    bool full;
};

static void capture(struct lmr_emitter *self, struct lmr_slice key, struct lmr_slice value)
{
    (void)value;
    struct sample *s = (struct sample *)self;
    if (s->full)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        size_t *o = realloc(s->off, cap * sizeof *o), *l = o ? realloc(s->len, cap * sizeof *l) : NULL;
        if (o)
            s->off = o;
        if (!o || !l) {
            s->full = true;
            return;
        }
        s->len = l;
        s->cap = cap;
    }
    size_t at = s->keys.len;
    if (lmr_buf_append(&s->keys, key.ptr, key.len)) {
        s->full = true;
        return;
    }
    s->off[s->n] = at;
    s->len[s->n++] = key.len;
}

static int cmp_slices(const void *a, const void *b)
{
    return lmr_range_key_compare(*(const struct lmr_slice *)a, *(const struct lmr_slice *)b);
}

/* Map the whole lines of data[0, n): from the first line start (after the first '\n' unless
 * at_start) to the last '\n' (or the end when at_end). */
static void map_lines(const struct lmr_job_ops *ops, void *state, const char *data, size_t n, bool at_start,
                      bool at_end, struct sample *s, struct lmr_sample_stats *st, uint64_t *crlf)
{
    size_t i = 0;
    if (!at_start) {
        const char *nl = memchr(data, '\n', n);
        if (!nl)
            return;
        i = (size_t)(nl - data) + 1;
    }
    struct lmr_job_counters counters = {0};
    while (i < n) {
        const char *nl = memchr(data + i, '\n', n - i);
        if (!nl && !at_end)
            break;
        size_t e = nl ? (size_t)(nl - data) : n, len = e - i;
        if (len && data[i + len - 1] == '\r') {
            len--;
            (*crlf)++;
        }
        st->records++;
        ops->map(state, lmr_slice_make(data + i, len), &s->emitter, &counters);
        i = e + 1;
    }
}

enum lmr_result lmr_plan_sample_ranges(struct lmr_job_plan *plan, const struct lmr_job_ops *ops,
                                       struct lmr_store_set *stores, struct lmr_sample_stats *stats,
                                       struct lmr_err *err)
{
    memset(stats, 0, sizeof *stats);
    uint32_t R = plan->job.reducers; /* one reducer needs no ranges, but the line ends are still sampled */
    uint64_t total = 0;
    for (size_t t = 0; t < plan->ntasks; t++)
        for (size_t i = 0; i < plan->tasks[t].nshards; i++)
            if (plan->tasks[t].shards[i].codec == LMR_CODEC_NONE)
                total += plan->tasks[t].shards[i].length;
    if (!total)
        return LMR_OK;

    void *state = NULL;
    char msg[512] = "";
    if (ops->setup && ops->setup(&state, plan->job.args, msg, sizeof msg))
        return lmr_fail(err, LMR_ERR_INVALID, "job '%s': %s", ops->name, msg);
    struct sample s = {.emitter.emit = capture};
    lmr_buf_init(&s.keys, LMR_SAMPLE_MAX_KEY_BYTES);
    struct lmr_buf data;
    lmr_buf_init(&data, LMR_SAMPLE_GET_BYTES + 1);
    uint64_t gets = (total + LMR_SAMPLE_GET_BYTES - 1) / LMR_SAMPLE_GET_BYTES, crlf = 0;
    if (gets > LMR_SAMPLE_MAX_GETS)
        gets = LMR_SAMPLE_MAX_GETS;
    enum lmr_result r = LMR_OK;
    /* GET g starts at input byte g * total / gets (shards in plan order, uncompressed only). */
    size_t t = 0, i = 0;
    uint64_t before = 0; /* input bytes of the shards before shard (t, i) */
    for (uint64_t g = 0; g < gets && !r; g++) {
        uint64_t x = g * total / gets;
        const struct lmr_shard *sh = NULL;
        while (t < plan->ntasks) {
            if (i >= plan->tasks[t].nshards) {
                t++, i = 0;
                continue;
            }
            const struct lmr_shard *c = &plan->tasks[t].shards[i];
            uint64_t len = c->codec == LMR_CODEC_NONE ? c->length : 0;
            if (x < before + len) {
                sh = c;
                break;
            }
            before += len;
            i++;
        }
        if (!sh)
            break;
        /* One byte before the position, so a line starting exactly there is kept. */
        uint64_t off = sh->offset + (x - before), start = off ? off - 1 : 0;
        uint64_t end = start + LMR_SAMPLE_GET_BYTES < sh->object_size ? start + LMR_SAMPLE_GET_BYTES : sh->object_size;
        struct lmr_store *store;
        lmr_buf_reset(&data);
        r = lmr_store_set_get(stores, sh->object.root, &store, err);
        if (!r && (r = lmr_store_get(store, sh->object.key, start, end - start, &data, err)))
            lmr_err_prefix(err, "sampling '%s%s' for the sort ranges", sh->object.root, sh->object.key);
        if (r)
            break;
        stats->gets++;
        stats->bytes_read += data.len;
        map_lines(ops, state, data.data ? data.data : "", data.len, start == 0, start + data.len >= sh->object_size, &s,
                  stats, &crlf);
    }
    struct lmr_slice *keys = NULL;
    char *text = NULL;
    if (!r && s.n && R > 1) {
        keys = malloc(s.n * sizeof *keys);
        if (!keys)
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory sorting %zu sampled keys", s.n);
        for (size_t k = 0; keys && k < s.n; k++)
            keys[k] = lmr_slice_make(s.keys.data + s.off[k], s.len[k]);
        if (keys)
            qsort(keys, s.n, sizeof *keys, cmp_slices);
        if (!r)
            r = lmr_range_bounds_format(keys, s.n, R, lmr_range_bound_bytes(R, LMR_SAMPLE_MAX_BOUND_BYTES), &text, err);
        if (!r && lmr_job_args_set(plan->job.args, "ranges", text))
            r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory storing the sort ranges");
    }
    if (!r && stats->records && crlf == stats->records && !lmr_job_arg(plan->job.args, "line-end") &&
        lmr_job_args_set(plan->job.args, "line-end", "crlf"))
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory storing the line end");
    stats->keys = s.n;
    free(text);
    free(keys);
    free(s.off);
    free(s.len);
    lmr_buf_clean_up(&s.keys);
    lmr_buf_clean_up(&data);
    if (ops->teardown && state)
        ops->teardown(state);
    return r;
}
