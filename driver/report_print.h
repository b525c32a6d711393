/* The human-readable job summary printed after a run (the report JSON has every figure). */
#ifndef LMR_DRIVER_REPORT_PRINT_H
#define LMR_DRIVER_REPORT_PRINT_H

#include <jansson.h>
#include <stdio.h>

void lmr_report_print(FILE *f, const json_t *report);

#include "util/result.h"

/** Read OUTPUT/_lambdamr/report.json (any store) into *out (new reference). */
enum lmr_result lmr_report_load(const char *output, json_t **out, struct lmr_err *err);

#endif
