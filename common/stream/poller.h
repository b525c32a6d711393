/*
 * The poller: lambdamr's own event source mapping. It reads the shards of a source, batches
 * records with Lambda's rules and names (batch size, batching window, parallelization factor,
 * bisect on error, maximum retries, maximum record age, partial batch responses, on-failure
 * destination), invokes the stream function with the tumbling-window event, carries each
 * shard's window state between invocations, and when a window has closed on every shard makes
 * the final invoke per shard, reduces the states with the job's reduce and commits the window's
 * output once.
 *
 * Exactly-once window output. Outputs are committed create-only at
 *   <output>/window=<start ISO-8601>/part-00000          (key<TAB>value lines, key order)
 * and checkpoints (per-shard sequence numbers) live in the checkpoint store:
 *   <checkpoint>/pending.json     written before the output commit: window + positions after it
 *   <checkpoint>/checkpoint.json  written after the output commit
 * On start, a pending window whose output exists is adopted (the run that wrote it died before
 * its checkpoint), so records up to a committed window are never read again; a window whose
 * output already exists is never written twice. Records after the checkpoint are read again
 * and land in windows that were not committed: nothing lost, nothing counted twice.
 *
 * Parallelization: each shard has `parallelization` lanes; a record goes to lane
 * hash(partitionKey) % parallelization, so records of one key stay in order. Each lane has its
 * own window state (AWS keeps state per shard; a lane is the unit here). Lanes invoke concurrently.
 */
#ifndef LMR_STREAM_POLLER_H
#define LMR_STREAM_POLLER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "lambda/invoker.h"
#include "lambdamr/job.h"
#include "store/store.h"
#include "report/cost.h"
#include "stream/source.h"
#include "util/result.h"

/* Lambda's ranges for the mapping options. */
#define LMR_STREAM_BATCH_SIZE_MAX 10000
#define LMR_STREAM_BATCH_SIZE_DEFAULT 100 /* Lambda's default for Kinesis */
/* The default for standard input and files: Lambda's maximum. A batch takes only what is buffered
   (the batching window is 0), so a slow source still gets small batches and no added latency; a
   fast one amortises the invocation over 10,000 records (an event of ~5 MB of 40-byte lines, cut
   to the 6 MB payload when records are longer). */
#define LMR_STREAM_LOCAL_BATCH_SIZE_DEFAULT 10000
#define LMR_STREAM_BATCH_WINDOW_MAX_S 300
#define LMR_STREAM_PARALLELIZATION_MAX 10
#define LMR_STREAM_MAX_RETRIES_MAX 10000
#define LMR_STREAM_MAX_RECORD_AGE_MIN_S 60
#define LMR_STREAM_MAX_RECORD_AGE_MAX_S 604800
#define LMR_STREAM_WINDOW_MAX_S 900 /* TumblingWindowInSeconds: 0-900 */

struct lmr_stream_shard_stats {
    char id[LMR_STREAM_SHARD_ID_MAX];
    uint64_t records;       /* read from this shard */
    uint64_t millis_behind; /* iterator age */
    bool ended;
};

/* Live figures, passed to on_progress and returned at the end. */
struct lmr_stream_stats {
    uint64_t records_read;
    uint64_t records_processed; /* taken into a window state */
    uint64_t records_failed;    /* given up on (retries exhausted, too old): see the on-failure destination */
    uint64_t invocations;
    struct lmr_billing_totals billing; /* what those invocations bill (Init + Duration, at their memory) */
    uint64_t invoke_failures;          /* function errors, transport errors, item failures */
    uint64_t windows_committed;
    uint64_t windows_already_committed; /* re-closed after a restart; output left as it was */
    uint64_t windows_terminated_early;
    uint64_t windows_merged_by_poller; /* the function did not see the window complete; the poller merged it */
    uint64_t last_window_start_ms;
    uint64_t last_commit_delay_ms; /* commit time minus the window's end */
    double elapsed_s;
    size_t n_shards;
    struct lmr_stream_shard_stats *shards; /* valid during the callback / until lmr_stream_stats_clean_up */
};

void lmr_stream_stats_clean_up(struct lmr_stream_stats *s);

/* One invocation the poller made, as on_invocation sees it (for the stream report). */
struct lmr_stream_invocation {
    const char *shard_id;
    uint32_t lane;                       /* the shard's lane (parallelization): one invocation at a time per lane */
    uint64_t window_start_ms;            /* the tumbling window the batch belongs to */
    bool final, terminated_early;        /* a final invoke (window close, or a state that reached its limit) */
    size_t records;                      /* records in the batch */
    uint64_t start_ms, end_ms;           /* wall clock: invoke sent, answer received */
    const struct lmr_invoke_result *res; /* the REPORT figures and the payload (valid during the callback) */
    const char *error;                   /* why the invocation failed; NULL when the function answered */
};

struct lmr_stream_poller_options {
    struct lmr_stream_source *source;             /* Required. */
    struct lmr_invoker *invoker;                  /* Required. */
    const char *function_name;                    /* Required: the stream function to invoke. */
    const struct lmr_job_ops *job;                /* Required: its reduce runs at window close. */
    void *job_state;                              /* Optional: from job->setup. */
    struct lmr_store *output;                     /* Required. */
    const char *output_prefix;                    /* Optional: key prefix in output ("" = root). */
    struct lmr_store *checkpoint;                 /* Optional: default output. */
    const char *checkpoint_prefix;                /* Optional: default "<output_prefix>/_checkpoint". */
    uint64_t window_ms;                           /* Required: tumbling window length (1 s - 900 s). */
    uint32_t batch_size;                          /* Optional: 1-10,000, default 100 (10,000 for stdin and files). */
    uint64_t batch_window_ms;                     /* Optional: MaximumBatchingWindowInSeconds, 0-300 s, default 0. */
    uint32_t parallelization;                     /* Optional: 1-10 lanes per shard, default 1. */
    struct lmr_stream_position starting_position; /* Where a shard without a checkpoint starts. */
    bool bisect_on_error;                         /* Optional: split a failing batch in two and retry the halves. */
    int64_t max_retries;                          /* Optional: -1 = until the record expires (AWS default), 0-10,000. */
    int64_t max_record_age_ms;                    /* Optional: -1 = no limit (default), else 60 s - 604,800 s. */
    bool on_failure_destination;   /* Optional: write failed batch descriptors to <checkpoint>/failures/. */
    uint64_t close_grace_ms;       /* Optional: how long after a window's end a caught-up shard may still
                                      deliver records for it (default 0 for local sources, 2 s for Kinesis). */
    uint64_t relist_interval_ms;   /* Optional: how often to look for new shards (default 10 s). */
    const char *region;            /* Optional: awsRegion in events. */
    volatile sig_atomic_t *stop;   /* Optional: set non-zero to stop (open windows are not committed). */
    bool exit_when_drained;        /* Optional: return once every shard has ended and every window is committed. */
    uint64_t progress_interval_ms; /* Optional: default 1000. */
    void (*on_progress)(void *user, const struct lmr_stream_stats *stats); /* Optional. */
    void (*on_window)(void *user, uint64_t window_start_ms, uint64_t records, bool already_committed,
                      const char *key); /* Optional: after each window commit. */
    void (*on_invocation)(void *user, const struct lmr_stream_invocation *inv); /* Optional: after each invocation,
                                                                                    on the poller's thread. */
    void *user;
};

/** Check the options against Lambda's ranges. */
enum lmr_result lmr_stream_poller_check(const struct lmr_stream_poller_options *o, struct lmr_err *err);

/**
 * Run the mapping until *stop is set, or (exit_when_drained) every shard has ended and every
 * window has been committed, or an error that retrying cannot fix (store failures).
 * stats (optional) receives the final figures; free with lmr_stream_stats_clean_up.
 */
enum lmr_result lmr_stream_poll(const struct lmr_stream_poller_options *o, struct lmr_stream_stats *stats,
                                struct lmr_err *err);

#endif
