/* The set-up around a reducer-role task (see task_setup.h). */
#include "task_setup.h"

#include <stdio.h>
#include <stdlib.h>

#include "job/registry.h"
#include "job/task_log.h"
#include "shuffle/merge.h"
#include "util/log.h"
#include "util/misc.h"

void lmr_reducer_task_begin(struct lmr_reducer_task_env *env, double started_ms)
{
    env->started_ms = started_ms;
    lmr_buf_init(&env->log, LMR_TASK_LOG_MAX_BYTES);
    lmr_task_log_begin(&env->log);
}

static unsigned opens_in_flight(void)
{
    const char *v = getenv("LMR_MERGE_OPENS_IN_FLIGHT");
    if (!v || !*v)
        return LMR_MERGE_OPENS_IN_FLIGHT;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || n < 1 || n > LMR_MERGE_OPENS_IN_FLIGHT_MAX) {
        LMR_WARN("ignoring LMR_MERGE_OPENS_IN_FLIGHT='%s': not a whole number from 1 to %u; using %u", v,
                 LMR_MERGE_OPENS_IN_FLIGHT_MAX, LMR_MERGE_OPENS_IN_FLIGHT);
        return LMR_MERGE_OPENS_IN_FLIGHT;
    }
    return (unsigned)n;
}

enum lmr_result lmr_reducer_task_setup(struct lmr_reducer_task_env *env, const struct lmr_job_common *job,
                                       const struct lmr_runtime_context *ctx, struct lmr_err *err)
{
    env->budget = lmr_task_budget(ctx ? ctx->memory_size_mb : 0, job->memory_mb);
    env->opens_in_flight = opens_in_flight();
    enum lmr_result r = lmr_job_find(job->job_name, &env->ops, err);
    if (r)
        return r;
    char msg[512] = "";
    if (lmr_job_setup(&env->ops, &env->job_state, job->args, msg, sizeof msg))
        return lmr_fail(err, LMR_ERR_INVALID, "job '%s': %s", env->ops->name, msg);
    return lmr_store_set_get(&env->stores, job->work.root, &env->work, err);
}

void lmr_reducer_task_end(struct lmr_reducer_task_env *env, const struct lmr_job_common *job, const char *task_name,
                          const char *attempt_id, enum lmr_result r, const struct lmr_err *err)
{
    if (env->ops && env->ops->teardown && env->job_state)
        env->ops->teardown(env->job_state);
    env->job_state = NULL;
    lmr_task_log_end(&env->log, env->work, job, task_name, attempt_id, env->started_ms, r, err);
    lmr_store_set_clean_up(&env->stores);
    env->work = NULL;
}
