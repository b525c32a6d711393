#include "speculation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lmr_speculation lmr_speculation_defaults(void)
{
    return (struct lmr_speculation){.enabled = true,
                                    .quantile = LMR_SPECULATION_QUANTILE_DEFAULT,
                                    .factor = LMR_SPECULATION_FACTOR_DEFAULT,
                                    .min_ms = LMR_SPECULATION_MIN_MS_DEFAULT};
}

enum lmr_result lmr_speculation_check(const struct lmr_speculation *s, struct lmr_err *err)
{
    if (!(s->quantile > 0 && s->quantile <= 1))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "--speculation-quantile %g is out of range: give the fraction of a phase's tasks that must "
                        "have finished before a backup starts, more than 0 and at most 1 (default %g)",
                        s->quantile, LMR_SPECULATION_QUANTILE_DEFAULT);
    if (!(s->factor >= LMR_SPECULATION_FACTOR_MIN && s->factor <= LMR_SPECULATION_FACTOR_MAX))
        return lmr_fail(err, LMR_ERR_INVALID,
                        "--speculation-factor %g is out of range: give how many times the median task duration an "
                        "attempt must run before a backup starts, from %g to %g (default %g)",
                        s->factor, LMR_SPECULATION_FACTOR_MIN, LMR_SPECULATION_FACTOR_MAX,
                        LMR_SPECULATION_FACTOR_DEFAULT);
    if (s->min_ms > LMR_SPECULATION_MIN_MS_MAX)
        return lmr_fail(err, LMR_ERR_INVALID,
                        "--speculation-min-ms %u is out of range: give at most %u ms (Lambda's longest timeout; "
                        "default %u)",
                        s->min_ms, LMR_SPECULATION_MIN_MS_MAX, LMR_SPECULATION_MIN_MS_DEFAULT);
    return LMR_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double lmr_speculation_median_ms(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool lmr_speculation_due_median(const struct lmr_speculation *s, double median_ms, size_t nfinished, size_t ntasks,
                                double elapsed_ms)
{
    if (!s || !s->enabled || ntasks == 0 || nfinished == 0 || nfinished >= ntasks)
        return false;
    /* ceil(quantile x ntasks), computed so that 0.75 x 4 is exactly 3 */
    double need = ceil(s->quantile * (double)ntasks - 1e-9);
    if ((double)nfinished < need)
        return false;
    double threshold = s->factor * median_ms;
    if (threshold < (double)s->min_ms)
        threshold = (double)s->min_ms;
    return elapsed_ms >= threshold;
}

bool lmr_speculation_due(const struct lmr_speculation *s, const double *finished_ms, size_t nfinished, size_t ntasks,
                         double elapsed_ms)
{
    if (!s || !s->enabled || nfinished == 0)
        return false;
    double *copy = malloc(nfinished * sizeof *copy);
    if (!copy)
        return false; /* no memory: no backup (the running attempt still finishes or fails as usual) */
    memcpy(copy, finished_ms, nfinished * sizeof *copy);
    double median = lmr_speculation_median_ms(copy, nfinished);
    free(copy);
    return lmr_speculation_due_median(s, median, nfinished, ntasks, elapsed_ms);
}
