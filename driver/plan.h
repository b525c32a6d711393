/*
 * Planning: expand the --input locations into objects, split them into shards of
 * --split-size bytes (compressed objects whole) and pack the shards into map tasks.
 */
#ifndef LMR_DRIVER_PLAN_H
#define LMR_DRIVER_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator.h"
#include "store/store_set.h"

/* The most shards one job plans (the manifest and the driver's memory grow with them), and the
 * most one map task reads (its event, about 150 bytes a shard, must stay under Lambda's 1 MB). */
#define LMR_PLAN_MAX_SHARDS 100000u
#define LMR_PLAN_MAX_SHARDS_PER_TASK 5000u

struct lmr_plan_options {
    char **inputs; /* Required: paths, file:// or s3:// URIs */
    size_t ninputs;
    uint64_t split_size_bytes; /* Required */
    bool split_size_given;     /* false: split smaller so that every invocation slot gets work */
    uint32_t max_mappers;      /* Optional: 0 = no cap */
    uint32_t concurrency;      /* invocations that run at once */
};

/**
 * Fill plan->tasks, ntasks, input_bytes, input_objects. Input stores are added to stores. An
 * object named by several --input locations is planned once. A plan over LMR_PLAN_MAX_SHARDS
 * shards, or with a task over LMR_PLAN_MAX_SHARDS_PER_TASK, is refused (LMR_ERR_TOO_LARGE,
 * naming the flag to change) before it is built.
 */
enum lmr_result lmr_plan_inputs(const struct lmr_plan_options *opts, struct lmr_store_set *stores,
                                struct lmr_job_plan *plan, struct lmr_err *err);
void lmr_plan_tasks_free(struct lmr_job_plan *plan);

#endif
