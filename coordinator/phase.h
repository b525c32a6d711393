/*
 * One phase (map or reduce): N tasks run as invocations with bounded concurrency. A task is
 * done when its commit record exists; otherwise it is re-invoked up to max_attempts times.
 *
 * Speculation (speculation.h, opts->speculation): when the queue is empty and a running attempt
 * is a straggler, an idle slot starts one backup attempt of its task. The first commit wins
 * (commit records are create-only). An attempt whose task another attempt committed while it ran
 * is "superseded": not a failure, no retry; the phase's discard callback removes its data. A
 * sync invocation cannot be cancelled, so the phase ends as soon as every task is committed,
 * and a superseded attempt still in flight then is left "lingering": its thread is joined later
 * (lmr_phase_wait_lingering) and the caller removes what it may have written by then.
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
    /* Optional: remove the data (intermediate object, claims, scratch) of task i's attempts other
     * than the one its commit record names; called when a superseded attempt returns. */
    void (*discard)(void *user_data, size_t i);
    void *user_data;
    bool check_committed_first; /* resume: tasks whose commit record exists are not run again */
    /*
     * Optional: dynamic work rebalancing (the map phase). When a slot is idle, nothing is queued and
     * no backup is due, the phase asks a running task (one attempt in flight, never backed up) to
     * split: split_request writes the request; idle slots then call split_poll every split_poll_ms
     * until it returns a tail task (which the phase runs) or says none comes. After a task commits,
     * split_committed makes the tail its commit record calls for if none was made yet (the record
     * is the truth; an error fails the phase). Tail indexes are the caller's: ntasks, ntasks+1, ...
     * below max_tasks (at most max_tasks - ntasks requests are made).
     */
    size_t max_tasks;
    size_t planned_tasks; /* tasks from this index up are tails (the report marks them); 0 = ntasks */
    uint32_t split_poll_ms;
    enum lmr_result (*split_request)(void *user_data, size_t i, struct lmr_err *err);
    /* @return LMR_PHASE_SPLIT_PENDING, _TAIL (*tail set) or _NONE (declined, or the tail exists already). */
    int (*split_poll)(void *user_data, size_t i, size_t *tail);
    /* *tail = SIZE_MAX when no new tail is needed. payload: the attempt's response (may be NULL). */
    enum lmr_result (*split_committed)(void *user_data, size_t i, const json_t *payload, size_t *tail,
                                       struct lmr_err *err);
};

enum { LMR_PHASE_SPLIT_PENDING = 0, LMR_PHASE_SPLIT_TAIL = 1, LMR_PHASE_SPLIT_NONE = 2 };

struct lmr_phase_result {
    double wall_ms;
    double start_ms, end_ms;  /* wall clock, milliseconds since the epoch */
    uint32_t attempts;        /* invocations made */
    uint32_t failed_attempts; /* invocations that did not commit */
    uint32_t reused;          /* tasks committed before this run (resume), not run again */
    json_t *responses;        /* array[res.ntasks]: the committing attempt's response payload (or null) */
    json_t *invocations;      /* array: one object per invocation with its REPORT figures */
    size_t ntasks;            /* tasks at the end (the phase's plus the tails rebalancing added) */
    uint32_t split_requests;  /* splits asked for (rebalancing) */
    uint32_t splits;          /* tail tasks added */
    uint32_t backups;         /* backup attempts started (speculation) */
    uint32_t backups_won;     /* tasks whose committing attempt was a backup */
    /* Tasks with a superseded attempt still in flight when the phase ended (malloc'd). */
    size_t *lingering_tasks;
    size_t nlingering;
    struct phase_run *lingering; /* their threads; joined by lmr_phase_wait_lingering */
};

enum lmr_result lmr_phase_run(const struct lmr_coordinator_options *opts, const struct lmr_phase *phase,
                              struct lmr_phase_result *res, struct lmr_err *err);

/**
 * Wait until the lingering attempts of a finished phase have returned, or until the wall clock
 * passes until_ms (0 = no limit). Threads still in flight then are detached and keep their state
 * (a deliberate leak; they touch nothing of the caller's but the invoker, so the caller must not
 * destroy the invoker). @return the number of attempts still in flight (0 when all returned).
 */
size_t lmr_phase_wait_lingering(struct lmr_phase_result *res, uint64_t until_ms);

/** Free the result; waits (without limit) for lingering attempts first. */
void lmr_phase_result_clean_up(struct lmr_phase_result *res);

#endif
