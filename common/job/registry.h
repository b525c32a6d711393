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
/**
 * Set a task up: ops->setup(state, args) (state NULL when the job has no setup), then switch *ops
 * to the variant of the job that this state runs with. A built-in may need a smaller accumulator
 * for some arguments (aggregate's sum, min, max and count: 8 bytes instead of avg's 16), and
 * narrows its state to match. Every task of a batch job (map, merge, reduce) is set up this
 * way, so all of them agree on the value size; a plain ops->setup keeps the declared size.
 * @return 0, or non-zero with a sentence in errbuf (the job's own).
 */
int lmr_job_setup(const struct lmr_job_ops **ops, void **state, const struct lmr_job_args *args, char *errbuf,
                  size_t errbuf_len);
/** Whether name names a plugin file (contains '/' or ends in ".so"). */
bool lmr_job_is_plugin_name(const char *name);
/** A plugin name's base: "dir/topk.so" -> "topk" (caller frees; NULL when out of memory). */
char *lmr_job_plugin_base(const char *name);
/** Print "  name  summary" lines for the built-ins. */
void lmr_job_list(FILE *f);

/* The built-ins (common/job/<name>.c). */
extern const struct lmr_job_ops lmr_job_wordcount;
extern const struct lmr_job_ops lmr_job_scan, lmr_job_aggregate;
/** aggregate's ops for a set-up state (see lmr_job_setup; narrows the state unless --op avg). */
const struct lmr_job_ops *lmr_job_aggregate_for_task(void *state);
extern const struct lmr_job_ops lmr_job_exec, lmr_job_exec_map; /* common/job/exec.c */
extern const struct lmr_job_ops lmr_job_sort;                   /* common/job/sort.c */
extern const struct lmr_job_ops lmr_job_join, lmr_job_join_map; /* common/job/join.c */
extern const struct lmr_job_ops lmr_job_bdb_q3;                 /* common/job/bdb_q3.c */

/** Whether the job partitions by ranges that the planner samples from the input (sort). */
bool lmr_job_wants_ranges(const struct lmr_job_ops *ops);
/**
 * Whether the output of the job called name with these arguments cannot depend on where its map
 * tasks' inputs are cut (what `--rebalance auto` splits): combiners that are exact and order-free,
 * word count's integer counts and aggregate's count, min and max. Not floating-point sums
 * (aggregate sum and avg: a cut changes how partial sums are associated, so the last digit may
 * change), not jobs whose reducers see values in map task order (a tail's values come after the
 * other tasks'), and not plugins (they have no way to say so yet).
 */
bool lmr_job_cut_invariant(const char *name, const struct lmr_job_args *args);
/** aggregate's part of lmr_job_cut_invariant: --op count, min or max. */
bool lmr_job_aggregate_cut_invariant(const struct lmr_job_args *args);

#endif
