/* A test plugin built "for another version" of the job ABI: lambdamr must refuse to load it. */
#include <lambdamr/job.h>

static int bad_map(void *state, struct lmr_slice rec, struct lmr_emitter *out, struct lmr_job_counters *counters)
{
    (void)state, (void)counters;
    lmr_emit(out, rec, rec);
    return 0;
}

static const struct lmr_job_ops ops = {
    .abi_version = LMR_JOB_ABI_VERSION + 41,
    .name = "abi_mismatch",
    .map = bad_map,
    .map_only = 1,
};

const struct lmr_job_ops *lmr_job_plugin(void)
{
    return &ops;
}
