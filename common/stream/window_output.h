/*
 * A window's output, written by the stream function itself (so a real Kinesis event source
 * mapping, which only invokes the function, gets its windows committed), and by the poller
 * through the same calls.
 *
 * Layout under the output prefix:
 *   window=<start ISO-8601>/part-00000                                   the window's output
 *   _lambdamr/windows/window=<start>/<shardId>/final-<run>L<lane>.kv    a lane's last part
 *   _lambdamr/windows/window=<start>/<shardId>/early-<run>L<lane>-<first>.kv
 *                                                    a part ended early (state over its limit)
 * Every part is written create-only, named only from what its final invoke carries (window,
 * shard, and the state's lane, run and first sequence number), so a retried final invoke finds
 * its part written and writes nothing. After writing a final part, the function checks whether
 * every shard of the window has its final parts (lmr_stream_window_complete); the one that
 * completes the set merges every part into the window output, create-only
 * (lmr_stream_window_merge): two completers race harmlessly, the first commit wins and the
 * output is written once. Parts are deleted after the output exists.
 *
 * A part object: "LMRW1\n", one JSON line {"job":NAME,"args":{...},"records":N},
 * then the packed entries of lmr_stream_state_pack. The job in the header lets
 * `lambdamr stream merge OUTPUT` finish a window left unmerged without being told the job.
 */
#ifndef LMR_STREAM_WINDOW_OUTPUT_H
#define LMR_STREAM_WINDOW_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lambdamr/job.h"
#include "store/store.h"
#include "stream/state.h"
#include "util/result.h"

#define LMR_STREAM_PART_MAX_BYTES (16u * 1024u * 1024u) /* a part holds at most a 1 MB state's entries */
#define LMR_STREAM_WINDOW_PARTS_MAX 100000              /* parts of one window that a merge reads */

/* Which part a final invoke writes. */
struct lmr_stream_part_id {
    uint64_t window_start_ms; /* Required. */
    const char *shard_id;     /* Required. */
    uint32_t lane;            /* From the state (0 on AWS). */
    const char *run;          /* From the state ("" on AWS and for replayable sources). */
    bool early;               /* isWindowTerminatedEarly: the shard goes on in this window. */
    const char *first_seq;    /* The state's first sequence number (names an early part). */
};

/** The output key of window w: "<prefix>/window=<ISO-8601>/part-00000" (malloc'd). */
char *lmr_stream_window_output_key(const char *prefix, uint64_t window_start_ms);

/**
 * Write st as the part id, create-only. *already (optional) is set when it existed (a retried
 * final invoke): then nothing is written. job_name/args_json describe the job for the header.
 */
enum lmr_result lmr_stream_window_write_part(struct lmr_store *store, const char *prefix,
                                             const struct lmr_stream_part_id *id, const struct lmr_stream_state *st,
                                             const char *job_name, const char *args_json, uint64_t records,
                                             bool *already, struct lmr_err *err);

/**
 * Has every shard in shard_ids[0..n) written the final parts of lanes 0..lanes-1 of run `run`
 * for window w? (One listing of the window's parts.)
 */
enum lmr_result lmr_stream_window_complete(struct lmr_store *store, const char *prefix, uint64_t window_start_ms,
                                           const char *const *shard_ids, size_t n, const char *run, uint32_t lanes,
                                           bool *complete, struct lmr_err *err);

/* What a merge did. */
struct lmr_stream_merge_result {
    bool already;        /* the window output existed: nothing written */
    bool no_parts;       /* nothing to merge (and no output written) */
    uint64_t parts;      /* parts merged */
    uint64_t keys;       /* keys in the output */
    uint64_t records;    /* records the parts say they hold */
    uint64_t other_runs; /* parts of other runs, not merged (an interrupted run's: deleted with the rest) */
};

/**
 * Merge the parts of run `run` of window w with the job's combiner, reduce in key order and
 * commit the window output create-only; then delete every part of the window. A window without
 * parts of that run gets no output (res->no_parts).
 *
 * Why runs: a source whose records get their window when they are read (standard input, a
 * followed file) puts the records a crashed run had read into other windows when they are read
 * again, so a new run must not merge the crashed run's parts; the poller gives such runs a
 * random token. Kinesis records keep their windows (server arrival times), so Kinesis parts
 * have no run ("") and a replayed part finds itself already written.
 */
enum lmr_result lmr_stream_window_merge(struct lmr_store *store, const char *prefix, uint64_t window_start_ms,
                                        const char *run, const struct lmr_job_ops *job, void *job_state,
                                        struct lmr_stream_merge_result *res, struct lmr_err *err);

/**
 * The windows that have parts (merged or not), oldest first; *windows is malloc'd. For
 * `lambdamr stream merge`.
 */
enum lmr_result lmr_stream_window_list(struct lmr_store *store, const char *prefix, uint64_t **windows, size_t *n,
                                       struct lmr_err *err);

/**
 * The job a window's parts were written by (from the first part's header): *job_name is
 * malloc'd, *args a new reference (an object of strings).
 */
enum lmr_result lmr_stream_window_job(struct lmr_store *store, const char *prefix, uint64_t window_start_ms,
                                      char **job_name, json_t **args, struct lmr_err *err);

#endif
