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
#include <stdint.h>

#include "job/task.h"
#include "report/cost.h"
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
};

struct lmr_progress {
    const char *phase; /* "map", "reduce", "commit" */
    uint32_t done, total, running;
    uint32_t failed_attempts;
};

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
    /* Optional: the prices the cost estimate uses; default the built-in table's default region and this
     * build's architecture. */
    const struct lmr_prices *prices;
    /* Optional: called (from worker threads, serialised) whenever a task starts or ends. */
    void (*progress)(void *user_data, const struct lmr_progress *p);
    void *progress_user_data;
};

/**
 * Run the job. On success the output holds part files and _SUCCESS, and *report (new
 * reference) the job report, also written to <output>/_lambdamr/report.json. On failure the
 * output is left without any part written by this job, and err says which task failed why.
 */
enum lmr_result lmr_coordinator_run(const struct lmr_coordinator_options *opts, const struct lmr_job_plan *plan,
                                    json_t **report, struct lmr_err *err);

/* The report's schema version (docs/FORMATS.md): 2 added timestamps, slots, the cost breakdown and prices. */
#define LMR_REPORT_SCHEMA_VERSION 2

#endif
