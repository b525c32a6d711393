/*
 * A merge's inputs, read with bounded parallelism. Store calls are synchronous and each waits
 * for S3's first byte, so a small pool of threads shares one store handle (store handles are
 * usable from several threads; the S3 client pools its connections):
 *
 * - lmr_shuffle_parallel: run a step for items 0..n-1 on up to `threads` threads; the merger
 *   opens its frame readers with it (merge.c) and the merge stage its source readers.
 * - the commit records of shuffle objects (map outputs and merge outputs share one format,
 *   docs/FORMATS.md: {"attempt_id", "object", "frames": [[offset, size, records, raw], ...]}):
 *   the coordinator reads M of them to plan the reducers and each merge task reads its group's.
 */
#ifndef LMR_SHUFFLE_MERGE_INPUTS_H
#define LMR_SHUFFLE_MERGE_INPUTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "shuffle/frame.h"
#include "store/store.h"
#include "util/result.h"

/* Threads that read commit records at once (at most; fewer when there are fewer records). */
#define LMR_COMMIT_READ_THREADS 16u
/* The most bytes one commit record may have (about 40 bytes a partition). */
#define LMR_COMMIT_RECORD_MAX_BYTES (16u << 20)

/* Most threads lmr_shuffle_parallel starts. */
#define LMR_SHUFFLE_PARALLEL_MAX_THREADS 64u

/* One item of a parallel step: returns LMR_OK or fails with err filled in. Called from any thread. */
typedef enum lmr_result (*lmr_shuffle_step_fn)(void *ctx, size_t i, struct lmr_err *err);

/**
 * Call step(ctx, i) for every i in [0, n) on up to `threads` threads (capped by
 * LMR_SHUFFLE_PARALLEL_MAX_THREADS and by n; 0 or 1 = in order on this thread). Each item runs
 * at most once; after a failure no item above it starts (those below it all run). If a thread
 * cannot be started, the ones that did (or this thread) do the work. @return LMR_OK, or the
 * failure of the lowest failing index with its message in err (the same whatever the threads'
 * timing).
 */
enum lmr_result lmr_shuffle_parallel(size_t n, unsigned threads, lmr_shuffle_step_fn step, void *ctx,
                                     struct lmr_err *err);

/* One parsed commit record. */
struct lmr_shuffle_commit {
    char *object;                       /* the shuffle object's key */
    struct lmr_partition_frame *frames; /* [partitions] */
};

/**
 * Read and parse the commit records keys[0..n) from store, each with exactly `partitions` frames,
 * on up to `threads` threads (0 = LMR_COMMIT_READ_THREADS, capped by it). out[0..n) receives
 * them (free with lmr_shuffle_commits_free). On failure nothing is returned and err names the
 * first record that failed (a missing one is LMR_ERR_NOT_FOUND, a malformed one LMR_ERR_FORMAT).
 */
enum lmr_result lmr_shuffle_read_commits(struct lmr_store *store, const char *const *keys, size_t n,
                                         uint32_t partitions, unsigned threads, struct lmr_shuffle_commit *out,
                                         struct lmr_err *err);

/** Free what lmr_shuffle_read_commits put into c[0..n). */
void lmr_shuffle_commits_free(struct lmr_shuffle_commit *c, size_t n);

/** A commit record's "frames" array for frames[0..n) (new reference). */
json_t *lmr_shuffle_frames_json(const struct lmr_partition_frame *frames, uint32_t n);

#endif
