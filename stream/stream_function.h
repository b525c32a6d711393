/*
 * The stream function (role "stream" of the bootstrap binary): a Lambda handler for a Kinesis
 * event source mapping with tumbling windows. For each record (each line of its data) it runs
 * the job's map and combines the pairs into the window state carried by the event, then
 * returns {state, batchItemFailures}. On the final invoke of a window (isFinalInvokeForWindow)
 * it writes the state as this shard's part of the window, create-only (common/stream/
 * window_output.h: a retried final invoke writes nothing twice); an early-terminated window
 * (isWindowTerminatedEarly) stops there, a last part goes on to check whether every shard of
 * the window has written its last part, and if so merges the parts into the window output.
 * Which shards a window has: the event's one shard for lambdamr's local sources (region
 * "local" in the eventSourceARN), else Kinesis ListShards for the shards open at the window's
 * start or end (lineage included: a parent that closed in the window and its children).
 *
 * Which job, with which arguments, comes from the function's environment, so the same binary
 * can be attached to a real event source mapping on AWS:
 *   LMR_STREAM_JOB        job name or plugin path (required), e.g. "wordcount"
 *   LMR_STREAM_ARGS       job arguments as a JSON object of strings, e.g. {"delimiter":","}
 *   LMR_STREAM_STATE_MAX  state limit in bytes (default and maximum 1 MiB, as on AWS)
 *   LMR_STREAM_OUTPUT     where window outputs go (the `--output` URI: a directory, file:///dir,
 *                         s3://bucket/prefix); required for final invokes
 *   LMR_STREAM_FAIL_MATCH test hook: records whose data contains this string are reported in
 *                         batchItemFailures (a "poison" record)
 *   LMR_STREAM_FORGET_EVERY test hook: every Nth invocation of this environment forgets the states it
 *                         keeps by reference (the poller must rebuild them)
 * On AWS the function's role needs s3:PutObject/GetObject/ListBucket/DeleteObject on the output
 * and kinesis:ListShards/DescribeStreamSummary on the stream.
 */
#ifndef LMR_STREAM_FUNCTION_H
#define LMR_STREAM_FUNCTION_H

#include <stddef.h>
#include <stdint.h>

#include "lambda/runtime.h"
#include "lambdamr/job.h"
#include "util/result.h"

struct lmr_job_args;
struct lmr_store;
struct lmr_stream_fn_cache;

#define LMR_STREAM_FN_SHARD_ID_MAX 128

/**
 * Which shards window [start, end) of the stream has (their final parts complete the window).
 * *ids is malloc'd, LMR_STREAM_FN_SHARD_ID_MAX bytes per id.
 */
typedef enum lmr_result (*lmr_stream_window_shards_fn)(void *user, const char *event_source_arn, const char *shard_id,
                                                       uint64_t window_start_ms, uint64_t window_end_ms,
                                                       char (**ids)[LMR_STREAM_FN_SHARD_ID_MAX], size_t *n,
                                                       struct lmr_err *err);

/* What the handler runs. Initialise with lmr_stream_handler_config_init (or _from_env). */
struct lmr_stream_handler_config {
    const struct lmr_job_ops *job;             /* required; must have a combiner (value_size > 0) */
    void *job_state;                           /* from job->setup; owned by the config */
    size_t state_max_bytes;                    /* 0 = LMR_STREAM_STATE_MAX_BYTES */
    char *fail_match;                          /* optional test hook (see above); owned */
    unsigned forget_every;                     /* optional test hook: every Nth invocation forgets the states
                                                  kept by reference, as a cold environment would (0 = never) */
    char *job_name;                            /* for window part headers; owned */
    char *args_json;                           /* the job's arguments as a JSON object; owned */
    struct lmr_store *output;                  /* where windows are committed (NULL: final invokes fail); owned */
    char *output_prefix;                       /* key prefix in output; owned */
    struct lmr_stream_fn_cache *cache;         /* clients kept by a warm environment; owned */
    lmr_stream_window_shards_fn window_shards; /* optional: default from the eventSourceARN (see above) */
    void *window_shards_user;
};

/** Commit windows to the output at uri (a directory, file:///dir or s3://bucket/prefix). */
enum lmr_result lmr_stream_handler_config_set_output(struct lmr_stream_handler_config *cfg, const char *uri,
                                                     struct lmr_err *err);

/** Set up cfg for job with args (runs job->setup). Free with lmr_stream_handler_config_clean_up. */
enum lmr_result lmr_stream_handler_config_init(struct lmr_stream_handler_config *cfg, const struct lmr_job_ops *job,
                                               const struct lmr_job_args *args, struct lmr_err *err);
/** Same, from LMR_STREAM_JOB / _ARGS / _OUTPUT / _STATE_MAX / _FAIL_MATCH. */
enum lmr_result lmr_stream_handler_config_from_env(struct lmr_stream_handler_config *cfg, struct lmr_err *err);
void lmr_stream_handler_config_clean_up(struct lmr_stream_handler_config *cfg);

/** @return LMR_OK if job can run as a stream job (it needs a combiner and a reduce). */
enum lmr_result lmr_stream_check_job(const struct lmr_job_ops *job, struct lmr_err *err);

/**
 * The handler (lmr_handler_fn). user_data: a struct lmr_stream_handler_config *, or NULL to
 * use one built once from the environment.
 */
enum lmr_result lmr_stream_handler(void *user_data, const struct lmr_runtime_context *ctx, const char *event,
                                   size_t event_len, struct lmr_buf *response, struct lmr_err *err);

#endif
