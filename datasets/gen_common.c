/* Shared generator machinery: alias tables, vocabularies, atomic part files, a small thread pool. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "gen_internal.h"
#include "util/misc.h"

enum lmr_result lmr_alias_zipf(struct lmr_alias *a, uint32_t n, double s)
{
    memset(a, 0, sizeof *a);
    double *p = malloc((size_t)n * sizeof *p);
    uint32_t *small = malloc((size_t)n * sizeof *small), *large = malloc((size_t)n * sizeof *large);
    a->threshold = malloc((size_t)n * sizeof *a->threshold);
    a->alias = malloc((size_t)n * sizeof *a->alias);
    if (!p || !small || !large || !a->threshold || !a->alias) {
        free(p), free(small), free(large);
        lmr_alias_clean_up(a);
        return LMR_ERR_NOMEM;
    }
    a->n = n;
    double total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += p[i] = pow((double)i + 1.0, -s);
    /* Vose: scale to mean 1, pair each under-full column with an over-full one. */
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        p[i] = p[i] * n / total;
        if (p[i] < 1.0)
            small[ns++] = i;
        else
            large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t l = small[--ns], g = large[nl - 1];
        a->threshold[l] = (uint32_t)fmin(p[l] * 4294967296.0, 4294967295.0);
        a->alias[l] = g;
        p[g] = (p[g] + p[l]) - 1.0;
        if (p[g] < 1.0) {
            nl--;
            small[ns++] = g;
        }
    }
    while (nl) {
        uint32_t g = large[--nl];
        a->threshold[g] = UINT32_MAX, a->alias[g] = g;
    }
    while (ns) { /* rounding leftovers: columns that are full in exact arithmetic */
        uint32_t l = small[--ns];
        a->threshold[l] = UINT32_MAX, a->alias[l] = l;
    }
    free(p), free(small), free(large);
    return LMR_OK;
}

void lmr_alias_clean_up(struct lmr_alias *a)
{
    free(a->threshold);
    free(a->alias);
    a->threshold = a->alias = NULL;
    a->n = 0;
}

enum lmr_result lmr_vocab_build(struct lmr_vocab *v, uint32_t n, uint64_t seed, unsigned capital_pct)
{
    memset(v, 0, sizeof *v);
    size_t slots = 16;
    while (slots < (size_t)n * 2)
        slots <<= 1;
    uint64_t *set = calloc(slots, sizeof *set); /* hashes of the words so far (0 = empty) */
    size_t cap = (size_t)n * 8 + 64;
    v->bytes = malloc(cap);
    v->offset = malloc(((size_t)n + 1) * sizeof *v->offset);
    if (!set || !v->bytes || !v->offset) {
        free(set);
        lmr_vocab_clean_up(v);
        return LMR_ERR_NOMEM;
    }
    struct lmr_rng rng;
    lmr_rng_seed(&rng, seed, 0x766f636162ull /* "vocab" */);
    size_t used = 0;
    for (uint32_t i = 0; i < n; i++) {
        /* Length 2 + log base 5 of the rank, plus 0..4: ~2-6 letters at the top, ~8-13 at 10^5. */
        unsigned len = 2 + (unsigned)(log((double)i + 1.0) / log(5.0)) + lmr_rng_below(&rng, 5);
        char w[64];
        for (unsigned attempt = 0;; attempt++) {
            if (len > 40)
                len = 40;
            for (unsigned k = 0; k < len; k++)
                w[k] = (char)('a' + lmr_rng_below(&rng, 26));
            if (capital_pct && lmr_rng_below(&rng, 100) < capital_pct)
                w[0] = (char)(w[0] - 'a' + 'A');
            uint64_t h = XXH3_64bits(w, len) | 1;
            size_t j = h & (slots - 1);
            while (set[j] && set[j] != h)
                j = (j + 1) & (slots - 1);
            if (!set[j]) {
                set[j] = h;
                break;
            }
            if (attempt % 4 == 3) /* short lengths run out of distinct words: grow */
                len++;
        }
        if (used + len > cap) {
            cap = cap * 2 + len;
            char *nb = realloc(v->bytes, cap);
            if (!nb) {
                free(set);
                lmr_vocab_clean_up(v);
                return LMR_ERR_NOMEM;
            }
            v->bytes = nb;
        }
        v->offset[i] = (uint32_t)used;
        memcpy(v->bytes + used, w, len);
        used += len;
    }
    v->offset[n] = (uint32_t)used;
    v->n = n;
    free(set);
    return LMR_OK;
}

void lmr_vocab_clean_up(struct lmr_vocab *v)
{
    free(v->bytes);
    free(v->offset);
    memset(v, 0, sizeof *v);
}

#define PART_BUF_BYTES (1u << 20)

enum lmr_result lmr_part_open(struct lmr_part_writer *w, const char *dir, uint32_t index, struct lmr_err *err)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    snprintf(w->final_path, sizeof w->final_path, "%s/part-%05u", dir, index);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s/.part-%05u.tmp.%ld", dir, index, (long)getpid());
    w->buf = malloc(PART_BUF_BYTES);
    if (!w->buf)
        return lmr_fail(err, LMR_ERR_NOMEM, "out of memory for the write buffer of %s", w->final_path);
    w->cap = PART_BUF_BYTES;
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        free(w->buf);
        w->buf = NULL;
        return lmr_fail(err, LMR_ERR_IO, "cannot create %s: %s; check that the output directory is writable",
                        w->tmp_path, strerror(e));
    }
    return LMR_OK;
}

static enum lmr_result part_flush(struct lmr_part_writer *w, struct lmr_err *err)
{
    size_t off = 0;
    while (off < w->len) {
        ssize_t n = write(w->fd, w->buf + off, w->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return lmr_fail(err, LMR_ERR_IO, "writing %s failed: %s; check free disk space", w->tmp_path,
                            n < 0 ? strerror(errno) : "no progress");
        off += (size_t)n;
    }
    w->written += w->len;
    w->len = 0;
    return LMR_OK;
}

char *lmr_part_reserve(struct lmr_part_writer *w, size_t n, struct lmr_err *err)
{
    if (w->len + n > w->cap) {
        if (part_flush(w, err))
            return NULL;
        if (n > w->cap) {
            lmr_fail(err, LMR_ERR_INTERNAL, "a generated record of %zu bytes exceeds the write buffer", n);
            return NULL;
        }
    }
    return w->buf + w->len;
}

enum lmr_result lmr_part_commit(struct lmr_part_writer *w, struct lmr_err *err)
{
    enum lmr_result r = part_flush(w, err);
    if (!r && close(w->fd) != 0)
        r = lmr_fail(err, LMR_ERR_IO, "closing %s failed: %s", w->tmp_path, strerror(errno));
    else if (r)
        close(w->fd);
    w->fd = -1;
    if (!r && rename(w->tmp_path, w->final_path) != 0)
        r = lmr_fail(err, LMR_ERR_IO, "cannot rename %s to %s: %s", w->tmp_path, w->final_path, strerror(errno));
    if (r)
        unlink(w->tmp_path);
    free(w->buf);
    w->buf = NULL;
    return r;
}

void lmr_part_abort(struct lmr_part_writer *w)
{
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp_path);
        w->fd = -1;
    }
    free(w->buf);
    w->buf = NULL;
}

enum lmr_result lmr_gen_prepare_dir(const char *dir, int force, struct lmr_err *err)
{
    if (lmr_mkdirs(dir, err))
        return err ? err->code : LMR_ERR_IO;
    DIR *d = opendir(dir);
    if (!d)
        return lmr_fail(err, LMR_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    enum lmr_result r = LMR_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        int is_part = !strncmp(e->d_name, "part-", 5);
        int is_tmp = !strncmp(e->d_name, ".part-", 6) && strstr(e->d_name, ".tmp.");
        if (!is_part && !is_tmp)
            continue;
        if (is_part && !force) {
            r = lmr_fail(err, LMR_ERR_EXISTS,
                         "%s already holds part files (%s); choose another --out or pass --force to replace them", dir,
                         e->d_name);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            r = lmr_fail(err, LMR_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
            break;
        }
    }
    closedir(d);
    return r;
}

struct pool {
    pthread_mutex_t mu;
    uint32_t next, n;
    enum lmr_result result;
    struct lmr_err first_err;
    enum lmr_result (*fn)(void *ctx, uint32_t i, struct lmr_err *err);
    void *ctx;
};

static void *pool_worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        uint32_t i = p->next;
        int stop = p->result != LMR_OK || i >= p->n;
        if (!stop)
            p->next++;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            return NULL;
        struct lmr_err e = {0};
        enum lmr_result r = p->fn(p->ctx, i, &e);
        if (r) {
            pthread_mutex_lock(&p->mu);
            if (!p->result) {
                p->result = r;
                p->first_err = e;
                p->first_err.code = r;
            }
            pthread_mutex_unlock(&p->mu);
        }
    }
}

enum lmr_result lmr_gen_parallel(uint32_t n, unsigned threads,
                                 enum lmr_result (*fn)(void *ctx, uint32_t i, struct lmr_err *err), void *ctx,
                                 struct lmr_err *err)
{
    struct pool p = {.mu = PTHREAD_MUTEX_INITIALIZER, .n = n, .fn = fn, .ctx = ctx};
    if (threads < 1)
        threads = 1;
    if (threads > n)
        threads = n ? n : 1;
    pthread_t tids[256];
    if (threads > 256)
        threads = 256;
    unsigned started = 0;
    for (unsigned t = 1; t < threads; t++) {
        if (pthread_create(&tids[started], NULL, pool_worker, &p) != 0)
            break;
        started++;
    }
    pool_worker(&p);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    if (p.result && err)
        *err = p.first_err;
    return p.result;
}

unsigned lmr_gen_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
