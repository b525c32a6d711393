/* k-way merge over frame readers with a binary heap (see merge.h). */
#include <stdlib.h>
#include <string.h>

#include "shuffle/merge.h"
#include "shuffle/merge_inputs.h"

struct lmr_merger {
    const struct lmr_job_ops *ops;
    struct lmr_store *store;
    size_t max, n;
    struct lmr_frame_reader **readers;
    struct lmr_slice *keys, *values; /* current record of each source */
    size_t *heap;
    size_t heap_len;
    long pending;          /* source whose record was handed out and must be advanced, or -1 */
    uint8_t *keybuf, *acc; /* drain: copy of the group key, combined accumulator */
    size_t keybuf_cap;
    bool *has; /* open: whether source i has a first record */
    struct lmr_merger_reading reading;
};

static inline bool less(const struct lmr_merger *m, size_t a, size_t b)
{
    int c = lmr_shuffle_compare(m->ops, m->keys[a], m->keys[b]);
    return c < 0 || (c == 0 && a < b);
}

static void sift_down(struct lmr_merger *m, size_t i)
{
    size_t *h = m->heap, n = m->heap_len, x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && less(m, h[c + 1], h[c]))
            c++;
        if (!less(m, h[c], x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void sift_up(struct lmr_merger *m, size_t i)
{
    size_t *h = m->heap, x = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(m, x, h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

enum lmr_result lmr_merger_new(const struct lmr_job_ops *ops, size_t max_sources, struct lmr_merger **out,
                               struct lmr_err *err)
{
    struct lmr_merger *m = calloc(1, sizeof *m);
    if (!m)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle merger.");
    m->ops = ops;
    m->max = max_sources ? max_sources : 1;
    m->pending = -1;
    m->readers = calloc(m->max, sizeof *m->readers);
    m->keys = calloc(m->max, sizeof *m->keys);
    m->values = calloc(m->max, sizeof *m->values);
    m->heap = calloc(m->max, sizeof *m->heap);
    m->has = calloc(m->max, sizeof *m->has);
    m->acc = malloc(ops->value_size ? ops->value_size : 1);
    if (!m->readers || !m->keys || !m->values || !m->heap || !m->has || !m->acc) {
        lmr_merger_destroy(m);
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating a shuffle merger.");
    }
    *out = m;
    return LMR_OK;
}

void lmr_merger_close(struct lmr_merger *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->readers[i])
            lmr_frame_reader_close(m->readers[i]);
    m->n = m->heap_len = 0;
    m->pending = -1;
}

void lmr_merger_destroy(struct lmr_merger *m)
{
    if (!m)
        return;
    if (m->readers)
        for (size_t i = 0; i < m->max; i++)
            lmr_frame_reader_destroy(m->readers[i]);
    free(m->readers);
    free(m->keys);
    free(m->values);
    free(m->heap);
    free(m->has);
    free(m->keybuf);
    free(m->acc);
    free(m);
}

uint64_t lmr_merger_bytes_fetched(const struct lmr_merger *m)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->max; i++)
        if (m->readers[i])
            total += lmr_frame_reader_bytes_fetched(m->readers[i]);
    return total;
}

void lmr_merger_set_reading(struct lmr_merger *m, const struct lmr_merger_reading *reading)
{
    m->reading = reading ? *reading : (struct lmr_merger_reading){0};
    if (m->reading.opens_in_flight > LMR_MERGE_OPENS_IN_FLIGHT_MAX)
        m->reading.opens_in_flight = LMR_MERGE_OPENS_IN_FLIGHT_MAX;
}

uint64_t lmr_merge_reader_share_bytes(uint64_t in_flight_bytes, size_t n)
{
    if (!in_flight_bytes)
        return 0;
    uint64_t share = in_flight_bytes / (n ? n : 1);
    return share > LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES ? share : LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES;
}

/* What the opening threads share: the sources (or streams) and the read options of each. */
struct opening {
    struct lmr_merger *m;
    const struct lmr_merge_source *sources;
    const struct lmr_merge_stream *streams;
    struct lmr_store_read_options ro;
};

/* Open source i into reader i and read its first record (any thread: it touches index i only). */
static enum lmr_result open_source(void *ctx, size_t i, struct lmr_err *err)
{
    struct opening *o = ctx;
    struct lmr_merger *m = o->m;
    enum lmr_result rc;
    if (!m->readers[i] && (rc = lmr_frame_reader_new(&m->readers[i], err)) != LMR_OK)
        return rc;
    const struct lmr_merge_source *src = o->sources ? &o->sources[i] : NULL;
    rc = src ? lmr_frame_reader_open_with(m->readers[i], m->store, src->key, src->offset, src->size_bytes, &o->ro, err)
             : lmr_frame_reader_open_on(m->readers[i], o->streams[i].reader, o->streams[i].key,
                                        o->streams[i].size_bytes, err);
    if (rc != LMR_OK)
        return rc;
    return lmr_frame_reader_next(m->readers[i], &m->has[i], &m->keys[i], &m->values[i], err);
}

/* Open sources or streams [0..n), opens_in_flight at once, then build the heap in source order. */
static enum lmr_result open_all(struct lmr_merger *m, const struct lmr_merge_source *sources,
                                const struct lmr_merge_stream *streams, size_t n, struct lmr_err *err)
{
    lmr_merger_close(m);
    if (n > m->max)
        return lmr_fail(err, LMR_ERR_INTERNAL, "Shuffle merger asked to merge %zu sources, more than its %zu.", n,
                        m->max);
    struct opening o = {.m = m, .sources = sources, .streams = streams};
    o.ro.max_in_flight_bytes = lmr_merge_reader_share_bytes(m->reading.in_flight_bytes, n);
    /* A frame is read whole and in order; under a cap its reader may ask for all of its share at
       open (no slow start: the cap, not the slow start, keeps many readers small). */
    o.ro.sequential = o.ro.max_in_flight_bytes != 0;
    memset(m->has, 0, n * sizeof *m->has);
    m->n = n; /* every reader that opens is closed by the next close, also after a failure */
    enum lmr_result rc = lmr_shuffle_parallel(n, m->reading.opens_in_flight, open_source, &o, err);
    if (rc != LMR_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (m->has[i]) {
            m->heap[m->heap_len++] = i;
            sift_up(m, m->heap_len - 1);
        }
    return LMR_OK;
}

enum lmr_result lmr_merger_open(struct lmr_merger *m, struct lmr_store *store, const struct lmr_merge_source *sources,
                                size_t n, struct lmr_err *err)
{
    m->store = store;
    return open_all(m, sources, NULL, n, err);
}

enum lmr_result lmr_merger_open_streams(struct lmr_merger *m, const struct lmr_merge_stream *streams, size_t n,
                                        struct lmr_err *err)
{
    m->store = NULL;
    return open_all(m, NULL, streams, n, err);
}

/*
 * The source whose record was handed out stays at the heap's top until it advances: its next
 * record replaces it there and sinks (one sift instead of a pop and a push: half the compares), or,
 * when it has none, the last leaf takes its place.
 */
static enum lmr_result advance_pending(struct lmr_merger *m, struct lmr_err *err)
{
    if (m->pending < 0)
        return LMR_OK;
    size_t s = (size_t)m->pending;
    m->pending = -1;
    bool has;
    enum lmr_result rc = lmr_frame_reader_next(m->readers[s], &has, &m->keys[s], &m->values[s], err);
    if (rc != LMR_OK || !has) /* s has no record to order by any more */
        m->heap[0] = m->heap[--m->heap_len];
    if (m->heap_len > 1)
        sift_down(m, 0);
    return rc;
}

/* The top's record (its source stays at the top, pending, until the next call advances it). */
static void pop_top(struct lmr_merger *m, struct lmr_slice *key, struct lmr_slice *value)
{
    size_t s = m->heap[0];
    *key = m->keys[s];
    *value = m->values[s];
    m->pending = (long)s;
}

enum lmr_result lmr_merger_next(struct lmr_merger *m, bool *has_record, struct lmr_slice *key, struct lmr_slice *value,
                                struct lmr_err *err)
{
    *has_record = false;
    enum lmr_result rc = advance_pending(m, err);
    if (rc != LMR_OK)
        return rc;
    if (!m->heap_len)
        return LMR_OK;
    pop_top(m, key, value);
    *has_record = true;
    return LMR_OK;
}

enum lmr_result lmr_merger_next_if_equal(struct lmr_merger *m, struct lmr_slice key, bool *has_record,
                                         struct lmr_slice *value, struct lmr_err *err)
{
    *has_record = false;
    enum lmr_result rc = advance_pending(m, err);
    if (rc != LMR_OK)
        return rc;
    if (!m->heap_len || lmr_shuffle_compare(m->ops, m->keys[m->heap[0]], key) != 0)
        return LMR_OK;
    struct lmr_slice k;
    pop_top(m, &k, value);
    *has_record = true;
    return LMR_OK;
}

enum lmr_result lmr_shuffle_copy_key(uint8_t **buf, size_t *cap, struct lmr_slice key, const char *what,
                                     struct lmr_err *err)
{
    if (key.len >= 8 && key.len <= 16 && *cap >= 16) { /* a short key: two overlapping words, no call */
        memcpy(*buf, key.ptr, 8);
        memcpy(*buf + key.len - 8, key.ptr + key.len - 8, 8);
        return LMR_OK;
    }
    if (key.len > *cap) {
        size_t ncap = *cap ? *cap : 64;
        while (ncap < key.len)
            ncap *= 2;
        uint8_t *nb = realloc(*buf, ncap);
        if (!nb)
            return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory holding a %zu-byte %s.", key.len, what);
        *buf = nb;
        *cap = ncap;
    }
    if (key.len)
        memcpy(*buf, key.ptr, key.len);
    return LMR_OK;
}

enum lmr_result lmr_merger_drain(struct lmr_merger *m, const struct lmr_job_ops *ops, void *job_state,
                                 struct lmr_frame_writer *fw, uint64_t *records_in, struct lmr_err *err)
{
    uint64_t n = 0;
    for (;;) {
        bool has;
        struct lmr_slice key, value;
        enum lmr_result rc = lmr_merger_next(m, &has, &key, &value, err);
        if (rc != LMR_OK)
            return rc;
        if (!has)
            break;
        n++;
        if (!ops->combine) {
            if ((rc = lmr_frame_writer_add(fw, key, value, err)) != LMR_OK)
                return rc;
            continue;
        }
        if (value.len != ops->value_size)
            return lmr_fail(err, LMR_ERR_FORMAT,
                            "A shuffle record of combining job %s has a %zu-byte value, expected %zu bytes; the "
                            "intermediate data does not belong to this job.",
                            ops->name ? ops->name : "?", value.len, ops->value_size);
        if ((rc = lmr_shuffle_copy_key(&m->keybuf, &m->keybuf_cap, key, "shuffle key", err)) != LMR_OK)
            return rc;
        struct lmr_slice k = {m->keybuf, key.len};
        memcpy(m->acc, value.ptr, ops->value_size);
        for (;;) {
            if ((rc = lmr_merger_next_if_equal(m, k, &has, &value, err)) != LMR_OK)
                return rc;
            if (!has)
                break;
            n++;
            if (value.len != ops->value_size)
                return lmr_fail(err, LMR_ERR_FORMAT,
                                "A shuffle record of combining job %s has a %zu-byte value, "
                                "expected %zu bytes.",
                                ops->name ? ops->name : "?", value.len, ops->value_size);
            ops->combine(job_state, m->acc, value);
        }
        if ((rc = lmr_frame_writer_add(fw, k, (struct lmr_slice){m->acc, ops->value_size}, err)) != LMR_OK)
            return rc;
    }
    if (records_in)
        *records_in += n;
    return LMR_OK;
}
