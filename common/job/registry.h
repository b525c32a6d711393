/* Built-in jobs by name, and user plugins (shared objects) by path. */
#ifndef LMR_JOB_REGISTRY_H
#define LMR_JOB_REGISTRY_H

#include <stdbool.h>
#include <stdio.h>

#include "lambdamr/job.h"
#include "util/result.h"

/**
 * The built-in job called name, or a plugin: $LAMBDA_TASK_ROOT/plugins/BASE.so when that exists
 * (BASE: name's last path component without ".so"), else name itself when it contains '/' or
 * ends in ".so". Plugins are loaded once per process; one built for another LMR_JOB_ABI_VERSION
 * is refused (LMR_ERR_INVALID, naming both versions).
 */
enum lmr_result lmr_job_find(const char *name, const struct lmr_job_ops **out, struct lmr_err *err);
/** Whether name names a plugin file (contains '/' or ends in ".so"). */
bool lmr_job_is_plugin_name(const char *name);
/** A plugin name's base: "dir/topk.so" -> "topk" (caller frees; NULL when out of memory). */
char *lmr_job_plugin_base(const char *name);
/** Print "  name  summary" lines for the built-ins. */
void lmr_job_list(FILE *f);

/* The built-ins (common/job/<name>.c). */
extern const struct lmr_job_ops lmr_job_wordcount;
extern const struct lmr_job_ops lmr_job_scan, lmr_job_aggregate;
extern const struct lmr_job_ops lmr_job_exec, lmr_job_exec_map; /* common/job/exec.c */

#endif
