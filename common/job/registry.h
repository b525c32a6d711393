/* Built-in jobs by name, and user plugins (shared objects) by path. */
#ifndef LMR_JOB_REGISTRY_H
#define LMR_JOB_REGISTRY_H

#include <stdio.h>

#include "lambdamr/job.h"
#include "util/result.h"

/** The built-in job called name, or a plugin when name contains '/' or ends in ".so". */
enum lmr_result lmr_job_find(const char *name, const struct lmr_job_ops **out, struct lmr_err *err);
/** Print "  name  summary" lines for the built-ins. */
void lmr_job_list(FILE *f);

/* The built-ins (common/job/<name>.c). */
extern const struct lmr_job_ops lmr_job_wordcount;
extern const struct lmr_job_ops lmr_job_scan, lmr_job_aggregate;

#endif
