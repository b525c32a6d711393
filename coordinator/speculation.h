/*
 * Speculation for stragglers: when most tasks of a phase have finished and one attempt has run
 * far longer than the finished ones took, the phase starts one backup attempt of that task on a
 * free slot (Hadoop's mapreduce.{map,reduce}.speculative). Task commits are create-only, so the
 * first attempt to commit wins; the other one is a loser whose data the coordinator removes and
 * whose ending (committed or not) is neither a failure of the job nor a reason to retry.
 *
 * The rule (lmr_speculation_due) is a pure function of the finished attempts' durations, the
 * running attempt's elapsed time and the counts, so it is tested without processes.
 */
#ifndef LMR_COORDINATOR_SPECULATION_H
#define LMR_COORDINATOR_SPECULATION_H

#include <stdbool.h>
#include <stddef.h>

#include "util/result.h"

/* Defaults and limits of the options (lambdamr run --speculation-*). */
#define LMR_SPECULATION_QUANTILE_DEFAULT 0.75
#define LMR_SPECULATION_FACTOR_DEFAULT 3.0
#define LMR_SPECULATION_MIN_MS_DEFAULT 3000u
#define LMR_SPECULATION_FACTOR_MIN 1.0
#define LMR_SPECULATION_FACTOR_MAX 100.0
#define LMR_SPECULATION_MIN_MS_MAX 900000u /* Lambda's longest timeout */

struct lmr_speculation {
    bool enabled;    /* start backups at all */
    double quantile; /* the fraction of the phase's tasks that must have finished, in (0, 1] */
    double factor;   /* a running attempt is a straggler after factor x the median finished duration, in [1, 100] */
    unsigned min_ms; /* and after at least this long, so short phases do not speculate on noise */
};

/** The defaults: enabled, quantile 0.75, factor 3, min_ms 3000. */
struct lmr_speculation lmr_speculation_defaults(void);

/**
 * Validate options as the user gave them (quantile in (0, 1], factor in [1, 100], min_ms at
 * most 900,000). @return LMR_OK, or LMR_ERR_INVALID with err naming the option, the value and
 * the accepted range.
 */
enum lmr_result lmr_speculation_check(const struct lmr_speculation *s, struct lmr_err *err);

/** The median of v[0..n) (sorts v in place); 0 when n is 0. */
double lmr_speculation_median_ms(double *v, size_t n);

/**
 * Is a backup due for a running attempt? With the resolved options s: speculation is enabled,
 * at least ceil(quantile x ntasks) tasks (and at least one) have finished, and the attempt has
 * run at least max(factor x median_ms, min_ms). median_ms is the median duration of the
 * finished tasks' committing attempts.
 */
bool lmr_speculation_due_median(const struct lmr_speculation *s, double median_ms, size_t nfinished, size_t ntasks,
                                double elapsed_ms);

/** As lmr_speculation_due_median, from the finished durations themselves (not modified). */
bool lmr_speculation_due(const struct lmr_speculation *s, const double *finished_ms, size_t nfinished, size_t ntasks,
                         double elapsed_ms);

#endif
