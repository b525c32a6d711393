/*
 * An estimate of a planned job before it runs (`lambdamr run … --dry-run`): the plan's tasks,
 * invocations and store requests, and the time and cost on AWS from a stated model.
 *
 * What depends only on the plan is counted exactly as the tasks will make it: map and reduce
 * tasks, invocations (one per task when nothing fails), the map tasks' GETs (a ranged read per
 * shard, S3's growing read parts, the tail read that finishes a shard's last line) and the
 * reducers' frame GETs. What depends on the data (intermediate and output sizes, hence
 * multipart PUTs on S3) and on timing comes from the model's parameters, every one of which is
 * printed with the estimate and can be overridden (--model NAME=VALUE,...). One data-dependent
 * count is known only for local input: whether a shard ends on a line boundary (no tail read).
 *
 * Time: every task takes invoke + (Init on an environment's first task) + its requests'
 * first-byte latency + bytes / throughput, where throughput is the lower of the function's S3
 * bandwidth and its CPU rate scaled by its share of a vCPU (memory / 1,769 MB, at most one:
 * tasks are single-threaded). Tasks go to environments in order; Lambda adds environments at
 * ramp_per_10s every 10 seconds up to the concurrency.
 */
#ifndef LMR_COORDINATOR_ESTIMATE_H
#define LMR_COORDINATOR_ESTIMATE_H

#include <jansson.h>

#include "coordinator.h"
#include "report/cost.h"

struct lmr_estimate_model {
    double map_cpu_mib_s;      /* input MiB/s one vCPU maps (default 150) */
    double reduce_cpu_mib_s;   /* intermediate (compressed) MiB/s one vCPU merges and reduces (default 60) */
    double function_mib_s;     /* S3 MiB/s one function reaches with parallel ranged GETs (default 90) */
    double request_latency_ms; /* S3 time to first byte (default 30) */
    double requests_in_flight; /* ranged GETs a reader keeps in flight (default 4) */
    double cold_start_ms;      /* Init of a new environment (default 120) */
    double invoke_ms;          /* invoke round trip overhead (default 25) */
    double shuffle_ratio;      /* intermediate compressed bytes per input byte (default 0.05) */
    double output_ratio;       /* output bytes per input byte (default 0.01) */
    double ramp_per_10s;       /* environments Lambda adds per 10 s (default 1000) */
    double full_vcpu_mb;       /* memory size with one full vCPU (default 1769) */
    double coordinator_ms;     /* planning, shuffle planning and commit (default 500) */
};

/** The defaults above. */
void lmr_estimate_model_defaults(struct lmr_estimate_model *m);

/**
 * Override model parameters from "NAME=VALUE[,NAME=VALUE...]". @return LMR_ERR_INVALID naming
 * the parameter (and listing the names) when one is unknown or its value is not a positive number.
 */
enum lmr_result lmr_estimate_model_parse(struct lmr_estimate_model *m, const char *spec, struct lmr_err *err);

struct lmr_estimate_options {
    const struct lmr_job_plan *plan;        /* Required: tasks, reducers, memory */
    const struct lmr_estimate_model *model; /* Required */
    const struct lmr_prices *prices;        /* Required */
    uint32_t concurrency;                   /* Required: invocation slots */
    /* Optional: the stores holding the input. Shards on a file store then have their last byte
     * read, so the estimate knows which shards end on a line boundary and need no tail read;
     * elsewhere (S3, assumed input) every shard that does not end its object is assumed to. */
    struct lmr_store_set *stores;
};

/** The estimate as JSON (new reference; NULL when out of memory): model, plan, invocations, requests, time, cost. */
json_t *lmr_estimate(const struct lmr_estimate_options *opts);

/** Print an estimate for people. */
void lmr_estimate_print(FILE *f, const json_t *estimate);

#endif
