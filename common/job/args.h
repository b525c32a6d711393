/* Job arguments (--delimiter , --key 1:8 …): a small name -> value map carried in the job manifest. */
#ifndef LMR_JOB_ARGS_H
#define LMR_JOB_ARGS_H

#include <jansson.h>

#include "lambdamr/job.h"
#include "util/result.h"

struct lmr_job_args *lmr_job_args_new(void);
void lmr_job_args_destroy(struct lmr_job_args *args);
/**
 * Set name to value (copied, any bytes but NUL); replaces an earlier value.
 * @return LMR_ERR_INVALID if name is empty or not UTF-8, LMR_ERR_TOO_LARGE past 64 KiB.
 */
enum lmr_result lmr_job_args_set(struct lmr_job_args *args, const char *name, const char *value);
/** A JSON object {name: value, …} (new reference); a value that is not UTF-8 as {"base64": "..."}. */
json_t *lmr_job_args_to_json(const struct lmr_job_args *args);
/** Parse from a JSON object of strings (or {"base64": "..."} values), as lmr_job_args_to_json makes. */
enum lmr_result lmr_job_args_from_json(const json_t *obj, struct lmr_job_args **out, struct lmr_err *err);

#endif
