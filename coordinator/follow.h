/*
 * Following a job from its records in the store, as the driver, `lambdamr wait` and `status`
 * do: the job record (WORK/job.json: status, phase, progress) and the output lease (is anyone
 * still driving the job?). No process state: any process that can read the store can follow.
 */
#ifndef LMR_COORDINATOR_FOLLOW_H
#define LMR_COORDINATOR_FOLLOW_H

#include <jansson.h>
#include <stdbool.h>

#include "coordinator.h"
#include "store/store.h"

struct lmr_follow_options {
    struct lmr_store *work_store;   /* Required */
    const char *record_key;         /* Required: WORK/job.json */
    struct lmr_store *output_store; /* Required */
    const char *lease_key;          /* Required: OUTPUT/_lambdamr/lease.json */
    const char *report_key;         /* Required: OUTPUT/_lambdamr/report.json */
    const char *job_id;             /* Required: for messages */
    uint32_t poll_ms;               /* Optional: default 10 on a file store, 200 on S3 */
    /* Optional: called with the job record's progress after each poll. */
    void (*progress)(void *user_data, const struct lmr_progress *p);
    void *progress_user_data;
};

/** Read the job record (new reference; NULL with LMR_ERR_NOT_FOUND when there is none yet). */
enum lmr_result lmr_job_record_read(struct lmr_store *work, const char *key, json_t **record, struct lmr_err *err);

/**
 * Wait until the job is no longer running. On success *report is the job report (new
 * reference). @return LMR_OK when it succeeded; its error (from the job record) when it failed
 * or was cancelled; LMR_ERR_TIMEOUT when nobody drives it any more (the lease expired while the
 * record still says running: rerun the same command to resume).
 */
enum lmr_result lmr_follow_job(const struct lmr_follow_options *opts, json_t **report, struct lmr_err *err);

#endif
