/*
 * The stream function (role "stream" of the bootstrap binary): a Lambda handler for a Kinesis
 * event source mapping with tumbling windows. For each record (each line of its data) it runs
 * the job's map and combines the pairs into the window state carried by the event, then
 * returns {state, batchItemFailures}. On the final invoke of a window it returns the state as
 * it is: the poller reduces the states of every shard and commits the window's output.
 *
 * Which job, with which arguments, comes from the function's environment, so the same binary
 * can be attached to a real event source mapping on AWS:
 *   LMR_STREAM_JOB        job name or plugin path (required), e.g. "wordcount"
 *   LMR_STREAM_ARGS       job arguments as a JSON object of strings, e.g. {"delimiter":","}
 *   LMR_STREAM_STATE_MAX  state limit in bytes (default and maximum 1 MiB, as on AWS)
 *   LMR_STREAM_FAIL_MATCH test hook: records whose data contains this string are reported in
 *                         batchItemFailures (a "poison" record)
 */
#ifndef LMR_STREAM_FUNCTION_H
#define LMR_STREAM_FUNCTION_H

#include <stddef.h>

#include "lambda/runtime.h"
#include "lambdamr/job.h"
#include "util/result.h"

struct lmr_job_args;

/* What the handler runs. Initialise with lmr_stream_handler_config_init (or _from_env). */
struct lmr_stream_handler_config {
    const struct lmr_job_ops *job; /* required; must have a combiner (value_size > 0) */
    void *job_state;               /* from job->setup; owned by the config */
    size_t state_max_bytes;        /* 0 = LMR_STREAM_STATE_MAX_BYTES */
    char *fail_match;              /* optional test hook (see above); owned */
};

/** Set up cfg for job with args (runs job->setup). Free with lmr_stream_handler_config_clean_up. */
enum lmr_result lmr_stream_handler_config_init(struct lmr_stream_handler_config *cfg, const struct lmr_job_ops *job,
                                               const struct lmr_job_args *args, struct lmr_err *err);
/** Same, from LMR_STREAM_JOB / LMR_STREAM_ARGS / LMR_STREAM_STATE_MAX / LMR_STREAM_FAIL_MATCH. */
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
