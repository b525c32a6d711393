/* A merge's inputs read with bounded parallelism: the step pool and commit records (see merge_inputs.h). */
#include "shuffle/merge_inputs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct parallel {
    size_t n;
    lmr_shuffle_step_fn step;
    void *ctx;
    atomic_size_t next;
    atomic_size_t first_bad; /* the lowest failing index so far (SIZE_MAX: none), for a stable message */
    pthread_mutex_t lock;
    enum lmr_result res;
    struct lmr_err err;
};

static void *worker(void *arg)
{
    struct parallel *j = arg;
    for (;;) {
        /* Items are taken in order, so every item below a failing one has been taken: each still runs
           (one of them may fail too), those above it are not started. */
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n || i > atomic_load(&j->first_bad))
            break;
        struct lmr_err e = {0};
        enum lmr_result r = j->step(j->ctx, i, &e);
        if (r) {
            pthread_mutex_lock(&j->lock);
            if (i < atomic_load(&j->first_bad)) {
                j->res = r;
                j->err = e;
                atomic_store(&j->first_bad, i);
            }
            pthread_mutex_unlock(&j->lock);
        }
    }
    return NULL;
}

enum lmr_result lmr_shuffle_parallel(size_t n, unsigned threads, lmr_shuffle_step_fn step, void *ctx,
                                     struct lmr_err *err)
{
    if (threads > LMR_SHUFFLE_PARALLEL_MAX_THREADS)
        threads = LMR_SHUFFLE_PARALLEL_MAX_THREADS;
    if (threads > n)
        threads = (unsigned)n;
    struct parallel j = {.n = n, .step = step, .ctx = ctx};
    atomic_init(&j.next, 0);
    atomic_init(&j.first_bad, SIZE_MAX);
    pthread_mutex_init(&j.lock, NULL);
    pthread_t tid[LMR_SHUFFLE_PARALLEL_MAX_THREADS];
    unsigned started = 0;
    for (; threads > 1 && started < threads; started++)
        if (pthread_create(&tid[started], NULL, worker, &j))
            break;
    if (!started)
        worker(&j); /* one thread asked for, or none could start: do it here */
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.lock);
    if (j.res && err)
        *err = j.err;
    return j.res;
}

struct read_job {
    struct lmr_store *store;
    const char *const *keys;
    uint32_t partitions;
    struct lmr_shuffle_commit *out;
};

static enum lmr_result parse_record(const char *key, const struct lmr_buf *b, uint32_t R, struct lmr_shuffle_commit *c,
                                    struct lmr_err *err)
{
    json_error_t je;
    json_t *rec = json_loadb(b->data ? b->data : "", b->len, 0, &je);
    json_t *frames = json_object_get(rec, "frames"), *obj = json_object_get(rec, "object");
    enum lmr_result r = LMR_OK;
    if (!json_is_string(obj) || !json_is_array(frames) || json_array_size(frames) != R)
        r = lmr_fail(err, LMR_ERR_FORMAT, "commit record '%s' is malformed (expected an object key and %u frames)", key,
                     R);
    if (!r && (!(c->object = strdup(json_string_value(obj))) || !(c->frames = calloc(R ? R : 1, sizeof *c->frames))))
        r = lmr_fail(err, LMR_ERR_NOMEM, "out of memory reading commit record '%s'", key);
    for (uint32_t p = 0; !r && p < R; p++) {
        json_t *f = json_array_get(frames, p);
        uint64_t v[4];
        for (int k = 0; k < 4; k++) {
            json_t *x = json_array_get(f, (size_t)k);
            if (!json_is_integer(x) || json_integer_value(x) < 0) {
                r = lmr_fail(err, LMR_ERR_FORMAT,
                             "commit record '%s': frame %u must be [offset, size, records, raw bytes]", key, p);
                break;
            }
            v[k] = (uint64_t)json_integer_value(x);
        }
        if (!r)
            c->frames[p] = (struct lmr_partition_frame){v[0], v[1], v[2], v[3]};
    }
    json_decref(rec);
    return r;
}

static enum lmr_result read_one(void *ctx, size_t i, struct lmr_err *err)
{
    struct read_job *j = ctx;
    struct lmr_buf b;
    lmr_buf_init(&b, LMR_COMMIT_RECORD_MAX_BYTES);
    enum lmr_result r = lmr_store_get(j->store, j->keys[i], 0, LMR_STORE_TO_END, &b, err);
    if (!r)
        r = parse_record(j->keys[i], &b, j->partitions, &j->out[i], err);
    lmr_buf_clean_up(&b);
    return r;
}

void lmr_shuffle_commits_free(struct lmr_shuffle_commit *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) {
        free(c[i].object);
        free(c[i].frames);
        c[i].object = NULL;
        c[i].frames = NULL;
    }
}

enum lmr_result lmr_shuffle_read_commits(struct lmr_store *store, const char *const *keys, size_t n,
                                         uint32_t partitions, unsigned threads, struct lmr_shuffle_commit *out,
                                         struct lmr_err *err)
{
    memset(out, 0, n * sizeof *out);
    if (!threads || threads > LMR_COMMIT_READ_THREADS)
        threads = LMR_COMMIT_READ_THREADS;
    struct read_job j = {.store = store, .keys = keys, .partitions = partitions, .out = out};
    enum lmr_result r = lmr_shuffle_parallel(n, threads, read_one, &j, err);
    if (r)
        lmr_shuffle_commits_free(out, n);
    return r;
}

json_t *lmr_shuffle_frames_json(const struct lmr_partition_frame *frames, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t p = 0; a && p < n; p++)
        if (json_array_append_new(a, json_pack("[I, I, I, I]", (json_int_t)frames[p].offset,
                                               (json_int_t)frames[p].size_bytes, (json_int_t)frames[p].records,
                                               (json_int_t)frames[p].raw_bytes))) {
            json_decref(a);
            return NULL;
        }
    return a;
}
