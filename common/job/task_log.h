/*
 * A task's log lines in its job's work location, WORK/logs/<task>/<attempt id>.log, so that
 * `lambdamr logs OUTPUT [--task m-00003]` works the same with every back-end (CloudWatch or
 * the embedded service's log files are not needed). A handler starts a capture when it starts
 * and writes the lines (its own log lines, then one line with the outcome) when it ends.
 */
#ifndef LMR_JOB_TASK_LOG_H
#define LMR_JOB_TASK_LOG_H

#include "job/task.h"
#include "store/store.h"
#include "util/buf.h"

#define LMR_TASK_LOG_MAX_BYTES (256u * 1024)

/** Start capturing log lines into buf (lmr_buf_init'ed by the caller with LMR_TASK_LOG_MAX_BYTES). */
void lmr_task_log_begin(struct lmr_buf *buf);

/**
 * Stop capturing and store the lines as WORK/logs/<task>/<attempt id>.log, with a last line that
 * says how the task ended (r, err). Failures to store are only logged: a log never fails a task.
 */
void lmr_task_log_end(struct lmr_buf *buf, struct lmr_store *work, const struct lmr_job_common *job, const char *task,
                      const char *attempt_id, double started_ms, enum lmr_result r, const struct lmr_err *err);

#endif
