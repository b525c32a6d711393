/*
 * What every task of the reducer role (a reduce task, reducer.c; a merge task of the multi-stage
 * exchange, merge_task.c) sets up around its work, in one place: the captured task log, the
 * job's ops and state, the work store, the memory budget and how a merge opens its inputs.
 * Private to reducer/.
 */
#ifndef LMR_REDUCER_TASK_SETUP_H
#define LMR_REDUCER_TASK_SETUP_H

#include "job/task.h"
#include "lambda/memory.h"
#include "lambda/runtime.h"
#include "lambdamr/job.h"
#include "store/store_set.h"
#include "util/buf.h"

/* The set-up of one reducer-role task. Zero it, then lmr_reducer_task_begin. */
struct lmr_reducer_task_env {
    const struct lmr_job_ops *ops; /* the job's (after set-up) */
    void *job_state;               /* from ops->setup, or NULL */
    struct lmr_store_set stores;   /* every store the task opened (the work store first) */
    struct lmr_store *work;        /* the job's work store, in stores */
    struct lmr_task_budget budget; /* from the function's memory size (the job's when not told) */
    /* Inputs a merge opens at once: LMR_MERGE_OPENS_IN_FLIGHT, or the environment's
       LMR_MERGE_OPENS_IN_FLIGHT (1-64; anything else is warned about and ignored). */
    unsigned opens_in_flight;
    struct lmr_buf log; /* the task's log lines, captured from begin to end */
    double started_ms;  /* when the task's handler started (lmr_mono_ms) */
};

/** Start capturing the task's log (call before its first log line); started_ms is lmr_mono_ms() at its start. */
void lmr_reducer_task_begin(struct lmr_reducer_task_env *env, double started_ms);

/**
 * Find the job, run its setup with the job's arguments, open the work store and derive the
 * budget from ctx's memory size (NULL or 0: the job's memory_mb).
 * @return LMR_ERR_INVALID when the job's setup refuses its arguments (err says why).
 */
enum lmr_result lmr_reducer_task_setup(struct lmr_reducer_task_env *env, const struct lmr_job_common *job,
                                       const struct lmr_runtime_context *ctx, struct lmr_err *err);

/**
 * End the task: tear down the job state, store the log as WORK/logs/<task_name>/<attempt_id>.log
 * with how the task ended (r, err), close every store. Call after the task freed what uses them.
 */
void lmr_reducer_task_end(struct lmr_reducer_task_env *env, const struct lmr_job_common *job, const char *task_name,
                          const char *attempt_id, enum lmr_result r, const struct lmr_err *err);

#endif
