/*
 * Jobs that run as more than one stage, or whose plan depends on their inputs: the stage list
 * the driver walks (each stage is a whole job: plan, map, shuffle, reduce, commit).
 *   join    --side TAG=URI …: the reduce-side `join`, or `join-map` (broadcast) when every side but
 *           the largest fits a quarter of a task's memory together (--join broadcast|reduce forces it)
 *   bdb-q3  --input DATA_DIR: by default (--join auto or filter-broadcast) two stages, `scan`
 *           keeping the visits in the date range into OUTPUT/_lambdamr/stage-1/, then `bdb-q3`
 *           stage "probe" over rankings (each mapper joins its rankings shard with those visits);
 *           --join broadcast: one stage (rankings loaded by every mapper); --join reduce: two
 *           stages, the reduce-side `join` into OUTPUT/_lambdamr/stage-1/ and `bdb-q3` stage
 *           "agg" over it into OUTPUT (an intermediate stage's output is deleted afterwards)
 *   others  one stage, as given.
 */
#ifndef LMR_DRIVER_STAGES_H
#define LMR_DRIVER_STAGES_H

#include <stdbool.h>
#include <stdio.h>

#include "job/args.h"
#include "util/result.h"

#define LMR_STAGES_MAX 4

struct lmr_stage {
    const char *job;
    struct lmr_job_args *args; /* owned */
    char **inputs;             /* owned, with the strings */
    size_t ninputs;
    char *output;   /* owned */
    bool temporary; /* deleted after the last stage */
};

struct lmr_stage_list {
    struct lmr_stage stages[LMR_STAGES_MAX];
    size_t n;
    const char *strategy; /* "broadcast", "reduce" or NULL (not a join) */
};

struct lmr_stage_request {
    const char *job;                 /* Required */
    const struct lmr_job_args *args; /* Required: the user's arguments (copied per stage) */
    char **inputs;                   /* --input */
    size_t ninputs;
    char **sides; /* --side TAG=URI */
    size_t nsides;
    const char *output; /* Required */
    uint32_t memory_mb; /* Required: the functions' memory */
    bool estimate_only; /* --dry-run with --assume-input: nothing is listed */
};

/** Expand a request into stages. @return LMR_ERR_INVALID with a sentence for inputs that do not fit the job. */
enum lmr_result lmr_stages_plan(const struct lmr_stage_request *req, struct lmr_stage_list *out, struct lmr_err *err);
void lmr_stages_clean_up(struct lmr_stage_list *list);

/** Delete every object under a stage's temporary output location. */
enum lmr_result lmr_stages_remove_output(const char *uri, struct lmr_err *err);

/** bdb-q3: print the top row by totalRevenue of the part files under output to f. */
enum lmr_result lmr_stages_print_q3_top(FILE *f, const char *output, struct lmr_err *err);

#endif
