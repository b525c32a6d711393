/*
 * Planning: expand the --input locations into objects, split them into shards of
 * --split-size bytes (compressed objects whole) and pack the shards into map tasks.
 * Part of the planner library with job_plan.h (the whole job, the manifest).
 */
#ifndef LMR_COORDINATOR_PLANNER_H
#define LMR_COORDINATOR_PLANNER_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator.h"
#include "store/store_set.h"

/* The default split size, and the smallest split the automatic narrowing goes down to. */
#define LMR_PLAN_DEFAULT_SPLIT_BYTES (64ull * 1024 * 1024)
#define LMR_PLAN_MIN_AUTO_SPLIT_BYTES (1ull * 1024 * 1024)
/* A combining job whose input fits one wave of tasks this large runs as exactly one wave (fewer,
 * larger map tasks combine more: fewer records to sort, shuffle and merge). */
#define LMR_PLAN_MAX_WAVE_TASK_BYTES (256ull * 1024 * 1024)
/* The most objects --assume-input may describe. */
#define LMR_PLAN_MAX_ASSUMED_OBJECTS 1000000u
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
    bool combining;            /* Optional: the job combines at emit time (see LMR_PLAN_MAX_WAVE_TASK_BYTES) */
    /* Optional (estimates, `run --dry-run --assume-input`): plan for assume_objects objects of
     * assume_bytes in all, spread evenly, instead of listing the inputs. Nothing is read. */
    uint64_t assume_bytes;
    uint64_t assume_objects; /* default 1 */
};

/**
 * Fill plan->tasks, ntasks, input_bytes, input_objects. With an automatic split (no --split-size,
 * no --mappers) the tasks are balanced: their count is a multiple of the concurrency (whole
 * waves), at most a split each (64 MiB by default; one wave of up to
 * LMR_PLAN_MAX_WAVE_TASK_BYTES for a combining job that fits it), not under
 * LMR_PLAN_MIN_AUTO_SPLIT_BYTES, and every task but the last gets the same byte count, objects cut
 * where a task is full. Input stores are added to stores. An
 * object named by several --input locations is planned once. A plan over LMR_PLAN_MAX_SHARDS
 * shards, or with a task over LMR_PLAN_MAX_SHARDS_PER_TASK, is refused (LMR_ERR_TOO_LARGE,
 * naming the flag to change) before it is built.
 */
enum lmr_result lmr_plan_inputs(const struct lmr_plan_options *opts, struct lmr_store_set *stores,
                                struct lmr_job_plan *plan, struct lmr_err *err);
void lmr_plan_tasks_free(struct lmr_job_plan *plan);

#endif
