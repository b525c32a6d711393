/*
 * The coordinator: runs a planned job through its phases. It invokes map tasks with bounded
 * concurrency, decides completion from the tasks' create-only commit records (not from
 * invoke responses alone), re-invokes tasks that failed, timed out or never committed, plans
 * and invokes the reducers, and finally commits the job (_SUCCESS) and writes the report.
 *
 * It runs inside the driver process. It keeps no process state of its own (everything is in
 * the store), so it could also run as a function role.
 */
#ifndef LMR_COORDINATOR_COORDINATOR_H
#define LMR_COORDINATOR_COORDINATOR_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "job/task.h"
#include "report/cost.h"
#include "speculation.h"
#include "lambda/invoker.h"
#include "store/store.h"
#include "store/store_set.h"

/* A planned job: settings plus the map tasks' shards (task/attempt fields are set per invoke). */
struct lmr_job_plan {
    struct lmr_job_common job;
    struct lmr_map_task *tasks;
    size_t ntasks;
    uint64_t input_bytes;
    uint64_t input_objects;
    json_t *input_uris;  /* the --input URIs as given, for the report and the manifest */
    char *output_uri;    /* the --output URI as given */
    const char *command; /* Optional: the command line that reproduces the job, for the report */
    double plan_ms;
    /* The exchange (coordinator/exchange.h): 0 = direct (reducers read every map output's frame),
     * else a merge stage of ceil(ntasks / merge_fan_in) merge tasks between map and reduce. */
    uint32_t merge_fan_in;
};

struct lmr_progress {
    const char *phase; /* "map", "merge", "reduce", "commit" */
    uint32_t done, total, running;
    uint32_t failed_attempts;
    /* Optional: the phase's invocations so far (as the report keeps them), valid during the call only. */
    const json_t *invocations;
};

enum lmr_rebalance { LMR_REBALANCE_AUTO = 0, LMR_REBALANCE_ON, LMR_REBALANCE_OFF };

/** Is the job's output independent of where its map tasks' inputs are cut? (lmr_job_cut_invariant) */
bool lmr_rebalance_exact(const struct lmr_job_common *job);

struct lmr_coordinator_options {
    struct lmr_invoker *invoker;    /* Required. */
    const char *map_function;       /* Required: function name for map tasks. */
    const char *reduce_function;    /* Required: function name for reduce tasks. */
    struct lmr_store *work_store;   /* Required: holds plan->job.work. */
    struct lmr_store *output_store; /* Required: holds plan->job.output. */
    /* Optional: every store this process used (planning, output checks, work, output), whose
     * requests the report counts as the coordinator's. Default: work_store and output_store. */
    const struct lmr_store_set *driver_stores;
    uint32_t concurrency;  /* Optional: invocations in flight, default 8. */
    uint32_t max_attempts; /* Optional: per task, default 3. */
    /* Optional: dynamic work rebalancing (docs/ARCHITECTURE.md, "Rebalancing"; run --rebalance): a job with a
     * reduce phase splits a running map task for a slot that would idle. AUTO (the default): only jobs whose
     * output cannot depend on where their map tasks are cut (lmr_rebalance_exact). */
    enum lmr_rebalance rebalance;
    /* Optional: backup attempts for stragglers (speculation.h); NULL = none. */
    const struct lmr_speculation *speculation;
    /* Optional: set when a superseded attempt was still in flight when the run returned (past the
     * deadline): it still uses the invoker, which the caller must then not destroy. */
    bool *invoker_in_use;
    /* Optional: the prices the cost estimate uses; default the built-in table's default region and this
     * build's architecture. */
    const struct lmr_prices *prices;
    /* Optional: the output lease this job holds (lease.h). The coordinator renews it while the job
     * runs, stops the job if it is lost, checks it once more before _SUCCESS and releases it at the end. */
    struct lmr_lease *lease;
    /* Optional: set to stop the job (cancel); phases stop invoking, the job fails as cancelled. */
    atomic_bool *stop;
    /* Optional: epoch ms after which no new task is started; running ones finish, then the run
     * returns LMR_ERR_TIMEOUT with *continued set, leaving everything (lease included) for a
     * continuation. 0 = none. */
    uint64_t stop_at_ms;
    bool *continued;
    /* Optional: the job ran before (a resume or a continuation): tasks with a commit record are
     * not run again (the report counts them as reused). */
    bool resume;
    /* Optional: the process that started this one (the Lambda service); when it is gone (the
     * embedded service died with its driver) the run stops at once and leaves everything for a
     * resume, as at the deadline but without a continuation. 0 = do not watch. */
    int parent_pid;
    /* Optional: which coordinator round this is (1 = first), recorded in the job record. */
    uint32_t round;
    /* Optional: requests made before the coordinator ran (planning, output checks), counted in the
     * report as the coordinator's own: get, put, list, head, delete. */
    uint64_t earlier_requests[5];
    /* Optional: this coordinator invocation, for the report's and the job record's
     * coordinator_invocations: the Runtime API's request id, the function's memory and when the
     * invocation began (epoch ms). 0 / NULL: not a function (no entry for this round). */
    const char *request_id;
    uint32_t memory_mb;
    double invoked_ms;
    /* Optional: the job record an earlier round left (borrowed): its coordinator_invocations and
     * so_far figures are carried on, so the report and `lambdamr status` cover every round. */
    const json_t *earlier_record;
    /* Optional: called (from worker threads, serialised) whenever a task starts or ends. */
    void (*progress)(void *user_data, const struct lmr_progress *p);
    void *progress_user_data;
};

/**
 * Run the job. The job record WORK/job.json follows its status and phase. On success the
 * output holds the part files and _SUCCESS (the job id and the parts), and *report (new
 * reference) the job report ("succeeded", written only after _SUCCESS), also in
 * <output>/_lambdamr/report.json. On failure every part this job wrote is removed (and no other
 * part), the job record says "failed" (or "cancelled") and why, and err says which task failed.
 */
enum lmr_result lmr_coordinator_run(const struct lmr_coordinator_options *opts, const struct lmr_job_plan *plan,
                                    json_t **report, struct lmr_err *err);

/**
 * For a job run by a Lambda service that is now gone with all its function processes (the
 * embedded default stops it when the driver ends): remove what the coordinator kept for the
 * superseded attempts still in flight when their phase ended (the invocations marked
 * "unfinished" in the report: their tasks' work folders, commit record included), which it
 * could not remove itself because it was stopped with them. Call only after the job succeeded.
 */
void lmr_coordinator_remove_superseded(struct lmr_store *work, const struct lmr_job_common *job, const json_t *report);
/*
 * A reducer's frame list goes through the store (WORK/frames/r-NNNNN.json, the event names it)
 * when the list would take more than LMR_FRAMES_INLINE_MAX_BYTES of its event. The coordinator
 * invokes reducers synchronously (a 6 MB request limit, lambda/limits.h); 1 MiB leaves ample
 * room for the job's own arguments and keeps the coordinator's events small. A list's length is
 * counted as 16 bytes plus each frame's key length plus LMR_FRAME_LIST_ENTRY_BYTES.
 */
#define LMR_FRAMES_INLINE_MAX_BYTES (1u << 20)
#define LMR_FRAME_LIST_ENTRY_BYTES 48u
/** The threshold in effect: LMR_FRAMES_INLINE_MAX_BYTES, or the environment's LMR_FRAMES_INLINE_MAX_BYTES
 * (tests: 0 sends every list through the store), at most half the request limit. */
uint64_t lmr_coordinator_frames_inline_max_bytes(void);

/* The report's schema version (docs/FORMATS.md): 2 added timestamps, slots, the cost breakdown and prices. */
#define LMR_REPORT_SCHEMA_VERSION 2

#endif
