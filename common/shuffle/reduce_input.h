/*
 * The reduce side of the shuffle: one partition's frames from every committed map object,
 * fetched by ranged reads, decoded streaming and merged by key (k-way heap merge), handed to the
 * reduce handler one key group at a time.
 *
 * Memory stays within memory_limit_bytes whatever the partition size: each merged frame costs
 * one frame reader (lmr_frame_reader_memory_bytes: a zstd window of 64 KiB plus small
 * buffers, ~0.5 MiB). When nframes readers do not fit, frames are first merged in groups into temporary
 * runs under scratch_prefix (as many passes as needed); the runs are deleted by destroy.
 *
 * Latency: each merge opens its frames opens_in_flight at once (on S3 each open waits ~20-50 ms
 * for its first byte; one after another that was most of a reducer's time), and the frames'
 * store readers share read_ahead_bytes (the task's read-ahead share of its memory): each gets an
 * equal part (at least LMR_MERGE_READER_MIN_IN_FLIGHT_BYTES, so the fan-in is also at most
 * read_ahead_bytes / that), which caps its ranged GETs in flight.
 */
#ifndef LMR_SHUFFLE_REDUCE_INPUT_H
#define LMR_SHUFFLE_REDUCE_INPUT_H

#include "lambdamr/job.h"
#include "shuffle/frame.h"
#include "store/store.h"
#include "util/result.h"

/* One map task's frame for this partition. */
struct lmr_frame_ref {
    const char *store_root;      /* Optional: root_uri of the store holding it; must match the store's when set */
    const char *key;             /* object key */
    uint64_t offset, size_bytes; /* from the object's index; size 0 = empty (never fetched) */
};

struct lmr_reduce_input_options {
    const struct lmr_job_ops *ops;      /* Required */
    void *job_state;                    /* Optional: passed to combine */
    struct lmr_store *store;            /* Required: all frames of a job live in one store */
    const struct lmr_frame_ref *frames; /* Required unless nframes == 0; copied */
    size_t nframes;
    size_t memory_limit_bytes;  /* Required: at least lmr_reduce_input_min_memory_bytes() */
    const char *scratch_prefix; /* Required when a multi-pass merge may be needed: key prefix for temporary runs */
    int zstd_level;             /* Optional: level of temporary runs, 0 = lmr_shuffle_level_for the store */
    uint64_t read_ahead_bytes;  /* Optional: bytes all frame readers together may have in flight; 0 = no cap */
    unsigned opens_in_flight;   /* Optional: frames opened at once; 0 = LMR_MERGE_OPENS_IN_FLIGHT, 1 = in turn */
};

struct lmr_reduce_input_stats {
    uint64_t frames;            /* frames merged (non-empty ones) */
    uint64_t bytes_fetched;     /* compressed bytes read from the store, including temporary runs */
    uint64_t records;           /* records read in the final merge */
    uint64_t groups;            /* key groups handed out */
    uint64_t merge_passes;      /* intermediate passes (0: a single merge) */
    uint64_t scratch_bytes;     /* bytes written to temporary runs */
    uint64_t peak_memory_bytes; /* accounted memory (readers and their read-ahead, writer) */
};

struct lmr_reduce_input;

/** The smallest memory_limit_bytes accepted (two readers and a run writer). */
size_t lmr_reduce_input_min_memory_bytes(void);

/**
 * Open the reduce input: validates options and, when the frames do not fit the budget at once,
 * runs the intermediate merge passes (so this call can take time and write to the store).
 */
enum lmr_result lmr_reduce_input_new(const struct lmr_reduce_input_options *opts, struct lmr_reduce_input **out,
                                     struct lmr_err *err);
/**
 * The next key group in key order. *key is valid until the next call; *values iterates the group's
 * values (each value valid until the next value is fetched; values left unread are skipped). For a
 * combining job the group holds exactly one value: the combined accumulator.
 * @return LMR_OK with *has_group false at the end; LMR_ERR_FORMAT for corrupt frames.
 */
enum lmr_result lmr_reduce_input_next(struct lmr_reduce_input *ri, bool *has_group, struct lmr_slice *key,
                                      struct lmr_values **values, struct lmr_err *err);
/** The sticky error of the values iterator (lmr_values cannot return errors): check it after each group. */
enum lmr_result lmr_reduce_input_status(struct lmr_reduce_input *ri, struct lmr_err *err);
/** Statistics so far. */
void lmr_reduce_input_stats(const struct lmr_reduce_input *ri, struct lmr_reduce_input_stats *stats);
/** Free the input and delete its temporary runs. NULL-safe. */
void lmr_reduce_input_destroy(struct lmr_reduce_input *ri);

#endif
