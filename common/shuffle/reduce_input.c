/* Reduce input: bounded multi-pass k-way merge of a partition's frames, grouped by key (see reduce_input.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shuffle/merge.h"
#include "shuffle/reduce_input.h"

struct source {
    char *key; /* owned copy */
    uint64_t offset, size_bytes;
    bool scratch; /* a temporary run of ours: delete when done */
};

struct lmr_reduce_input {
    struct lmr_values values; /* handed to reduce; cast back in values_next */
    const struct lmr_job_ops *ops;
    void *state;
    struct lmr_store *store;
    uint64_t read_ahead_bytes;
    struct lmr_merger *m;
    struct source *src;
    size_t nsrc;
    uint8_t *keybuf, *acc;
    size_t keybuf_cap, keylen;
    /* current group */
    bool in_group, first_pending, group_done;
    struct lmr_slice first_value;
    enum lmr_result status;
    struct lmr_err err;
    struct lmr_reduce_input_stats stats;
};

size_t lmr_reduce_input_min_memory_bytes(void)
{
    return lmr_frame_writer_memory_bytes(1) + 2 * lmr_frame_reader_memory_bytes();
}

static void delete_scratch(struct lmr_reduce_input *ri, struct source *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i].scratch && s[i].key)
            lmr_store_delete(ri->store, (const char *const *)&s[i].key, 1, NULL);
        free(s[i].key);
        s[i].key = NULL;
    }
}

void lmr_reduce_input_destroy(struct lmr_reduce_input *ri)
{
    if (!ri)
        return;
    lmr_merger_destroy(ri->m);
    if (ri->src)
        delete_scratch(ri, ri->src, ri->nsrc);
    free(ri->src);
    free(ri->keybuf);
    free(ri->acc);
    free(ri);
}

static enum lmr_result merge_group(struct lmr_reduce_input *ri, struct lmr_frame_writer *fw, const struct source *g,
                                   size_t n, const char *key, struct source *out, struct lmr_err *err)
{
    struct lmr_merge_source ms[n ? n : 1];
    for (size_t i = 0; i < n; i++)
        ms[i] = (struct lmr_merge_source){g[i].key, g[i].offset, g[i].size_bytes};
    struct lmr_store_writer *sw;
    enum lmr_result rc = lmr_store_open_write(ri->store, key, 0, &sw, err);
    if (rc != LMR_OK)
        return rc;
    uint64_t off = 0, recs = 0;
    struct lmr_partition_frame frame;
    lmr_frame_writer_begin(fw, sw, &off);
    rc = lmr_merger_open(ri->m, ri->store, ms, n, err);
    if (rc == LMR_OK)
        rc = lmr_merger_drain(ri->m, ri->ops, ri->state, fw, &recs, err);
    lmr_merger_close(ri->m);
    if (rc == LMR_OK)
        rc = lmr_frame_writer_end(fw, &frame, err);
    if (rc == LMR_OK)
        rc = lmr_shuffle_write_index(sw, &off, &frame, 1, err);
    if (rc != LMR_OK) {
        lmr_store_abort(sw);
        return rc;
    }
    if ((rc = lmr_store_commit(sw, err)) != LMR_OK)
        return rc;
    ri->stats.scratch_bytes += off;
    out->offset = frame.offset;
    out->size_bytes = frame.size_bytes;
    out->scratch = true;
    return LMR_OK;
}

/* Merge groups of fan_in sources into temporary runs until at most fan_in remain. */
static enum lmr_result multi_pass(struct lmr_reduce_input *ri, const char *scratch_prefix, size_t fan_in,
                                  int zstd_level, struct lmr_err *err)
{
    if (!scratch_prefix)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "The reduce input needs a scratch prefix: %zu frames do not fit its memory budget at once.",
                        ri->nsrc);
    struct lmr_frame_writer *fw;
    enum lmr_result rc = lmr_frame_writer_new(zstd_level, &fw, err);
    if (rc != LMR_OK)
        return rc;
    uint64_t peak = lmr_frame_writer_memory_bytes(zstd_level) + fan_in * lmr_frame_reader_memory_bytes() +
                    fan_in * lmr_merge_reader_share_bytes(ri->read_ahead_bytes, fan_in);
    if (peak > ri->stats.peak_memory_bytes)
        ri->stats.peak_memory_bytes = peak;
    size_t run_seq = 0;
    while (rc == LMR_OK && ri->nsrc > fan_in) {
        size_t nout = (ri->nsrc + fan_in - 1) / fan_in;
        struct source *out = calloc(nout, sizeof *out);
        if (!out) {
            rc = lmr_fail(err, LMR_ERR_NOMEM, "Out of memory planning a merge pass.");
            break;
        }
        size_t j = 0;
        for (size_t i = 0; i < ri->nsrc && rc == LMR_OK; i += fan_in, j++) {
            size_t n = ri->nsrc - i < fan_in ? ri->nsrc - i : fan_in;
            if (n == 1) { /* nothing to merge: carry the source over */
                out[j] = ri->src[i];
                ri->src[i].key = NULL;
                continue;
            }
            size_t klen = strlen(scratch_prefix) + 32;
            out[j].key = malloc(klen);
            if (!out[j].key) {
                rc = lmr_fail(err, LMR_ERR_NOMEM, "Out of memory naming a merge run.");
                break;
            }
            snprintf(out[j].key, klen, "%spass%02llu-%05zu", scratch_prefix, (unsigned long long)ri->stats.merge_passes,
                     run_seq++);
            rc = merge_group(ri, fw, ri->src + i, n, out[j].key, &out[j], err);
            if (rc != LMR_OK) {
                lmr_store_delete(ri->store, (const char *const *)&out[j].key, 1, NULL);
                free(out[j].key);
                out[j].key = NULL;
            }
        }
        if (rc != LMR_OK) {
            delete_scratch(ri, out, nout);
            free(out);
            break;
        }
        delete_scratch(ri, ri->src, ri->nsrc);
        free(ri->src);
        ri->src = out;
        ri->nsrc = nout;
        ri->stats.merge_passes++;
    }
    lmr_frame_writer_destroy(fw);
    return rc;
}

static bool values_next(struct lmr_values *self, struct lmr_slice *value)
{
    struct lmr_reduce_input *ri = (struct lmr_reduce_input *)self;
    if (ri->first_pending) {
        ri->first_pending = false;
        *value = ri->first_value;
        return true;
    }
    if (ri->group_done || ri->status != LMR_OK)
        return false;
    bool has;
    enum lmr_result rc =
        lmr_merger_next_if_equal(ri->m, (struct lmr_slice){ri->keybuf, ri->keylen}, &has, value, &ri->err);
    if (rc != LMR_OK) {
        ri->status = rc;
        ri->group_done = true;
        return false;
    }
    if (!has) {
        ri->group_done = true;
        return false;
    }
    ri->stats.records++;
    return true;
}

enum lmr_result lmr_reduce_input_new(const struct lmr_reduce_input_options *o, struct lmr_reduce_input **out,
                                     struct lmr_err *err)
{
    if (!o || !o->ops || !o->store || (o->nframes && !o->frames))
        return lmr_fail(err, LMR_ERR_INVALID, "The reduce input needs a job, a store and its frames.");
    if (o->ops->combine && o->ops->value_size == 0)
        return lmr_fail(err, LMR_ERR_INVALID, "Job %s has a combiner but value_size 0.",
                        o->ops->name ? o->ops->name : "?");
    size_t min = lmr_reduce_input_min_memory_bytes();
    if (o->memory_limit_bytes < min)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "A reduce task's shuffle budget of %zu bytes is below the minimum of %zu bytes; give the task "
                        "more memory.",
                        o->memory_limit_bytes, min);
    struct lmr_reduce_input *ri = calloc(1, sizeof *ri);
    if (!ri)
        return lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating the reduce input.");
    ri->values.next = values_next;
    ri->ops = o->ops;
    ri->state = o->job_state;
    ri->store = o->store;
    ri->read_ahead_bytes = o->read_ahead_bytes;
    ri->src = calloc(o->nframes ? o->nframes : 1, sizeof *ri->src);
    ri->acc = malloc(o->ops->value_size ? o->ops->value_size : 1);
    ri->keybuf_cap = 64; /* never NULL: an empty key still points somewhere */
    ri->keybuf = malloc(ri->keybuf_cap);
    enum lmr_result rc = LMR_OK;
    if (!ri->src || !ri->acc || !ri->keybuf)
        rc = lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating the reduce input.");
    for (size_t i = 0; i < o->nframes && rc == LMR_OK; i++) {
        const struct lmr_frame_ref *f = &o->frames[i];
        if (!f->key)
            rc = lmr_fail(err, LMR_ERR_INVALID, "Reduce input frame %zu has no object key.", i);
        else if (f->store_root && o->store->root_uri && strcmp(f->store_root, o->store->root_uri) != 0)
            rc = lmr_fail(err, LMR_ERR_INVALID,
                          "Reduce input frame %s lives in store %s, not in the task's store %s; all frames of a job "
                          "must be in one store.",
                          f->key, f->store_root, o->store->root_uri);
        else if (f->size_bytes == 0)
            continue;
        else if (!(ri->src[ri->nsrc].key = strdup(f->key)))
            rc = lmr_fail(err, LMR_ERR_NOMEM, "Out of memory creating the reduce input.");
        else {
            ri->src[ri->nsrc].offset = f->offset;
            ri->src[ri->nsrc].size_bytes = f->size_bytes;
            ri->nsrc++;
        }
    }
    ri->stats.frames = ri->nsrc;
    size_t per = lmr_frame_reader_memory_bytes();
    int level = lmr_shuffle_level_for(o->store, o->zstd_level); /* raw runs on a file store */
    size_t wmem = lmr_frame_writer_memory_bytes(level);
    size_t fan_in = o->memory_limit_bytes > wmem ? (o->memory_limit_bytes - wmem) / per : 0;
    if (o->read_ahead_bytes && fan_in > o->read_ahead_bytes / LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES)
        fan_in = (size_t)(o->read_ahead_bytes / LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES);
    if (fan_in < 2)
        fan_in = 2;
    if (rc == LMR_OK)
        rc = lmr_merger_new(o->ops, fan_in, &ri->m, err);
    if (rc == LMR_OK)
        lmr_merger_set_reading(ri->m, &(struct lmr_merger_reading){.opens_in_flight = o->opens_in_flight
                                                                                          ? o->opens_in_flight
                                                                                          : LMR_MERGE_OPENS_IN_FLIGHT,
                                                                   .in_flight_bytes = o->read_ahead_bytes});
    if (rc == LMR_OK && ri->nsrc > fan_in)
        rc = multi_pass(ri, o->scratch_prefix, fan_in, level, err);
    if (rc == LMR_OK) {
        struct lmr_merge_source ms[ri->nsrc ? ri->nsrc : 1];
        for (size_t i = 0; i < ri->nsrc; i++)
            ms[i] = (struct lmr_merge_source){ri->src[i].key, ri->src[i].offset, ri->src[i].size_bytes};
        rc = lmr_merger_open(ri->m, ri->store, ms, ri->nsrc, err);
        uint64_t peak = ri->nsrc * (per + lmr_merge_reader_share_bytes(o->read_ahead_bytes, ri->nsrc));
        if (peak > ri->stats.peak_memory_bytes)
            ri->stats.peak_memory_bytes = peak;
    }
    if (rc != LMR_OK) {
        lmr_reduce_input_destroy(ri);
        return rc;
    }
    *out = ri;
    return LMR_OK;
}

static enum lmr_result copy_key(struct lmr_reduce_input *ri, struct lmr_slice key, struct lmr_err *err)
{
    enum lmr_result rc = lmr_shuffle_copy_key(&ri->keybuf, &ri->keybuf_cap, key, "key", err);
    if (rc == LMR_OK)
        ri->keylen = key.len;
    return rc;
}

static enum lmr_result wrong_size(struct lmr_reduce_input *ri, size_t len, struct lmr_err *err)
{
    return lmr_fail(err, LMR_ERR_FORMAT,
                    "A shuffle record of combining job %s has a %zu-byte value, expected %zu bytes; the intermediate "
                    "data does not belong to this job.",
                    ri->ops->name ? ri->ops->name : "?", len, ri->ops->value_size);
}

enum lmr_result lmr_reduce_input_next(struct lmr_reduce_input *ri, bool *has_group, struct lmr_slice *key,
                                      struct lmr_values **values, struct lmr_err *err)
{
    *has_group = false;
    struct lmr_slice v;
    /* Skip what the reducer left of the previous group. */
    if (ri->in_group && !ri->ops->combine) {
        ri->first_pending = false;
        while (values_next(&ri->values, &v))
            ;
    }
    ri->in_group = false;
    if (ri->status != LMR_OK) {
        if (err)
            *err = ri->err;
        return ri->status;
    }
    bool has;
    enum lmr_result rc = lmr_merger_next(ri->m, &has, key, &v, err);
    if (rc == LMR_OK && has)
        rc = copy_key(ri, *key, err);
    if (rc != LMR_OK || !has) {
        if (rc != LMR_OK) {
            ri->status = rc;
            if (err)
                ri->err = *err;
        }
        return rc;
    }
    ri->stats.records++;
    ri->stats.groups++;
    struct lmr_slice k = {ri->keybuf, ri->keylen};
    if (ri->ops->combine) {
        if (v.len != ri->ops->value_size)
            rc = wrong_size(ri, v.len, err);
        else
            memcpy(ri->acc, v.ptr, v.len);
        while (rc == LMR_OK) {
            rc = lmr_merger_next_if_equal(ri->m, k, &has, &v, err);
            if (rc != LMR_OK || !has)
                break;
            ri->stats.records++;
            if (v.len != ri->ops->value_size)
                rc = wrong_size(ri, v.len, err);
            else
                ri->ops->combine(ri->state, ri->acc, v);
        }
        if (rc != LMR_OK) {
            ri->status = rc;
            if (err)
                ri->err = *err;
            return rc;
        }
        ri->first_value = (struct lmr_slice){ri->acc, ri->ops->value_size};
        ri->group_done = true;
    } else {
        ri->first_value = v;
        ri->group_done = false;
    }
    ri->first_pending = true;
    ri->in_group = true;
    *has_group = true;
    *key = k;
    *values = &ri->values;
    return LMR_OK;
}

enum lmr_result lmr_reduce_input_status(struct lmr_reduce_input *ri, struct lmr_err *err)
{
    if (ri->status != LMR_OK && err)
        *err = ri->err;
    return ri->status;
}

void lmr_reduce_input_stats(const struct lmr_reduce_input *ri, struct lmr_reduce_input_stats *stats)
{
    *stats = ri->stats;
    stats->bytes_fetched = lmr_merger_bytes_fetched(ri->m);
}
