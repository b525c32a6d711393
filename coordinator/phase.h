/*
 * One phase (map or reduce): N tasks run as invocations with bounded concurrency. A task is
 * done when its commit record exists; otherwise it is re-invoked up to max_attempts times.
 */
#ifndef LMR_COORDINATOR_PHASE_H
#define LMR_COORDINATOR_PHASE_H

#include <jansson.h>
#include <stdbool.h>

#include "coordinator.h"

struct lmr_phase {
    const char *name;     /* "map" / "reduce" */
    const char *function; /* function to invoke */
    size_t ntasks;
    /* Build the event of task i, attempt a (1-based). Returns a malloc'd JSON string. */
    char *(*build_event)(void *user_data, size_t i, uint32_t attempt);
    /* The key of task i's commit record in the work store. malloc'd. */
    char *(*commit_key)(void *user_data, size_t i);
    void *user_data;
    bool check_committed_first; /* resume: tasks whose commit record exists are not run again */
};

struct lmr_phase_result {
    double wall_ms;
    double start_ms, end_ms;  /* wall clock, milliseconds since the epoch */
    uint32_t attempts;        /* invocations made */
    uint32_t failed_attempts; /* invocations that did not commit */
    uint32_t reused;          /* tasks committed before this run (resume), not run again */
    json_t *responses;        /* array[ntasks]: the committing attempt's response payload (or null) */
    json_t *invocations;      /* array: one object per invocation with its REPORT figures */
};

enum lmr_result lmr_phase_run(const struct lmr_coordinator_options *opts, const struct lmr_phase *phase,
                              struct lmr_phase_result *res, struct lmr_err *err);
void lmr_phase_result_clean_up(struct lmr_phase_result *res);

#endif
