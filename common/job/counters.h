/*
 * The framework's side of struct lmr_job_counters (include/lambdamr/job.h): named user counters
 * (lmr_job_count) and the task's error sentence (lmr_job_error), allocated on first use.
 */
#ifndef LMR_JOB_COUNTERS_H
#define LMR_JOB_COUNTERS_H

#include <jansson.h>

#include "lambdamr/job.h"

#define LMR_JOB_COUNTERS_MAX 64      /* named counters per job */
#define LMR_JOB_COUNTER_NAME_MAX 64  /* bytes per name */
#define LMR_JOB_ERROR_MAX_BYTES 1024 /* lmr_job_error's sentence */

/** The named counters as a JSON object {name: count} (new reference; empty when none). */
json_t *lmr_job_counters_to_json(const struct lmr_job_counters *c);
/** Add every {name: count} of obj (a task response's "counters") into acc (a JSON object). */
void lmr_job_counters_sum_json(json_t *acc, const json_t *obj);
/** The sentence set by lmr_job_error, or NULL. */
const char *lmr_job_counters_error(const struct lmr_job_counters *c);
/** Free the private part; the struct can be reused (all counts back to zero). */
void lmr_job_counters_clean_up(struct lmr_job_counters *c);

#endif
