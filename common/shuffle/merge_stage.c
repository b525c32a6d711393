/* The merge stage: G shuffle objects -> one shuffle object with the same partitions (see merge_stage.h). */
#include "shuffle/merge_stage.h"

#include <stdlib.h>
#include <string.h>

#include "shuffle/merge.h"
#include "shuffle/merge_inputs.h"

struct src_state {
    struct lmr_store_reader *reader; /* over [first frame, end of last frame) */
    uint64_t pos;                    /* object offset the reader is at */
};

/* Check a source's frames (ascending, not overlapping) and find the range they cover. */
static enum lmr_result frame_span(const struct lmr_merge_stage_source *s, uint32_t n, uint64_t *start, uint64_t *end,
                                  struct lmr_err *err)
{
    bool any = false;
    uint64_t last_end = 0;
    *start = *end = 0;
    for (uint32_t r = 0; r < n; r++) {
        const struct lmr_partition_frame *f = &s->frames[r];
        if (!f->size_bytes)
            continue;
        if ((any && f->offset < last_end) || f->offset + f->size_bytes < f->offset)
            return lmr_fail(err, LMR_ERR_FORMAT,
                            "Shuffle object %s: the frame of partition %u overlaps the one before it or is out of "
                            "order; the commit record does not describe this object: rerun its map task.",
                            s->key, r);
        if (!any)
            *start = f->offset;
        any = true;
        last_end = f->offset + f->size_bytes;
    }
    *end = last_end;
    return LMR_OK;
}

/* What the threads opening the sources' readers share. */
struct opening {
    const struct lmr_merge_stage_options *o;
    struct src_state *st;
    struct lmr_store_read_options ro;
};

/* Check source i's frames and open one reader over them (any thread: it touches index i only). */
static enum lmr_result open_source(void *ctx, size_t i, struct lmr_err *err)
{
    struct opening *op = ctx;
    uint64_t start, end;
    enum lmr_result rc = frame_span(&op->o->sources[i], op->o->partitions, &start, &end, err);
    if (rc)
        return rc;
    op->st[i].pos = start;
    if (end > start)
        rc = lmr_store_open_read_with(op->o->store, op->o->sources[i].key, start, end - start, &op->ro,
                                      &op->st[i].reader, err);
    return rc;
}

/* Read and drop n bytes of a source (a gap between two frames). */
static enum lmr_result skip_bytes(struct lmr_store_reader *rd, uint64_t n, uint64_t *fetched, const char *key,
                                  struct lmr_err *err)
{
    char buf[4096];
    while (n) {
        size_t got = 0, want = n < sizeof buf ? (size_t)n : sizeof buf;
        enum lmr_result rc = lmr_store_read(rd, buf, want, &got, err);
        if (rc != LMR_OK)
            return rc;
        if (!got)
            return lmr_fail(err, LMR_ERR_FORMAT, "Shuffle object %s ends before its frames do: rerun its map task.",
                            key);
        n -= got;
        *fetched += got;
    }
    return LMR_OK;
}

enum lmr_result lmr_merge_stage_run(const struct lmr_merge_stage_options *o, struct lmr_partition_frame *out_frames,
                                    struct lmr_merge_stage_stats *stats, struct lmr_err *err)
{
    memset(stats, 0, sizeof *stats);
    if (!o || !o->ops || !o->store || !o->output_key || (o->nsources && !o->sources) || !o->partitions)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "A merge task needs a job, a store, its sources, partitions and an "
                        "output key.");
    if (o->nsources > LMR_MERGE_FAN_IN_MAX)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "A merge task of %zu sources is over the limit of %u; use a smaller "
                        "--merge-fan-in.",
                        o->nsources, LMR_MERGE_FAN_IN_MAX);
    if (o->ops->combine && o->ops->value_size == 0)
        return lmr_fail(err, LMR_ERR_INVALID, "Job %s has a combiner but value_size 0.",
                        o->ops->name ? o->ops->name : "?");
    size_t n = o->nsources;
    struct src_state *st = calloc(n ? n : 1, sizeof *st);
    struct lmr_merge_stream *streams = calloc(n ? n : 1, sizeof *streams);
    struct lmr_merger *m = NULL;
    struct lmr_frame_writer *fw = NULL;
    struct lmr_store_writer *sw = NULL;
    uint64_t off = 0, gap_bytes = 0;
    enum lmr_result rc = st && streams ? LMR_OK : lmr_fail(err, LMR_ERR_NOMEM, "Out of memory starting a merge task.");
    unsigned opens = o->opens_in_flight ? o->opens_in_flight : LMR_MERGE_OPENS_IN_FLIGHT;
    if (!rc) {
        struct opening op = {.o = o, .st = st};
        op.ro.max_in_flight_bytes = lmr_merge_reader_share_bytes(o->read_ahead_bytes, n);
        op.ro.sequential = op.ro.max_in_flight_bytes != 0; /* read whole and in order: all of the share at once */
        rc = lmr_shuffle_parallel(n, opens, open_source, &op, err);
    }
    if (!rc)
        rc = lmr_merger_new(o->ops, n ? n : 1, &m, err);
    if (!rc)
        rc = lmr_frame_writer_new(lmr_shuffle_level_for(o->store, o->zstd_level), &fw, err);
    if (!rc)
        rc = lmr_store_open_write(o->store, o->output_key, 0, &sw, err);
    for (uint32_t r = 0; !rc && r < o->partitions; r++) {
        size_t k = 0;
        for (size_t i = 0; !rc && i < n; i++) {
            const struct lmr_partition_frame *f = &o->sources[i].frames[r];
            if (!f->size_bytes)
                continue;
            if (f->offset > st[i].pos)
                rc = skip_bytes(st[i].reader, f->offset - st[i].pos, &gap_bytes, o->sources[i].key, err);
            st[i].pos = f->offset + f->size_bytes;
            streams[k++] = (struct lmr_merge_stream){st[i].reader, o->sources[i].key, f->size_bytes};
        }
        memset(&out_frames[r], 0, sizeof out_frames[r]);
        out_frames[r].offset = off;
        if (rc || !k)
            continue;
        lmr_frame_writer_begin(fw, sw, &off);
        rc = lmr_merger_open_streams(m, streams, k, err);
        if (!rc)
            rc = lmr_merger_drain(m, o->ops, o->job_state, fw, &stats->records_in, err);
        lmr_merger_close(m);
        if (!rc)
            rc = lmr_frame_writer_end(fw, &out_frames[r], err);
        if (!rc && !out_frames[r].size_bytes)
            out_frames[r].offset = off;
        stats->records_out += out_frames[r].records;
    }
    if (!rc)
        rc = lmr_shuffle_write_index(sw, &off, out_frames, o->partitions, err);
    if (!rc) {
        rc = lmr_store_commit(sw, err);
        sw = NULL;
    }
    if (sw)
        lmr_store_abort(sw);
    if (m)
        stats->bytes_in = lmr_merger_bytes_fetched(m) + gap_bytes;
    stats->bytes_out = rc ? 0 : off;
    for (size_t i = 0; st && i < n; i++)
        if (st[i].reader)
            lmr_store_close_read(st[i].reader);
    lmr_merger_destroy(m);
    lmr_frame_writer_destroy(fw);
    free(st);
    free(streams);
    if (rc)
        lmr_err_prefix(err, "merging %zu shuffle objects into %s", n, o->output_key);
    return rc;
}
