/*
 * The merge stage of the multi-stage exchange (docs/ARCHITECTURE.md, "The exchange"): one merge
 * task merges a group of G shuffle objects (map outputs, R frames each) into ONE shuffle object
 * with R frames, the same layout as a map output (frame.h), so reducers read it as they read a
 * map output. Each source object is read sequentially with one ranged read over its frames (not
 * one read per frame): the stage's requests grow with the objects, not with objects x partitions.
 *
 * Partition r of the output is the k-way merge of partition r of every source, in source order
 * for equal keys (the order a reducer merging the sources directly would give), combined with
 * the job's combiner when it has one.
 *
 * Memory: one frame reader (lmr_frame_reader_memory_bytes) and one store reader per source,
 * one frame writer. The store readers share read_ahead_bytes (each source's reader may have
 * requested at most an equal part of it ahead of the merge, at least
 * LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES) and are opened opens_in_flight at once: on S3 each open
 * waits for its first byte, which one after another was G first-byte latencies per task.
 */
#ifndef LMR_SHUFFLE_MERGE_STAGE_H
#define LMR_SHUFFLE_MERGE_STAGE_H

#include "lambdamr/job.h"
#include "shuffle/frame.h"
#include "store/store.h"
#include "util/result.h"

/* The most sources one merge task merges (one frame reader and one store reader each). */
#define LMR_MERGE_FAN_IN_MAX 512u

/* One input of a merge: a shuffle object and where its partitions' frames are. */
struct lmr_merge_stage_source {
    const char *key;                          /* object key in the store */
    const struct lmr_partition_frame *frames; /* its `partitions` frames (from its commit record) */
};

struct lmr_merge_stage_options {
    const struct lmr_job_ops *ops;                /* Required: key order, combiner */
    void *job_state;                              /* Optional: passed to combine */
    struct lmr_store *store;                      /* Required: holds the sources and the output */
    const struct lmr_merge_stage_source *sources; /* Required unless nsources == 0 */
    size_t nsources;                              /* at most LMR_MERGE_FAN_IN_MAX */
    uint32_t partitions;                          /* Required: R, the frames of every source */
    const char *output_key;                       /* Required: the merged object (written, then committed) */
    int zstd_level;                               /* Optional: 0 = lmr_shuffle_level_for the store */
    uint64_t read_ahead_bytes; /* Optional: bytes all source readers together may have in flight; 0 = no cap */
    unsigned opens_in_flight;  /* Optional: sources opened at once; 0 = LMR_MERGE_OPENS_IN_FLIGHT, 1 = in turn */
};

struct lmr_merge_stage_stats {
    uint64_t records_in, records_out; /* records read from the sources, written to the output */
    uint64_t bytes_in, bytes_out;     /* compressed bytes read, bytes of the output object */
};

/**
 * Merge the sources into output_key and describe its frames in out_frames[0..partitions). The
 * object is written whole or not at all (on failure nothing is committed). A source whose frames
 * overlap or lie outside the order of partitions is LMR_ERR_FORMAT naming the object.
 */
enum lmr_result lmr_merge_stage_run(const struct lmr_merge_stage_options *opts, struct lmr_partition_frame *out_frames,
                                    struct lmr_merge_stage_stats *stats, struct lmr_err *err);

#endif
