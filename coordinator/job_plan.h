/*
 * The whole job plan, the second half of the planner library (planner.h plans the inputs): a
 * job request becomes a plan with its id, reducer count and work and output locations, and
 * the plan is written as the manifest (WORK/manifest.json) and read back from it. The driver
 * only parses flags and prints; the coordinator function reads the manifest.
 */
#ifndef LMR_COORDINATOR_JOB_PLAN_H
#define LMR_COORDINATOR_JOB_PLAN_H

#include "exchange.h"
#include "planner.h"
#include "sample.h"

/* Automatic reducer count: one per GiB of input, at least one per invocation slot up to one
 * per 64 MiB of input, at most LMR_PLAN_MAX_AUTO_REDUCERS. */
#define LMR_PLAN_BYTES_PER_REDUCER (1024ull * 1024 * 1024)
#define LMR_PLAN_MIN_BYTES_PER_SPREAD_REDUCER (64ull * 1024 * 1024)
#define LMR_PLAN_MAX_AUTO_REDUCERS 256u
/* The manifest's format version (docs/FORMATS.md) and the most a reader loads. */
#define LMR_MANIFEST_VERSION 1
#define LMR_MANIFEST_MAX_BYTES (64u << 20)

/**
 * The automatic reducer count for input_bytes of input and concurrency invocation slots:
 * one reducer per GiB, and at least one per slot (up to one per 64 MiB of input) so that a
 * large reduce phase uses every slot; at most LMR_PLAN_MAX_AUTO_REDUCERS.
 */
uint32_t lmr_plan_reducer_count(uint64_t input_bytes, uint32_t concurrency);

/** A new job id: UTC time and 8 random hex digits, "20261201T101243Z-1a2b3c4d". Caller frees. */
char *lmr_plan_job_id(void);

/* A whole job request: what `lambdamr run` was asked. */
struct lmr_plan_request {
    const char *job_name;      /* Required: built-in name or plugin path */
    struct lmr_job_args *args; /* Required: borrowed; the plan points at it */
    bool map_only;             /* the job has no reduce phase */
    char **inputs;             /* Required */
    size_t ninputs;            /* Required: at least 1 */
    const char *output_uri;    /* Required */
    const char *work_uri;      /* Optional: default OUTPUT/_lambdamr/work */
    uint64_t split_size_bytes; /* Optional: default LMR_PLAN_DEFAULT_SPLIT_BYTES */
    bool split_size_given;     /* the user chose the split size (no automatic narrowing) */
    uint32_t max_mappers;      /* Optional: 0 = no cap */
    uint32_t reducers;         /* Optional: 0 = lmr_plan_reducer_count() */
    uint32_t memory_mb;        /* Optional: default LMR_MEMORY_DEFAULT_MB */
    uint32_t concurrency;      /* Required: invocation slots */
    bool combining;            /* Optional: the job has a combiner (task sizing; struct lmr_plan_options) */
    const char *job_id;        /* Optional: default a new lmr_plan_job_id() */
    uint64_t assume_bytes;     /* Optional: estimates only; see struct lmr_plan_options */
    uint64_t assume_objects;
    /* Optional: a range-partitioned job (lmr_job_wants_ranges): the planner samples the input
     * for its ranges (coordinator/sample.h); not with assume_bytes. */
    const struct lmr_job_ops *range_ops;
    struct lmr_sample_stats *sample_stats; /* Optional: what the sample read */
    enum lmr_exchange_mode exchange;       /* Optional: default auto (coordinator/exchange.h) */
    uint32_t merge_fan_in;                 /* Optional: the merge stage's fan-in, 0 = the default */
};

/**
 * Plan a job: list and split the inputs, pack map tasks, choose the reducer count, open the
 * output and work stores (into stores; *out_store and *work_store point into the set) and set
 * the job's locations (work: WORK/<job id>/). Nothing is written. On failure the plan is
 * cleaned up by lmr_plan_clean_up as well.
 */
enum lmr_result lmr_plan_job(const struct lmr_plan_request *req, struct lmr_store_set *stores,
                             struct lmr_job_plan *plan, struct lmr_store **out_store, struct lmr_store **work_store,
                             struct lmr_err *err);

/**
 * The request's fingerprint into out (16 hex digits): equal for the same command (job, its
 * arguments, inputs, output, work location, split size, mapper and reducer counts, memory), so a
 * rerun of a killed job can be told from a different job on the same output.
 */
void lmr_plan_fingerprint(const struct lmr_plan_request *req, char out[17]);

/** Free what lmr_plan_job or lmr_plan_from_manifest put into plan (not the borrowed args). */
void lmr_plan_clean_up(struct lmr_job_plan *plan);

/**
 * The manifest of a plan (new reference): {"version", "job", "inputs", "input_bytes",
 * "input_objects", "exchange": {"mode", "fan_in"}, "map_tasks": [[shard, ...], ...]} (docs/FORMATS.md).
 */
json_t *lmr_plan_manifest_json(const struct lmr_job_plan *plan);

/** Write the manifest to WORK/manifest.json. */
enum lmr_result lmr_plan_write_manifest(const struct lmr_job_plan *plan, struct lmr_store *work_store,
                                        struct lmr_err *err);

/**
 * Read a plan back from manifest JSON. The plan owns everything afterwards, the job's
 * arguments included (free them with lmr_job_args_destroy(plan->job.args) after
 * lmr_plan_clean_up). @return LMR_ERR_FORMAT naming the field when the manifest is malformed.
 */
enum lmr_result lmr_plan_from_manifest(const json_t *manifest, struct lmr_job_plan *plan, struct lmr_err *err);

#endif
