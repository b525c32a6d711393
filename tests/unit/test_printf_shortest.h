/*
 * The reference the number-formatting tests compare against (test_util_dtoa, test_jobs_aggregate):
 * printf's shortest round trip, the shortest of %.15g, %.16g, %.17g that reads back exactly.
 */
#ifndef LMR_TEST_PRINTF_SHORTEST_H
#define LMR_TEST_PRINTF_SHORTEST_H

#include <stdio.h>
#include <stdlib.h>

static inline void format_printf_shortest(double v, char *out, size_t cap)
{
    if (v == 0)
        v = 0; /* -0 prints as 0 */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

#endif
