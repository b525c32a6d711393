/* The human-readable job summary printed after a run (the report JSON has every figure). */
#ifndef LMR_DRIVER_REPORT_PRINT_H
#define LMR_DRIVER_REPORT_PRINT_H

#include <jansson.h>
#include <stdio.h>

void lmr_report_print(FILE *f, const json_t *report);

#endif
